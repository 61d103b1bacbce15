"""A manifest that is damaged (a field missing or of the wrong type) or foreign is refused with
a typed error naming the store, on open and on create(exist_ok=True), and nothing is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import curvestore
from curvestore.backends.memory import MemoryBackend
from curvestore.core.config import StoreConfig
from curvestore.errors import ConfigurationError, CurvestoreError, IntegrityError

KEYS = {"site": str, "n": int}


@pytest.fixture
def name() -> Iterator[str]:
    name = f"manifest-{uuid.uuid4().hex}"
    curvestore.create_store(f"memory://{name}", keys=KEYS, freq="15min", tz="UTC").close()
    yield name
    MemoryBackend.forget(name)


def _good() -> dict[str, Any]:
    return StoreConfig.build(keys=KEYS, freq="15min", tz="Europe/Paris").manifest()


def _without(field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m.pop(field)


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m.__setitem__(field, value)


DAMAGES = {
    "no codec": (_without("codec"), "'codec' is missing"),
    "no store_id": (_without("store_id"), "'store_id' is missing"),
    "no keys": (_without("keys"), "'keys' is missing"),
    "no freq": (_without("freq"), "'freq' is missing"),
    "no tz": (_without("tz"), "'tz' is missing"),
    "no chunking": (_without("chunking"), "'chunking' is missing"),
    "no dtype": (_without("dtype"), "'dtype' is missing"),
    "keys a string": (_set("keys", "site"), "'keys' must be a list"),
    "keys an object": (_set("keys", {"site": "str"}), "'keys' must be a list"),
    "key without type": (_set("keys", [{"name": "site"}]), "each key must be"),
    "key of type float": (_set("keys", [{"name": "site", "type": "float"}]), "each key must"),
    "key entry a string": (_set("keys", ["site"]), "each key must be"),
    "duplicate keys": (_set("keys", [{"name": "a", "type": "str"}] * 2), "duplicate key"),
    "freq a number": (_set("freq", 900), "'freq' must be a non-empty string"),
    "freq unparsable": (_set("freq", "often"), "not a fixed duration"),
    "tz unknown": (_set("tz", "Mars/Olympus"), "unknown time zone"),
    "chunking unknown": (_set("chunking", "week"), "'chunking' must be one of"),
    "dtype unknown": (_set("dtype", "int8"), "'dtype' must be one of"),
    "codec null": (_set("codec", None), "'codec' must be a non-empty string"),
    "store_id a list": (_set("store_id", ["x"]), "'store_id' must be a non-empty string"),
    "no format_version": (_without("format_version"), "'format_version' must be an integer"),
    "format_version a string": (_set("format_version", "1"), "'format_version' must be an"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_damaged_manifest_is_an_integrity_error(damage: str) -> None:
    mutate, fragment = DAMAGES[damage]
    manifest = _good()
    mutate(manifest)
    with pytest.raises(IntegrityError, match="damaged") as info:
        StoreConfig.from_manifest(manifest, "file:///data/loads")
    assert fragment in str(info.value)
    assert "file:///data/loads" in str(info.value)


@pytest.mark.parametrize("manifest", [
    [], "curvestore", None, 3, {"format": "zarr"}, {}, {"format_version": 1},
], ids=["list", "str", "none", "int", "other-format", "empty", "no-format"])
def test_foreign_manifest_is_a_configuration_error(manifest: Any) -> None:
    with pytest.raises(ConfigurationError, match="not a curvestore store"):
        StoreConfig.from_manifest(manifest)


def test_newer_format_version_asks_for_an_upgrade() -> None:
    with pytest.raises(ConfigurationError, match="upgrade curvestore"):
        StoreConfig.from_manifest({**_good(), "format_version": 99})


def test_manifest_without_keys_reads() -> None:
    """The manifest of a Django chunk-store model without key fields (one series per
    table, as holcstore allows) is valid; new stores elsewhere still need a key."""
    manifest = {**_good(), "keys": []}
    assert StoreConfig.from_manifest(manifest).keys.names == ()
    with pytest.raises(ConfigurationError, match="at least one key"):
        StoreConfig.build(keys={}, freq="15min", tz="Europe/Paris")


def test_good_manifest_round_trips() -> None:
    config = StoreConfig.build(keys=KEYS, freq="15min", tz="Europe/Paris", chunking="year")
    assert StoreConfig.from_manifest(config.manifest()) == config


@pytest.mark.parametrize("damage", ["no codec", "no store_id", "keys a string", "tz unknown"])
def test_open_and_create_refuse_a_damaged_manifest(name: str, damage: str) -> None:
    backend = MemoryBackend(name)
    assert backend.state.manifest is not None
    DAMAGES[damage][0](backend.state.manifest)
    url = f"memory://{name}"
    for call in (lambda: curvestore.open_store(url),
                 lambda: curvestore.open_store(url, read_only=True),
                 lambda: curvestore.create_store(url, keys=KEYS, freq="15min", tz="UTC",
                                                 exist_ok=True)):
        with pytest.raises(IntegrityError) as info:
            call()
        assert isinstance(info.value, CurvestoreError)
        assert url in str(info.value) and DAMAGES[damage][1] in str(info.value)
