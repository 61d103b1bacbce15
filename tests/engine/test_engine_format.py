"""What only the engine's own format must prove: versions, damage, checkpoints, leftovers.
Everything a store does is proven by the shared suites (test_engine_conformance.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

import curvestore
from curvestore.core.verify import verify_store
from curvestore.engine import _transaction
from curvestore.engine._format import (
    INLINE_AT,
    MAGIC,
    MAGIC_DATA,
    catalog_key,
    log_key,
    segment_key,
)
from curvestore.errors import ConfigurationError, IntegrityError
from curvestore.testing.compaction import daily_frame, expected_frame

KEYS = {"site": str, "kind": str, "n": int}


def create(url: str) -> curvestore.Store:
    return curvestore.create_store(url, keys=KEYS, freq="15min", tz="Europe/Paris")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/store"


@pytest.fixture
def segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit writes a segment (none small enough to travel in its entry)."""
    monkeypatch.setattr(_transaction, "INLINE_BYTES", 0)


def test_unknown_format_version_is_refused(url: str, tmp_path: Path) -> None:
    create(url).close()
    manifest = tmp_path / "store" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["engine"]["format"] = 3
    manifest.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match=r"engine format 3.*formats 1 and 2 only"):
        curvestore.open_store(url)


def test_a_store_of_the_shard_format_is_named(tmp_path: Path) -> None:
    create(f"file-shards://{tmp_path}/old").close()
    with pytest.raises(ConfigurationError, match=r"file-shards://.*curvestore sync"):
        curvestore.open_store(f"file://{tmp_path}/old")
    assert not (tmp_path / "old" / ".curvestore").exists()  # nothing created in it


def test_read_only_open_of_nothing_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(curvestore.StoreNotFoundError):
        curvestore.open_store(f"file://{tmp_path}/absent", read_only=True)
    assert not (tmp_path / "absent").exists()


def test_damaged_entry_is_reported_by_name(url: str, tmp_path: Path) -> None:
    with create(url) as store:
        store.write_frame(daily_frame(0), mode="update")
        store.write_frame(daily_frame(1), mode="update")
    entry = tmp_path / "store" / log_key(2)
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="log/00000000000000000002"):
        curvestore.open_store(url).read_frame()
    with curvestore.open_store(url, read_only=True) as store:
        report = verify_store(store)
    assert [f.message for f in report.failures if "00000000000000000002" in f.message]


def test_missing_segment_is_reported(url: str, tmp_path: Path,
        segments: None) -> None:
    with create(url) as store:
        store.write_frame(daily_frame(0), mode="update")
    for segment in (tmp_path / "store" / "data").iterdir():
        segment.unlink()
    with curvestore.open_store(url, read_only=True) as store:
        report = verify_store(store)
    assert any("is missing" in f.message for f in report.failures)


def test_checkpoints_are_written_and_a_damaged_one_is_skipped(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_transaction, "CHECKPOINT_EVERY", 3)
    with create(url) as store:
        for day in range(7):
            store.write_frame(daily_frame(day), mode="update")
    checkpoints = sorted((tmp_path / "store" / "catalog").iterdir())
    assert [p.name for p in checkpoints] == [catalog_key(3)[8:], catalog_key(6)[8:]]
    with curvestore.open_store(url) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(7), check_freq=False)
    checkpoints[-1].write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING), curvestore.open_store(url) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(7), check_freq=False)
    assert "skipping checkpoint catalog/00000000000000000006" in caplog.text


def test_orphan_segments_are_collected_after_the_grace(url: str, tmp_path: Path,
        segments: None) -> None:
    with create(url) as store:
        store.write_frame(daily_frame(0), mode="update")
        store.write_frame(daily_frame(1), mode="update")
        backend = store.backend
        orphan = segment_key()
        backend.objects.put(orphan, b"a commit that died before its entry")  # type: ignore[attr-defined]
        report = store.compact()
        assert report["segments_removed"] == 0  # young: may be a commit in flight
        removed, freed = backend.collect_garbage(grace=0)  # type: ignore[attr-defined]
        assert removed == 3  # the orphan and the two segments compaction replaced
        assert freed > len(b"a commit that died before its entry")
    data = tmp_path / "store" / "data"
    assert orphan.rpartition("/")[2] not in {p.name for p in data.iterdir()}
    with curvestore.open_store(url) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(2), check_freq=False)


