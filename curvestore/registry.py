"""Lazy registries: URL scheme -> backend class, codec id -> codec.

Plugins register dotted paths (``"pkg.module:Class"``) with an install hint; nothing is imported
until a scheme or codec is asked for. Registering a name twice raises unless ``clobber=True``:
an ambiguous name is an error, never a silent pick.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curvestore.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    UnknownBackendError,
    UnknownCodecError,
)

if TYPE_CHECKING:
    from curvestore.backends.base import Backend
    from curvestore.codecs.base import Codec

__all__ = ["PluginEntry", "Registrar", "get_backend_class", "get_codec", "get_registry"]


@dataclass(frozen=True)
class PluginEntry:
    """One registered backend scheme or codec id."""

    kind: str  # "backend" or "codec"
    name: str
    target: str
    extra: str | None
    distribution: str

    def load(self) -> Any:
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendNotInstalledError(f"{self.kind} {self.name!r}", self.extra,
                                           str(exc)) from exc
        try:
            return getattr(module, attr)
        except AttributeError as exc:
            raise ConfigurationError(
                f"plugin {self.distribution!r} registered {self.kind} {self.name!r} as "
                f"{self.target!r}, which does not exist"
            ) from exc


class Registrar:
    """What registrar hooks receive: ``register.backend(...)`` and ``register.codec(...)``."""

    def __init__(self) -> None:
        self.backends: dict[str, PluginEntry] = {}
        self.codecs: dict[str, PluginEntry] = {}
        self.distribution = "curvestore"

    def backend(self, schemes: tuple[str, ...] | list[str] | str, target: str,
                extra: str | None = None, *, clobber: bool = False) -> None:
        for scheme in (schemes,) if isinstance(schemes, str) else schemes:
            self._add(self.backends, PluginEntry("backend", scheme.lower(), target, extra,
                                                 self.distribution), clobber)

    def codec(self, codec_id: str, target: str, extra: str | None = None, *,
              clobber: bool = False) -> None:
        self._add(self.codecs, PluginEntry("codec", codec_id, target, extra, self.distribution),
                  clobber)

    @staticmethod
    def _add(table: dict[str, PluginEntry], entry: PluginEntry, clobber: bool) -> None:
        old = table.get(entry.name)
        if old is not None and not clobber and old.target != entry.target:
            raise ConfigurationError(
                f"{entry.kind} {entry.name!r} is registered twice: by {old.distribution!r} "
                f"({old.target}) and by {entry.distribution!r} ({entry.target}); uninstall one "
                "or register with clobber=True"
            )
        table[entry.name] = entry


_lock = threading.RLock()
_registry: Registrar | None = None
_codec_instances: dict[str, Codec] = {}


def get_registry() -> Registrar:
    """The registrar filled by every installed plugin (built once, then cached)."""
    global _registry
    with _lock:
        if _registry is None:
            from curvestore.plugins import collect_registrations

            _registry = collect_registrations()
        return _registry


def reset_registry() -> None:
    """Forget registrations (after plugins were added or removed, e.g. in tests)."""
    global _registry
    with _lock:
        _registry = None
        _codec_instances.clear()


def get_backend_class(scheme: str) -> type[Backend]:
    """The class registered for ``scheme``, its driver checked (``check_available``)."""
    registry = get_registry()
    entry = registry.backends.get(scheme.lower())
    if entry is None:
        raise UnknownBackendError(scheme, registry.backends)
    cls = entry.load()
    check = getattr(cls, "check_available", None)  # optional for third-party classes
    if check is not None:
        check()
    return cls  # type: ignore[no-any-return]


def get_codec(codec_id: str) -> Codec:
    """The (shared, stateless) codec instance registered under ``codec_id``."""
    codec = _codec_instances.get(codec_id)
    if codec is not None:
        return codec
    registry = get_registry()
    entry = registry.codecs.get(codec_id)
    if entry is None:
        raise UnknownCodecError(codec_id, registry.codecs)
    codec = entry.load()()
    # Fail now, naming the extra, rather than at the first chunk written.
    check = getattr(codec, "check_available", None)
    if check is not None:
        check()
    _codec_instances[codec_id] = codec
    return codec
