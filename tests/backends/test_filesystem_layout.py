"""Filesystem specifics the conformance suites cannot see: the on-disk layout, corruption
detection, recovery of a batch cut short at each point of the commit protocol, what a
transaction reads, and the change feed's positions."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.backends.filesystem import FileBackend
from curvestore.core import chunks
from curvestore.core.cursor import encode_cursor
from curvestore.core.transact import transaction
from curvestore.errors import ConfigurationError, IntegrityError
from curvestore.registry import get_codec

KEYS = {"site": str, "kind": str, "n": int}


def _series(start: str, periods: int, value: float = 1.0) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq="1h", tz="UTC")
    return pd.Series(np.full(periods, value), index=index)


@pytest.fixture
def store(tmp_path: Path):
    s = curvestore.create_store(f"file-shards://{tmp_path}/s", keys=KEYS, freq="1h", tz="UTC")
    yield s
    s.close()


def test_layout_is_hive_style_one_shard_per_year_of_month_chunks(store, tmp_path: Path) -> None:
    store.write({"site": "a/b %", "kind": "..", "n": 7}, _series("2024-01-31 20:00", 10))
    store.write({"site": "a/b %", "kind": "..", "n": 7}, _series("2023-12-31 20:00", 2),
                mode="update")
    series_dir = tmp_path / "s" / "series" / "site=a%2Fb%20%25" / "kind=%2e2e" / "n=7"
    assert sorted(p.name for p in series_dir.iterdir()) == ["2023.cvs", "2024.cvs"]
    data = (series_dir / "2024.cvs").read_bytes()
    index = file_shards.decode_index(data, len(data), "2024.cvs")
    assert index.key == ("a/b %", "..", 7)
    assert [m.chunk for m in index.metas] == [24288, 24289]  # January and February 2024
    assert [m.count for m in index.metas] == [4, 6]
    assert index.offsets == (0, index.metas[0].size)
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["freq"] == "1h"
    assert store.keys() == [{"site": "a/b %", "kind": "..", "n": 7}]


@pytest.mark.parametrize("url", ["file://./rel/path", "file:///abs/path", "relative/bare"])
def test_url_forms(url: str) -> None:
    backend = FileBackend.from_url(curvestore.core.url.parse_url(url))
    assert backend.root.is_absolute()


def test_url_rejects_hosts_and_unknown_options() -> None:
    from curvestore.core.url import parse_url

    with pytest.raises(ConfigurationError, match="file:///absolute"):
        FileBackend.from_url(parse_url("file://somehost/x"))
    with pytest.raises(ConfigurationError, match="unknown option"):
        FileBackend.from_url(parse_url("file:///x?compress=yes"))


def _one_shard(tmp_path: Path) -> Path:
    return next((tmp_path / "s" / "series").rglob("*.cvs"))


def test_flipped_payload_byte_is_detected(store, tmp_path: Path) -> None:
    key = {"site": "a", "kind": "k", "n": 1}
    store.write(key, _series("2024-01-01", 48, 2.5))
    path = _one_shard(tmp_path)
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF  # inside the first payload
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="checksum"):
        store.read(key)


@pytest.mark.parametrize("from_end",
                         [file_shards.TRAILER_SIZE + 5, 1, file_shards.TRAILER_SIZE - 1])
def test_flipped_index_or_trailer_byte_is_detected(store, tmp_path: Path, from_end: int) -> None:
    key = {"site": "a", "kind": "k", "n": 1}
    store.write(key, _series("2024-01-01", 48, 2.5))
    path = _one_shard(tmp_path)
    data = bytearray(path.read_bytes())
    data[-from_end] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="shard"):
        store.read(key)


def _staged_commit(store, key: dict, series: pd.Series, stop_after: str, monkeypatch) -> None:
    """Run a write that dies right after ``stop_after`` ('log' or 'rename') in the commit."""
    backend = store.backend

    class Killed(BaseException):
        pass

    original_replace = os.replace
    original_append = fslog.append
    calls = {"append": 0, "replace": 0}

    def append(path, text, *, sync):  # type: ignore[no-untyped-def]
        calls["append"] += 1
        if stop_after == "log-torn" and calls["append"] == 1:
            original_append(path, text[: len(text) // 2], sync=sync)
            raise Killed
        original_append(path, text, sync=sync)
        if stop_after == "log" and calls["append"] == 1:
            raise Killed

    def replace(src, dst):  # type: ignore[no-untyped-def]
        calls["replace"] += 1
        original_replace(src, dst)
        if stop_after == "rename" and calls["replace"] == 1:
            raise Killed

    monkeypatch.setattr(fslog, "append", append)
    monkeypatch.setattr(os, "replace", replace)
    # A killed process runs no cleanup: skip the transaction's discard of temp files.
    monkeypatch.setattr("curvestore.backends._fstx.FileTransaction.discard",
                        lambda self: None)
    with pytest.raises(Killed):
        store.write(key, series, mode="replace")
    monkeypatch.undo()
    assert backend is store.backend


@pytest.mark.parametrize("stop_after, expect_new", [("log-torn", False), ("log", True),
                                                    ("rename", True)])
def test_interrupted_batch_is_rolled_back_or_forward(store, tmp_path: Path, monkeypatch,
                                                     stop_after: str, expect_new: bool) -> None:
    key = {"site": "a", "kind": "k", "n": 1}
    old = _series("2024-01-01", 24 * 70, 1.0)  # three month chunks
    new = _series("2024-01-05", 24 * 60, 2.0)
    store.write(key, old)
    cursor = store.changes().cursor
    _staged_commit(store, key, new, stop_after, monkeypatch)
    reopened = curvestore.open_store(f"file-shards://{tmp_path}/s")  # recovery runs here
    got = reopened.read(key)
    expected = new if expect_new else old
    assert got.index.equals(expected.index)
    assert np.array_equal(got.to_numpy(), expected.to_numpy())
    feed = reopened.changes(cursor).items
    assert len(feed) == (3 if expect_new else 0)  # 2 puts + 1 tombstone, or nothing
    assert not list((tmp_path / "s" / "tmp").iterdir())
    # and the store keeps working afterwards
    reopened.write(key, _series("2024-01-02", 5, 9.0), mode="update")
    assert reopened.read(key, "2024-01-02", "2024-01-02 04:00").tolist() == [9.0] * 5


def test_cli_verify_reports_corruption(store, tmp_path: Path, capsys) -> None:
    from curvestore.cli import main

    store.write({"site": "a", "kind": "k", "n": 1}, _series("2024-01-30", 72, 2.5))
    store.write({"site": "b", "kind": "k", "n": 2}, _series("2024-01-01", 24, 1.5))
    url = f"file-shards://{tmp_path}/s"
    assert main(["verify", url]) == 0
    assert "3 chunks" in capsys.readouterr().err
    path = sorted((tmp_path / "s" / "series" / "site=a").rglob("*.cvs"))[0]
    data = bytearray(path.read_bytes())
    data[0] ^= 0x55  # the first payload: chunk 24288's
    path.write_bytes(bytes(data))
    assert main(["verify", url]) == 1
    out = capsys.readouterr()
    assert "FAILED site=a kind=k n=1 chunk 24288" in out.out and "checksum" in out.out
    assert "1 failure(s)" in out.err
    assert main(["verify", url, "site=b"]) == 0


# -- transactions ------------------------------------------------------------------------------

def test_update_reads_each_shard_once(store, tmp_path: Path, monkeypatch) -> None:
    """The merge's read and the rewrite of the shard share one read of each shard."""
    key = {"site": "a", "kind": "k", "n": 1}
    store.write(key, _series("2023-11-01", 24 * 120, 1.0))  # two shards: 2023 and 2024
    opened: list[str] = []
    original_open = builtins.open

    def counting_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith(".cvs") and "r" in mode:
            opened.append(os.path.basename(file))
        return original_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    store.write(key, _series("2023-12-30", 72, 5.0), mode="update")  # across the year's end
    monkeypatch.undo()
    assert sorted(opened) == ["2023.cvs", "2024.cvs"]
    got = store.read(key)
    assert got["2023-12-30":"2024-01-01 23:00"].tolist() == [5.0] * 72
    assert got.drop(got["2023-12-30":"2024-01-01 23:00"].index).tolist() == [1.0] * (24 * 117)


