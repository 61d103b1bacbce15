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


def test_relative_paths_are_shown_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    for given in ("relstore", "./dot", "file://./filedot"):
        with curvestore.create_store(given, keys=["site"], freq="1h", tz="UTC") as store:
            name = given.rsplit("/", 1)[-1]
            assert store.url == f"file://{tmp_path / name}"
            assert store.info()["url"] == store.url
        monkeypatch.chdir(tmp_path / "elsewhere")  # the URL shown opens it from anywhere
        assert curvestore.open_store(store.url).config.freq == "1h"
        monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreNotFoundError, match=f"at file://{tmp_path}/nope;"):
        curvestore.open_store("./nope")


def test_nested_urls_are_redacted() -> None:
    from curvestore.backends.tiered import tiered_url
    from curvestore.core.url import parse_url

    hot = "postgresql://postgres:pa%40ss@db:5432/x?table=t&sslpassword=p2"
    shown = parse_url(tiered_url(hot, "s3://b/p?region=r")).redacted()
    assert "pa%40ss" not in shown and "pa@ss" not in shown and "p2" not in shown
    assert shown.startswith("tiered://?hot=")  # still a URL (urlunsplit would drop the //)
    options = parse_url(shown).options
    assert options["hot"] == "postgresql://postgres:***@db:5432/x?table=t&sslpassword=***"
    assert options["cold"] == "s3://b/p?region=r"


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
