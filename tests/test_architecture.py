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
