"""The plugin system: hook specs, built-ins registered as plugins, entry-point discovery."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

import curvestore
from curvestore import hookspecs
from curvestore.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    UnknownBackendError,
    UnknownCodecError,
)
from curvestore.hookspecs import hookimpl
from curvestore.plugins import DEFAULT_PLUGINS, get_plugin_manager
from curvestore.registry import PluginEntry, Registrar, get_registry, reset_registry


def _hookspecs() -> list:
    return [
        f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "curvestore_spec")
    ]


def test_every_hook_is_documented() -> None:
    specs = _hookspecs()
    assert {f.__name__ for f in specs} >= {"register_backends", "register_codecs",
                                           "chunks_committed"}
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert len(doc.split()) >= 15, f"hook {spec.__name__} lacks a real docstring"
        for param in inspect.signature(spec).parameters:
            assert param in doc, f"hook {spec.__name__} does not document {param!r}"


def test_builtins_are_registered_as_plugins() -> None:
    pm = get_plugin_manager()
    for name in DEFAULT_PLUGINS:
        assert pm.get_plugin(name) is not None
    registry = get_registry()
    assert registry.backends["file"].distribution.startswith("curvestore ")
    assert registry.backends["memory"].target == "curvestore.backends.memory:MemoryBackend"
    assert {"none", "lz4", "zstd", "pcodec"} <= set(registry.codecs)


def test_entry_point_plugin_is_discovered() -> None:
    # tests/sample_plugin is pip-installed by CI; it registers through the entry point only.
    registry = get_registry()
    assert registry.backends["sqlite"].distribution.startswith("curvestore-sqlite ")
    assert registry.codecs["zlib"].target == "curvestore_sqlite.codec:ZlibCodec"


def test_duplicate_scheme_is_refused_unless_clobbered() -> None:
    registrar = Registrar()
    registrar.backend(("x",), "a.b:C")
    registrar.distribution = "other"
    with pytest.raises(ConfigurationError, match="registered twice"):
        registrar.backend(("x",), "d.e:F")
    registrar.backend(("x",), "d.e:F", clobber=True)
    assert registrar.backends["x"].target == "d.e:F"


def test_unknown_scheme_lists_available() -> None:
    with pytest.raises(UnknownBackendError) as info:
        curvestore.open_store("nosuch://x")
    assert info.value.scheme == "nosuch"
    assert "file" in str(info.value) and "memory" in str(info.value)


def test_unknown_codec_lists_available() -> None:
    with pytest.raises(UnknownCodecError) as info:
        curvestore.create_store("memory://", keys=["a"], freq="1h", tz="UTC", codec="brotli9")
    assert info.value.codec_id == "brotli9"
    assert "lz4" in str(info.value)


def test_missing_driver_names_the_extra() -> None:
    entry = PluginEntry("backend", "gcs", "curvestore_no_such_module:Backend", "gcs", "x 1.0")
    with pytest.raises(BackendNotInstalledError, match=r'pip install "curvestore\[gcs\]"'):
        entry.load()


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def chunks_committed(self, store, changes) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(len(changes))


def test_observer_hook_sees_commits_and_failures_do_not_break_writes() -> None:
    pm = get_plugin_manager()
    recorder = _Recorder()
    pm.register(recorder, name="recorder")

    class Broken:
        @hookimpl
        def chunks_committed(self, store, changes) -> None:  # type: ignore[no-untyped-def]
            raise RuntimeError("observer failure")

    pm.register(Broken(), name="broken")
    try:
        store = curvestore.create_store("memory://", keys=["a"], freq="1h", tz="UTC")
        index = pd.date_range("2024-01-31 22:00", periods=4, freq="1h", tz="UTC")
        assert store.write({"a": "x"}, pd.Series([1.0, 2.0, 3.0, 4.0], index=index)) == 2
        assert recorder.seen == [2]
        assert store.read({"a": "x"}).tolist() == [1.0, 2.0, 3.0, 4.0]
    finally:
        pm.unregister(name="recorder")
        pm.unregister(name="broken")


def test_load_plugins_env_restricts_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURVESTORE_LOAD_PLUGINS", "")
    reset_registry()
    try:
        registry = get_registry()
        assert "sqlite" not in registry.backends
        assert "file" in registry.backends
    finally:
        monkeypatch.delenv("CURVESTORE_LOAD_PLUGINS")
        reset_registry()
    assert "sqlite" in get_registry().backends
