"""The package's layering, read from the source with ``ast`` so that it stays as designed:

* the core (``curvestore.core``) is the bottom layer: it imports nothing of the package but
  itself and ``curvestore.errors`` (not even for type checking, not even lazily inside a
  function), and no optional driver (Django, psycopg, boto3, pyarrow...);
* the package has no import cycle (imports made only for type checking do not run, so they
  are left out of this one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import curvestore

PACKAGE = Path(curvestore.__file__).parent
CORE = "curvestore.core"
CORE_MAY_IMPORT = ("curvestore.core", "curvestore.errors")
OPTIONAL_DRIVERS = ("django", "rest_framework", "psycopg", "boto3", "botocore", "pyarrow",
                    "waitress", "requests", "zstandard", "pcodec", "lz4")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the package when it is one, else the name as written
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def imports_of(name: str) -> Iterator[Import]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    type_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, id(node) in type_only)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # `from pkg import module` names a module
                yield Import(name, sub if sub in MODULES else base, node.lineno,
                             id(node) in type_only)


ALL_IMPORTS = [i for name in sorted(MODULES) for i in imports_of(name)]


def test_the_source_is_found() -> None:
    assert {"curvestore.core.store", "curvestore.core.backend", "curvestore.opening",
            "curvestore.registry", "curvestore.cli"} <= set(MODULES)
    assert any(i.importer == "curvestore.core.store" for i in ALL_IMPORTS)


def test_the_core_imports_nothing_above_it() -> None:
    upward = [i for i in ALL_IMPORTS if i.importer.startswith(CORE)
              and i.target.startswith("curvestore")
              and not i.target.startswith(CORE_MAY_IMPORT)]
    assert not upward, "\n".join(f"{i.importer}:{i.line} imports {i.target}" for i in upward)


def test_the_core_imports_no_optional_driver() -> None:
    drivers = [i for i in ALL_IMPORTS if i.importer.startswith(CORE)
               and i.target.split(".")[0] in OPTIONAL_DRIVERS]
    assert not drivers, "\n".join(f"{i.importer}:{i.line} imports {i.target}" for i in drivers)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for i in ALL_IMPORTS:
        if not i.type_only and i.target in MODULES and i.target != i.importer:
            edges[i.importer].add(i.target)
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(
        " <-> ".join(c) + "\n    " + "\n    ".join(
            f"{i.importer}:{i.line} -> {i.target}" for i in ALL_IMPORTS
            if i.importer in c and i.target in c and not i.type_only)
        for c in cycles)


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]],
                                       expected: list[list[str]]) -> None:
    assert _cycles(edges) == expected


@pytest.mark.parametrize("package", ["curvestore.core", "curvestore.backends",
                                     "curvestore.codecs"])
def test_public_names_import_from_one_place(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def _private_names_of_the_core() -> set[str]:
    """Private names the core defines: module-level ones and its classes' attributes and
    methods (``_check_writable``, ``_window``, ...), dunders excepted."""
    names: set[str] = set()
    for name, path in MODULES.items():
        if name != CORE and not name.startswith(CORE + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "self" and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def reaches_into_the_core(name: str, private: set[str]) -> Iterator[str]:
    """Where module ``name`` uses a private name of the core: imports it from a core module,
    or reads it as an attribute of anything but its own ``self`` / ``cls``."""
    tree = ast.parse(MODULES[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CORE):
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield f"{name}:{node.lineno} imports {node.module}.{alias.name}"
        elif isinstance(node, ast.Attribute) and node.attr in private and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            yield f"{name}:{node.lineno} uses {ast.unparse(node)}"


def test_nothing_outside_the_core_reaches_a_private_name_of_it() -> None:
    private = _private_names_of_the_core()
    assert {"_prepare", "_apply"} <= private  # the walk does find the core's private names
    outside = [n for n in MODULES if n != CORE and not n.startswith(CORE + ".")]
    found = [hit for n in outside for hit in reaches_into_the_core(n, private)]
    assert found == [], "\n".join(found)


def test_the_private_name_check_finds_a_reach(tmp_path: Path) -> None:
    MODULES["curvestore._probe"] = probe = tmp_path / "probe.py"
    try:
        probe.write_text("from curvestore.core.store import _Prepared\n"
                         "def f(store):\n    return store._window(1, 2)\n")
        hits = list(reaches_into_the_core("curvestore._probe", {"_window", "_Prepared"}))
    finally:
        del MODULES["curvestore._probe"]
    assert len(hits) == 2, hits


def code_lines(source: str) -> int:
    """Lines of code: not blank, not a comment, not a docstring, not an import."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skipped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            skipped.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return sum(1 for n, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and n not in skipped)


def test_the_sample_backend_stays_small() -> None:
    """A third-party backend needs little code: the core does the checks, cursors and
    paging (the sample SQLite backend runs every shipped suite)."""
    sample = Path(__file__).parent / "sample_plugin" / "curvestore_sqlite" / "backend.py"
    assert code_lines("'''doc'''\nimport os\nx = 1  # one\n\n# two\n") == 1
    assert code_lines(sample.read_text()) <= 120
