"""Compaction semantics (``Store.compact``), on any backend.

A backend that declares :class:`~curvestore.core.capabilities.Compacts` must keep every value,
version and change-feed item through a compaction, run beside writers without losing their
points, and survive a SIGKILL at any moment of one. A backend without it refuses ``compact``
with a ConfigurationError.
"""

from __future__ import annotations

import random
import signal
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.core.verify import verify_store
from curvestore.errors import ConfigurationError, ReadOnlyError
from curvestore.testing.fixtures import FREQ, TZ, StoreFixtures
from curvestore.testing.kills import kill_midway

__all__ = ["CompactionSemantics", "daily_frame"]

_SERIES = 12
_FIRST_DAY = pd.Timestamp("2024-01-27", tz=TZ)


def daily_frame(day: int, series: int = _SERIES) -> pd.DataFrame:
    """Day ``day`` (from 2024-01-27, so days cross a month end) of ``series`` meters as a
    wide frame keyed ``(site, kind, n)``: value ``day + n / 100 + point / 10_000``."""
    index = pd.date_range(_FIRST_DAY + pd.Timedelta(days=day), periods=96, freq=FREQ)
    columns = pd.MultiIndex.from_tuples([("m", "load", n) for n in range(series)],
                                        names=["site", "kind", "n"])
    values = (day + np.arange(series)[None, :] / 100 + np.arange(96)[:, None] / 10_000)
    return pd.DataFrame(values, index=index, columns=columns)


def expected_frame(days: int, series: int = _SERIES) -> pd.DataFrame:
    return pd.concat([daily_frame(d, series) for d in range(days)])


# -- the compacting child of the kill test (run with ``python -c``) --------------------------
_CHILD = (
    "import sys, pathlib; from curvestore.testing.compaction import compact_forever as m; "
    "m(sys.argv[1], int(sys.argv[2]), sys.argv[3])")


def compact_forever(url: str, first_day: int, ready: str) -> None:
    """Append day after day from ``first_day``, compacting after each, until killed."""
    store = curvestore.open_store(url)
    Path(ready).write_text("ready")
    day = first_day
    while True:
        store.write_frame(daily_frame(day), mode="update")
        store.compact()
        day += 1


