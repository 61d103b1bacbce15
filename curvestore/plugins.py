"""The plugin manager: hook specs, then built-ins, then entry points, then ``check_pending``.

Built-in backends and codecs are plugins like any other: they are registered in code here (so a
source checkout works without installed metadata) under the same names as their entry points
in pyproject.toml, which pluggy then skips. ``CURVESTORE_LOAD_PLUGINS`` (comma-separated
entry-point names, empty for none) restricts which third-party plugins load.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

import pluggy

from curvestore import hookspecs
from curvestore._version import __version__

__all__ = ["DEFAULT_PLUGINS", "get_plugin_manager", "notify", "plugin_sources",
           "reset_plugin_manager"]

log = logging.getLogger(__name__)

DEFAULT_PLUGINS = {
    "builtin_backends": "curvestore.backends._plugin",
    "builtin_codecs": "curvestore.codecs._plugin",
}

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for name, module in DEFAULT_PLUGINS.items():
                pm.register(importlib.import_module(module), name=name)
            allowed = os.environ.get("CURVESTORE_LOAD_PLUGINS")
            if allowed is None:
                pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            else:
                for name in filter(None, (n.strip() for n in allowed.split(","))):
                    pm.load_setuptools_entrypoints(hookspecs.PROJECT, name=name)
            pm.check_pending()
            _manager = pm
        return _manager


def reset_plugin_manager() -> None:
    """Forget the manager (plugins are looked up again); ``registry.reset_registry`` also
    forgets what they registered."""
    global _manager
    with _lock:
        _manager = None


def plugin_sources() -> dict[int, str]:
    """Plugin object id -> 'distribution version' for every loaded plugin."""
    pm = get_plugin_manager()
    sources: dict[int, str] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        sources[id(plugin)] = f"{dist.project_name} {dist.version}"
    for name in DEFAULT_PLUGINS:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            sources.setdefault(id(plugin), f"curvestore {__version__}")
    return sources


def notify(hook: str, **kwargs: Any) -> None:
    """Call an observer hook; a failing observer is logged, never propagated."""
    caller = getattr(get_plugin_manager().hook, hook)
    for impl in caller.get_hookimpls():
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception:  # an observer must not break a committed write
            log.exception("curvestore plugin %s failed in %s", impl.plugin_name, hook)
