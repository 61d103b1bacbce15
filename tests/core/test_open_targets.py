"""Ways to name a store: URL forms, CURVESTORE_URL, named entries of a TOML config file."""

from __future__ import annotations

from pathlib import Path

import pytest

import curvestore
from curvestore.errors import ConfigurationError, StoreNotFoundError


def _create(url: str) -> None:
    curvestore.create_store(url, keys=["site"], freq="1h", tz="UTC").close()


def test_bare_path_and_pathlike(tmp_path: Path) -> None:
    _create(str(tmp_path / "a"))
    assert curvestore.open_store(tmp_path / "a").config.freq == "1h"
    assert curvestore.open_store(f"file://{tmp_path}/a").config.tz == "UTC"


def test_relative_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _create("file://./rel/store")
    assert (tmp_path / "rel" / "store" / "manifest.json").is_file()
    assert curvestore.open_store("rel/store").keys() == []


def test_env_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(str(tmp_path / "e"))
    monkeypatch.setenv("CURVESTORE_URL", f"file://{tmp_path}/e")
    assert curvestore.open_store().config.keys.names == ("site",)
    monkeypatch.delenv("CURVESTORE_URL")
    with pytest.raises(ConfigurationError, match="CURVESTORE_URL"):
        curvestore.open_store()


def test_named_store_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(str(tmp_path / "n"))
    config = tmp_path / "cfg.toml"
    config.write_text(f'[stores.loads]\nurl = "file://{tmp_path}/n"\n')
    monkeypatch.setenv("CURVESTORE_CONFIG", str(config))
    assert curvestore.open_store("@loads").config.freq == "1h"
    with pytest.raises(ConfigurationError, match="no store named 'other'"):
        curvestore.open_store("@other")


def test_open_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="create_store"):
        curvestore.open_store(tmp_path / "nothing")


def test_secrets_never_shown() -> None:
    from curvestore.core.url import parse_url

    url = parse_url("sqlite://user:s3cret@host/db?token=abc&table=x")
    assert "s3cret" not in url.redacted() and "abc" not in url.redacted()
    assert "table=x" in url.redacted()


@pytest.mark.parametrize("content, fragment", [
    (b'stores = "x"\n', "must be a table of named stores"),
    (b'[[stores]]\nurl = "file:///x"\n', "must be a table of named stores"),
    (b"\xff\xfe\x00\x01 binary", "cannot read"),
    (b"[stores.loads\nurl = 1\n", "cannot read"),
    (b"[stores]\nloads = 3\n", "needs a url"),
    (b"[stores.loads]\nurl = 3\n", "needs a url"),
], ids=["string", "array-of-tables", "binary", "bad-toml", "entry-not-table", "url-not-str"])
def test_bad_config_file_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  content: bytes, fragment: str) -> None:
    config = tmp_path / "cfg.toml"
    config.write_bytes(content)
    monkeypatch.setenv("CURVESTORE_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match=fragment) as info:
        curvestore.open_store("@loads")
    assert str(config) in str(info.value)
