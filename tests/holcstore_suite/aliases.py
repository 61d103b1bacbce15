"""Import hook: holcstore's store modules resolve to the Django adapter's.

Each ``hostore`` module that holcstore's tests import for the store API is mapped to the
adapter module that the README's migration table names; for a holcstore module whose names
the table splits across several adapter modules (``hostore.utils.ts_sync``), each name comes
from its own module. Every other ``hostore`` module (the test modules and holcstore's helpers:
``utils.timeseries``, ``utils.utils_test``, ``utils.range``) is holcstore's own, imported from
the installed distribution.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

_DJANGO = "curvestore.adapters.django"

#: ``hostore`` module -> the adapter module it is, or {name: adapter module} for a split one.
ALIASES: Mapping[str, str | Mapping[str, str]] = {
    "hostore.models": f"{_DJANGO}.models",
    "hostore.models.dataframe_store": f"{_DJANGO}.models",
    "hostore.admin_actions": f"{_DJANGO}.admin",
    "hostore.utils.ts_sync": {
        "TimeseriesChunkStoreSyncViewSet": f"{_DJANGO}.sync_views",
        "TimeseriesChunkStoreSyncClient": f"{_DJANGO}.sync_client",
    },
}


class _AliasModule(types.ModuleType):
    """Stands for a ``hostore`` module: each name is looked up, on access, in the adapter
    module it lives in, so classes are the adapter's own, not copies. It has an empty
    ``__path__`` so that aliased submodules (``hostore.models.dataframe_store``) import."""

    def __init__(self, name: str, target: str | Mapping[str, str]) -> None:
        sources = {} if isinstance(target, str) else dict(target)
        modules = sorted({target} if isinstance(target, str) else set(sources.values()))
        super().__init__(name, f"alias of {', '.join(modules)}")
        self.__path__: list[str] = []
        self._whole = target if isinstance(target, str) else None
        self._sources = sources

    def __getattr__(self, attr: str) -> Any:
        source = self.__dict__["_sources"].get(attr, self.__dict__["_whole"])
        if source is None or attr.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r} "
                                 "(not in the adapter's migration table)")
        return getattr(importlib.import_module(source), attr)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str | Mapping[str, str]) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _AliasModule(spec.name, self._target)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: names resolve on access."""


class HostoreAliasFinder(importlib.abc.MetaPathFinder):
    """Finds the aliased ``hostore`` modules; leaves every other import to the next finder."""

    def __init__(self, aliases: Mapping[str, str | Mapping[str, str]]) -> None:
        self._aliases = aliases

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._aliases:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(self._aliases[fullname]))


def install(aliases: Mapping[str, str | Mapping[str, str]] = ALIASES) -> None:
    """Put the alias finder first on ``sys.meta_path`` (before any ``hostore`` import)."""
    loaded = sorted(name for name in aliases if name in sys.modules)
    if loaded:
        raise RuntimeError(f"already imported from holcstore, cannot alias: {loaded}")
    sys.meta_path.insert(0, HostoreAliasFinder(aliases))