class CompactionSemantics(StoreFixtures):
    """``Store.compact`` through the public API."""

    #: Seconds to wait for the child of the kill test.
    compaction_timeout: ClassVar[float] = 180.0

    def require_compaction(self, store: curvestore.Store) -> None:
        if not store.capabilities.compacts:
            pytest.skip(f"{type(self).__name__}: the backend stores every chunk whole")

    def test_compact_refused_without_fragments(self, store: curvestore.Store) -> None:
        if store.capabilities.compacts:
            pytest.skip("the backend compacts")
        with pytest.raises(ConfigurationError, match="nothing to compact"):
            store.compact()

    def test_compact_keeps_values_versions_and_feed(self, store: curvestore.Store) -> None:
        self.require_compaction(store)
        for day in range(8):
            store.write_frame(daily_frame(day), mode="update")
        before = store.read_frame()
        feed = self.feed(store, limit=10_000)
        info = store.info()
        report = store.compact()
        assert report["chunks"] == 2 * _SERIES  # January and February, each in fragments
        pd.testing.assert_frame_equal(store.read_frame(), before)
        pd.testing.assert_frame_equal(before, expected_frame(8), check_freq=False)
        assert self.feed(store, limit=10_000) == feed
        after = store.info()
        assert (after["series"], after["chunks"], after["points"]) == \
            (info["series"], info["chunks"], info["points"])
        assert verify_store(store).ok
        assert store.compact()["chunks"] == 0  # nothing left to join
        with self.reopen(store.url) as again:
            pd.testing.assert_frame_equal(again.read_frame(), before)

    @pytest.mark.parametrize("codec", ["lz4-shuffle", "none"])
    def test_compact_keeps_values_of_other_codecs(self, store: curvestore.Store,
                                                  backend_url_factory: Any, codec: str) -> None:
        self.require_compaction(store)
        with curvestore.create_store(backend_url_factory(), keys=self.keys, freq=self.freq,
                                     tz=self.tz, chunking=self.chunking, codec=codec) as store:
            for day in range(8):
                store.write_frame(daily_frame(day), mode="update")
            before = store.read_frame()
            assert store.compact()["chunks"] == 2 * _SERIES
            pd.testing.assert_frame_equal(store.read_frame(), before)
            pd.testing.assert_frame_equal(before, expected_frame(8), check_freq=False)
            assert verify_store(store).ok

    def test_compact_before_leaves_open_periods(self, store: curvestore.Store) -> None:
        self.require_compaction(store)
        for day in range(8):
            store.write_frame(daily_frame(day), mode="update")
        assert store.compact(before="2024-02-01")["chunks"] == _SERIES  # January only
        assert store.compact(before="2024-02-01")["chunks"] == 0
        assert store.compact()["chunks"] == _SERIES
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(8), check_freq=False)

    def test_compact_filter_and_progress(self, store: curvestore.Store) -> None:
        self.require_compaction(store)
        for day in range(3):
            store.write_frame(daily_frame(day), mode="update")
        calls: list[tuple[int, int]] = []
        report = store.compact({"n": 3}, progress=lambda done, total: calls.append((done, total)))
        assert report["chunks"] == 1
        assert calls and calls[-1] == (1, 1)

    def test_compact_refused_read_only(self, store: curvestore.Store) -> None:
        self.require_compaction(store)
        store.write_frame(daily_frame(0), mode="update")
        with self.reopen(store.url, read_only=True) as reader, pytest.raises(ReadOnlyError):
            reader.compact()

    def test_compact_beside_a_writer(self, store: curvestore.Store) -> None:
        """A writer appending while another handle compacts loses nothing."""
        self.require_compaction(store)
        store.write_frame(daily_frame(0), mode="update")
        errors: list[BaseException] = []
        done = threading.Event()

        def write() -> None:
            try:
                with self.reopen(store.url) as writer:
                    for day in range(1, 12):
                        writer.write_frame(daily_frame(day), mode="update")
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=write)
        thread.start()
        with self.reopen(store.url) as compactor:
            while not done.is_set():
                compactor.compact()
        thread.join(60)
        assert not errors, errors
        store.compact()
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(12), check_freq=False)
        assert verify_store(store).ok

    @pytest.mark.slow
    def test_compact_killed_leaves_a_whole_store(self, store: curvestore.Store,
                                                 backend_url: str, tmp_path: Path) -> None:
        """SIGKILL at random moments of append + compaction: the store opens, verifies and
        reads whole days, the same before and after a read-write open."""
        self.require_compaction(store)
        if not getattr(self, "shared_between_processes", True):
            pytest.skip(f"{type(self).__name__}: the backend is not shared between processes")
        if not hasattr(signal, "SIGKILL"):
            pytest.skip("needs SIGKILL")
        store.write_frame(daily_frame(0), mode="update")
        days = 1
        rng = random.Random(20241206)
        for attempt, delay in enumerate([0.0, 0.05, 0.15, 0.3, rng.uniform(0, 0.5),
                                         rng.uniform(0.5, 1.0)]):
            self._kill_compactor(backend_url, days, delay, tmp_path, attempt)
            with self.reopen(backend_url, read_only=True) as reader:
                seen = self._whole_days(reader)
            assert seen >= days
            with self.reopen(backend_url) as again:
                assert self._whole_days(again) == seen
                report = verify_store(again)
                assert report.ok, report.failures
            days = seen
        with self.reopen(backend_url) as again:
            again.compact()
            assert self._whole_days(again) == days

    @staticmethod
    def _whole_days(store: curvestore.Store) -> int:
        frame = store.read_frame()
        days = len(frame) // 96
        pd.testing.assert_frame_equal(frame, expected_frame(days), check_freq=False)
        return days

    def _kill_compactor(self, url: str, first_day: int, delay: float, tmp_path: Path,
                        attempt: int) -> None:
        kill_midway(_CHILD, [url, str(first_day)], tmp_path / f"ready-{attempt}",
                    tmp_path / f"stderr-{attempt}", delay, self.compaction_timeout, "compactor")