def _record(k: tuple, chunk: int, value: float) -> curvestore.core.records.ChunkRecord:
    piece = chunks.Piece(chunk, 0, np.full(24, value))
    return chunks.encode(k, piece, get_codec("none"), "float64")


def test_transaction_reads_do_not_see_its_own_puts(store) -> None:
    k = store.schema.key({"site": "a", "kind": "k", "n": 1})
    jan, feb = 2024 * 12, 2024 * 12 + 1  # one shard
    store.write({"site": "a", "kind": "k", "n": 1}, _series("2024-01-01", 24, 1.0))
    with transaction(store.backend, [k]) as tx:
        (before,) = tx.read(k)
        tx.put([_record(k, jan, 2.0)])
        assert tx.read(k) == [before]
        assert [m.chunk for m in tx.live_metas(k)] == [jan]
        tx.put([_record(k, feb, 3.0)])  # the shard staged, not the one read, is rewritten
        assert tx.read(k, jan, feb) == [before]
    assert [(c.chunk, c.version) for c in tx.committed] == [(jan, 2), (feb, 1)]
    got = store.read({"site": "a", "kind": "k", "n": 1})
    assert got.dropna().tolist() == [2.0] * 24 + [3.0] * 24
    assert [r.meta.version for r in store.backend.read_chunks(k)] == [2, 1]


# -- change feed -------------------------------------------------------------------------------

def test_feed_positions_are_sequence_segment_offset(store, tmp_path: Path) -> None:
    """Cursors issued before the feed moved into the core carry (last sequence, first
    sequence of the segment, offset after the batch's end line): they must stay valid."""
    key = {"site": "a", "kind": "k", "n": 1}
    store.write(key, _series("2024-01-01", 48, 1.0))  # chunk 1 of the feed
    (segment,) = (tmp_path / "s" / "log").glob("*.log")
    assert segment.name == fslog.Log.segment_name(1)
    offset = segment.stat().st_size  # the batch's end line is the last line
    store_id = json.loads((tmp_path / "s" / "manifest.json").read_text())["store_id"]
    legacy = encode_cursor(store_id, (1, 1, offset))
    assert store.changes().cursor == legacy
    store.write({"site": "b", "kind": "k", "n": 2}, _series("2024-02-01", 5, 2.0))
    page = store.changes(legacy)
    assert [(c.key, c.version) for c in page.items] == [({"site": "b", "kind": "k", "n": 2}, 1)]
    assert page.cursor == encode_cursor(store_id, (2, 1, segment.stat().st_size))