def test_a_damaged_fragment_stops_compaction_and_is_named(url: str, tmp_path: Path,
        segments: None) -> None:
    with create(url) as store:
        for day in range(4):  # from 01-27: fragments of January's chunk, back to back
            store.write_frame(daily_frame(day, series=20), mode="update")
    segments = sorted((tmp_path / "store" / "data").iterdir())
    damaged = segments[2]  # the third day: 20 raw fragments in one run
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2 + 3] ^= 0x01
    damaged.write_bytes(bytes(data))
    entries = sorted((tmp_path / "store" / "log").iterdir())
    with curvestore.open_store(url) as store, pytest.raises(
            IntegrityError, match=r"chunk \d+ of series sid 1\d? fails its checksum"):
        store.compact()
    assert sorted((tmp_path / "store" / "log").iterdir()) == entries  # nothing committed


def _entries(tmp_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((tmp_path / "store" / "log").iterdir())]


def test_a_small_commit_carries_its_payloads_in_its_entry(url: str, tmp_path: Path) -> None:
    with create(url) as store:
        store.write_frame(daily_frame(0), mode="update")
        store.write_frame(daily_frame(1), mode="update")
    assert not list((tmp_path / "store" / "data").glob("*.seg"))
    assert [e[:len(MAGIC_DATA)] for e in _entries(tmp_path)] == [MAGIC_DATA, MAGIC_DATA]
    with curvestore.open_store(url, read_only=True) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(2), check_freq=False)
        assert verify_store(store).ok
    with curvestore.open_store(url) as store:
        assert store.compact()["chunks"] > 0  # joined into a segment
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(2), check_freq=False)
    assert list((tmp_path / "store" / "data").glob("*.seg"))


def test_a_damaged_payload_in_an_entry_is_found(url: str, tmp_path: Path) -> None:
    with create(url) as store:
        store.write_frame(daily_frame(0), mode="update")
    entry = tmp_path / "store" / log_key(1)
    data = bytearray(entry.read_bytes())
    data[INLINE_AT + 5] ^= 0x01  # a payload byte: the entry's own CRC catches it first
    entry.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"log/00000000000000000001.*checksum mismatch"):
        curvestore.open_store(url).read_frame()


def test_a_large_commit_writes_a_segment(url: str, tmp_path: Path) -> None:
    frame = daily_frame(0, series=200)  # 200 meters' day: ~150 KB raw, beyond INLINE_BYTES
    with create(url) as store:
        store.write_frame(frame, mode="update")
        pd.testing.assert_frame_equal(store.read_frame(), frame, check_freq=False)
    assert len(list((tmp_path / "store" / "data").glob("*.seg"))) == 1
    assert _entries(tmp_path)[0].startswith(MAGIC)


def test_a_format_1_store_stays_readable_by_format_1(url: str, tmp_path: Path) -> None:
    """A store made by a version that writes format 1 is written on in format 1 (no entry
    carrying payloads), so that version keeps reading it."""
    create(url).close()
    manifest = tmp_path / "store" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["engine"]["format"] = 1
    manifest.write_text(json.dumps(data))
    with curvestore.open_store(url) as store:
        store.write_frame(daily_frame(0), mode="update")
        store.write_frame(daily_frame(1), mode="update")
        store.compact()
    assert all(e.startswith(MAGIC) for e in _entries(tmp_path))
    assert json.loads(manifest.read_text())["engine"]["format"] == 1
    with curvestore.open_store(url, read_only=True) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(2), check_freq=False)
        assert verify_store(store).ok
