"""What a new user installs: the README's two commands, what CI runs, and the extras."""

from __future__ import annotations

import ast
import re
import shlex
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The command lines of the README's "The two commands" block (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def pip_installs(command: str) -> list[list[str]]:
    """The arguments of each ``python3 -m pip install`` in a ``&&`` chain."""
    installs = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[:4] == ["python3", "-m", "pip", "install"]:
            installs.append(words[4:])
    return installs


def test_readme_has_the_two_commands() -> None:
    install, tests = readme_commands()
    assert install.endswith("curvestore demo")
    assert tests.endswith("python3 -m pytest -q")


def test_sample_plugin_is_installed_apart_from_the_project() -> None:
    # pip 23.2 (Python 3.11's venv) does not see the local `-e .` as satisfying the sample
    # plugin's `dependencies = ["curvestore"]` when both are in one `pip install`
    installs = pip_installs(readme_commands()[1])
    assert [args for args in installs if "./tests/sample_plugin" in args] == [
        ["./tests/sample_plugin"]]
    assert ["-e", ".[dev]"] in installs
    assert installs.index(["-e", ".[dev]"]) < installs.index(["./tests/sample_plugin"])


def test_ci_runs_the_readme_test_command_verbatim_without_upgrading_pip() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = readme_commands()[1]
    assert command in ci, "CI must run the README's test command verbatim"
    before = ci[:ci.index(command)]
    upgrades = [line for line in before if not line.lstrip().startswith("#")
                and re.search(r"pip\s+install\b.*(--upgrade|-U)\b.*\bpip\b", line)]
    assert upgrades == [], "CI must meet the pip a new user has, not upgrade it"


def _requirement_names(project: dict, extra: str) -> set[str]:
    """Distribution names (normalised) of the base dependencies plus ``extra``, following
    ``curvestore[...]`` self-references."""
    names: set[str] = set()
    pending, seen = [*project["dependencies"], f"curvestore[{extra}]"], set()
    while pending:
        requirement = pending.pop()
        match = re.match(r"\s*([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?", requirement)
        assert match, requirement
        name, extras = match.group(1), match.group(2)
        if name == "curvestore":
            for wanted in filter(None, (e.strip() for e in (extras or "").split(","))):
                if wanted not in seen:
                    seen.add(wanted)
                    pending += project["optional-dependencies"][wanted]
        else:
            names.add(re.sub(r"[-_.]+", "-", name).lower())
    return names


def _module_level_imports(path: Path) -> set[str]:
    """Absolute imports in a module's body (not in functions, not under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _third_party_imports(package: str) -> dict[str, set[str]]:
    """Top-level third-party module -> curvestore modules importing it at import time, over
    every module of ``package`` and the curvestore modules they import in turn."""
    todo = [p for p in (ROOT / package.replace(".", "/")).rglob("*.py")
            if "migrations" not in p.parts]
    done: set[Path] = set()
    found: dict[str, set[str]] = {}
    while todo:
        path = todo.pop()
        if path in done:
            continue
        done.add(path)
        for module in _module_level_imports(path):
            top = module.split(".")[0]
            if top == "curvestore":
                base = ROOT / module.replace(".", "/")
                todo += [c for c in (base.with_suffix(".py"), base / "__init__.py") if c.is_file()]
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_django_extra_provides_what_the_django_adapter_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _requirement_names(project, "django")
    providers = packages_distributions()
    imports = _third_party_imports("curvestore.adapters.django")
    assert "requests" in imports  # sync_client; the check below must cover it
    missing = {}
    for module, importers in imports.items():
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(importers)
    assert missing == {}, f'pip install "curvestore[django]" does not install {missing}'
