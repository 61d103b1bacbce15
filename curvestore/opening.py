"""create_store / open_store: from a URL (or a Backend) to a Store.

Above the core: it finds backends and codecs in the plugin registry and hands the core its
codec lookup and the plugins' observer hook, so the core never imports the plugin layer."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from curvestore.arrow import arrow_reader
from curvestore.core.backend import Backend
from curvestore.core.config import StoreConfig
from curvestore.core.store import Store
from curvestore.core.url import StoreURL, parse_url
from curvestore.errors import (
    ConfigurationError,
    StoreExistsError,
    StoreNotFoundError,
)
from curvestore.plugins import notify
from curvestore.registry import get_backend_class, get_codec
from curvestore.sources import open_table
from curvestore.tracing import store_tracer

__all__ = ["create_store", "open_store"]

_TRUE = {"1", "true", "yes", "on"}


def _plugged() -> dict[str, Any]:
    """What the core is handed: the registry's codecs, the plugins' observer hooks, the
    readers of Arrow, Parquet and CSV sources for ``Store.ingest``, OpenTelemetry spans when
    it is installed, and the Arrow writer of ``Store.read_arrow``."""
    return {"codecs": get_codec, "observer": notify, "tables": open_table,
            "tracer": store_tracer(), "arrow": arrow_reader}

_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(f"option {name} must be true or false, got {value!r}")


def config_files() -> list[Path]:
    """Where named stores are looked up, first match wins: ``$CURVESTORE_CONFIG``, then
    ``./curvestore.toml``, then ``~/.config/curvestore/config.toml``."""
    files = [Path("curvestore.toml"), Path.home() / ".config" / "curvestore" / "config.toml"]
    if os.environ.get("CURVESTORE_CONFIG"):
        files.insert(0, Path(os.environ["CURVESTORE_CONFIG"]))
    return files


def resolve_named(name: str) -> str:
    """The URL of ``[stores.<name>]`` in the first config file that defines it."""
    searched = []
    for path in config_files():
        if not path.is_file():
            continue
        searched.append(str(path))
        try:
            with open(path, "rb") as f:
                stores = tomllib.load(f).get("stores", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read {path} as TOML: {exc}") from exc
        if not isinstance(stores, dict):
            raise ConfigurationError(
                f"'stores' in {path} must be a table of named stores ([stores.<name>] with a "
                f"url = \"...\"), got {type(stores).__name__}")
        entry = stores.get(name)
        if entry is not None:
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise ConfigurationError(f"[stores.{name}] in {path} needs a url = \"...\"")
            return str(entry["url"])
    where = ", ".join(searched) or "no config file found"
    raise ConfigurationError(f"no store named {name!r} ({where}); define [stores.{name}] "
                             "with a url in curvestore.toml or $CURVESTORE_CONFIG")


def _backend(target: str | Backend | None, read_only: bool) -> tuple[Backend, str, dict[str, str]]:
    if isinstance(target, Backend):
        return target, repr(target), {}
    if target is None:
        target = os.environ.get("CURVESTORE_URL")
        if not target:
            raise ConfigurationError("no store URL given and CURVESTORE_URL is not set")
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, str) and target.startswith("@"):
        target = resolve_named(target[1:])
    url: StoreURL = parse_url(target)
    store_options, url = url.pop_options("codec", "read_only", "time_unit")
    if "read_only" in store_options:
        read_only = read_only or _flag("read_only", store_options["read_only"])
    cls = get_backend_class(url.scheme)
    return cls.from_url(url, read_only=read_only), url.redacted(), store_options


def create_store(
    url: str | os.PathLike[str] | Backend,
    *,
    keys: Mapping[str, Any] | Iterable[str],
    freq: str,
    tz: str,
    chunking: str = "month",
    codec: str = "lz4",
    dtype: str = "float64",
    exist_ok: bool = False,
    time_unit: str | None = None,
) -> Store:
    """Create a store and return it open.

    Parameters
    ----------
    url
        ``file:///abs/path``, ``file://./relative``, a bare path, ``memory://name``, or any
        scheme a plugin registers; or a Backend instance.
    keys
        Key attributes in order, name -> ``str`` or ``int`` (a list of names means all str).
    freq, tz, chunking
        The grid: a fixed frequency ('15min', '1h'...), an IANA time zone, 'month' or 'year'.
    codec
        Default codec for new chunks ('lz4'; 'zstd', 'pcodec', 'none' or a plugin's).
    exist_ok
        If a store already exists there with the same configuration, open it instead of
        raising StoreExistsError (a different configuration still raises).
    time_unit
        Unit of the DatetimeIndex that reads return: ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``;
        None (or ``"auto"``) is the unit pandas gives new timestamps (``us`` on pandas 3,
        ``ns`` on pandas 2). A setting of this handle, not of the store; also a URL option.

    Raises
    ------
    StoreExistsError, ConfigMismatchError, ConfigurationError, UnknownBackendError,
    UnknownCodecError, BackendNotInstalledError
    """
    config = StoreConfig.build(keys=keys, freq=freq, tz=tz, chunking=chunking, codec=codec,
                               dtype=dtype)
    from curvestore.core.grid import get_grid

    get_grid(config.freq_ns, config.tz, config.chunking)  # refuse periods off the grid
    backend, shown, options = _backend(url if not isinstance(url, os.PathLike) else os.fspath(url),
                                       False)
    if "codec" in options:
        raise ConfigurationError("give the codec as create_store(codec=...), not in the URL")
    if time_unit is None:
        time_unit = options.get("time_unit")
    try:
        existing = backend.read_manifest()
        if existing is not None:
            if not exist_ok:
                raise StoreExistsError(f"a store already exists at {shown}; use open_store",
                                       url=shown)
            stored = StoreConfig.from_manifest(existing, shown)
            stored.check_compatible(keys=config.keys, freq=freq, tz=tz, chunking=chunking,
                                    dtype=dtype)
            return Store(backend, stored, url=shown, codec=codec, time_unit=time_unit,
                         **_plugged())
        # validates the codec and time unit before creating
        store = Store(backend, config, url=shown, time_unit=time_unit, **_plugged())
        store.check_writable()
        backend.create_manifest(config.manifest())
        return store
    except BaseException:
        backend.close()
        raise


def open_store(
    url: str | os.PathLike[str] | Backend | None = None,
    *,
    read_only: bool = False,
    codec: str | None = None,
    time_unit: str | None = None,
    **expected: Any,
) -> Store:
    """Open an existing store.

    Parameters
    ----------
    url
        As for :func:`create_store`; ``"@name"`` is the ``[stores.name]`` entry of a TOML
        config file (see :func:`config_files`); None reads ``CURVESTORE_URL``.
    read_only
        Refuse writes (ReadOnlyError).
    codec
        Codec for chunks written from now on (older chunks keep and use their own).
    time_unit
        Unit of the DatetimeIndex that reads return (see :func:`create_store`); also the URL
        option ``time_unit=``.
    **expected
        ``keys``, ``freq``, ``tz``, ``chunking``, ``dtype`` the caller relies on: any
        difference from the store's frozen configuration raises ConfigMismatchError.
    """
    unknown = set(expected) - {"keys", "freq", "tz", "chunking", "dtype"}
    if unknown:
        raise ConfigurationError(f"unknown open_store arguments {sorted(unknown)}")
    backend, shown, options = _backend(
        os.fspath(url) if isinstance(url, os.PathLike) else url, read_only)
    try:
        manifest = backend.read_manifest()
        if manifest is None:
            raise StoreNotFoundError(f"no curvestore store at {shown}; create it with "
                                     "create_store or `curvestore create`", url=shown)
        config = StoreConfig.from_manifest(manifest, shown)
        config.check_compatible(**expected)
        return Store(backend, config, url=shown, codec=codec or options.get("codec"),
                     **_plugged(),
                     read_only=read_only or backend.read_only,
                     time_unit=options.get("time_unit") if time_unit is None else time_unit)
    except BaseException:
        backend.close()
        raise
