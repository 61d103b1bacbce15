"""Archival (copy, verify, tombstone; re-runnable and resumable) and tiered reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import curvestore
from curvestore.backends.tiered import tiered_url
from curvestore.core.archive import archive
from curvestore.errors import ConfigurationError
from curvestore.testing.store import assert_series_exact, curve, dense

KEYS = {"site": str, "n": int}


def _store(url: str, codec: str = "lz4") -> curvestore.Store:
    return curvestore.create_store(url, keys=KEYS, freq="1h", tz="Europe/Paris", codec=codec)


@pytest.fixture
def stores(tmp_path: Path):
    hot, cold = _store(f"file://{tmp_path}/hot"), _store(f"file://{tmp_path}/cold")
    hot.write_many({("a", 1): curve("2022-03-01", end="2024-06-10", freq="1h", seed=1),
                    ("b", 2): curve("2023-11-15", periods=3000, freq="1h", seed=2, nan=0.2)})
    yield hot, cold
    hot.close()
    cold.close()


def test_archive_copies_closed_periods_byte_identical(stores) -> None:
    hot, cold = stores
    report = archive(hot, cold, "2024-01-01")
    assert (report.series, report.chunks) == (2, 22 + 2)  # 2022-03..2023-12, 2023-11..12
    for key, records in cold.backend.scan({}):
        originals = {r.chunk: r for r in hot.backend.read_chunks(key)}
        for r in records:
            assert r.chunk < 2024 * 12
            assert (r.payload, r.meta.codec) == (originals[r.chunk].payload,
                                                 originals[r.chunk].meta.codec)
    again = archive(hot, cold, "2024-01-01")
    assert (again.chunks, again.skipped) == (0, 24)


def test_archive_reencodes_verifies_and_deletes(stores, tmp_path: Path) -> None:
    hot, cold = stores
    before = {tuple(k.values()): s for k, s in hot.read_many()}
    report = archive(hot, cold, "2024-01-01", codec="pcodec", delete_source=True)
    assert report.tombstoned == 24
    assert {r.meta.codec for _k, rs in cold.backend.scan({}) for r in rs} == {"pcodec"}
    assert hot.read({"site": "a", "n": 1}).index[0].strftime("%Y-%m") == "2024-01"
    assert archive(hot, cold, "2024-01-01", codec="pcodec", delete_source=True).chunks == 0
    tiered = curvestore.open_store(tiered_url(f"file://{tmp_path}/hot",
                                              f"file://{tmp_path}/cold"))
    after = {tuple(k.values()): s for k, s in tiered.read_many()}
    assert list(after) == list(before)
    for name, series in before.items():  # point for point equal to the read before archival
        assert_series_exact(after[name], series)
        pd.testing.assert_series_equal(after[name], series)  # in pandas' own unit, with freq
        window = series.loc["2023-12-31":"2024-01-02 00:00"]  # across the tier boundary
        assert_series_exact(tiered.read(dict(zip(KEYS, name, strict=True)), "2023-12-31",
                                        "2024-01-02"), dense(window, "1h", "Europe/Paris"))
    tiered.close()


def test_tiered_writes_go_hot_and_deletes_reach_cold(stores, tmp_path: Path) -> None:
    hot, cold = stores
    archive(hot, cold, "2024-01-01", delete_source=True)
    tiered = curvestore.open_store(tiered_url(f"file://{tmp_path}/hot",
                                              f"file://{tmp_path}/cold"))
    key = {"site": "a", "n": 1}
    patch = curve("2023-06-01", periods=5, freq="1h", value=42.0)
    tiered.write(key, patch, mode="update")  # an archived period updated: the hot copy wins
    assert tiered.read(key, "2023-06-01", "2023-06-01 04:00").tolist() == [42.0] * 5
    assert cold.read(key, "2023-06-01", "2023-06-01 04:00").tolist() != [42.0] * 5
    tiered.delete(key)
    assert tiered.read(key) is None and cold.read(key) is None
    assert [k["site"] for k in tiered.keys()] == ["b"]
    with pytest.raises(ConfigurationError, match="hot= and cold="):
        curvestore.open_store("tiered://?hot=memory://x")
    tiered.close()


@pytest.mark.slow
def test_archive_killed_midway_resumes_without_loss(tmp_path: Path) -> None:
    hot_url, cold_url = f"file://{tmp_path}/hot", f"file://{tmp_path}/cold"
    hot, cold = _store(hot_url), _store(cold_url)
    cold.close()
    hot.write_many({(f"s{i:02d}", i): curve("2021-01-01", periods=20000, freq="1h", seed=i,
                                            nan=0.05) for i in range(30)})
    before = {tuple(k.values()): s for k, s in hot.read_many()}
    cmd = [sys.executable, "-m", "curvestore.cli", "archive", hot_url, cold_url,
           "--before", "2023-01-01", "--codec", "pcodec", "--delete-source"]
    kills = 0
    for delay in (0.4, 0.7, 1.0, 1.3):
        child = subprocess.Popen(cmd, env={**os.environ}, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    done = subprocess.run(cmd, env={**os.environ}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kills >= 1
    tiered = curvestore.open_store(tiered_url(hot_url, cold_url))
    after = {tuple(k.values()): s for k, s in tiered.read_many()}
    assert list(after) == list(before)
    for name, series in before.items():
        assert_series_exact(after[name], series)
    cold = curvestore.open_store(cold_url)
    assert all(r.chunk < 2023 * 12 for _k, rs in cold.backend.scan({}) for r in rs)
    assert all(r.chunk >= 2023 * 12 for _k, rs in hot.backend.scan({}) for r in rs)
