"""Concurrent writers and killed writers: the part of
:class:`~curvestore.testing.backend.BackendConformance` that runs other threads and processes.

Two connections (threads, then ``spawn``ed processes) update disjoint points of one series at
once and must lose none; a writer SIGKILLed at random moments must never leave a torn batch,
neither for a read-write open nor for readers that recover nothing (a handle opened before the
kill, a read-only open). The process tests are ``@pytest.mark.slow`` (they run by default) and
skipped for backends that live inside one process (``shared_between_processes = False``).
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
from curvestore.core import chunks as _chunks
from curvestore.registry import get_codec
from curvestore.testing.fixtures import FREQ, TZ, StoreFixtures, curve, key
from curvestore.testing.kills import kill_midway

__all__ = ["BackendConcurrency"]

# -- work done in other processes (module level, so "spawn" children can import it) ---------

_CONCURRENT_WRITES = 30


def _concurrent_points(writer: int, i: int) -> pd.Series:
    """Write ``i`` of ``writer``: two points in two months, disjoint from the other writer's."""
    step = pd.Timedelta(FREQ)
    offset = (2 * i + writer) * step
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-31 20:00", tz=TZ) + offset,
                              pd.Timestamp("2024-03-01", tz=TZ) + offset])
    return pd.Series([1000.0 * writer + i, -1000.0 * writer - i], index=index)


def _concurrent_writer(url: str, writer: int, barrier: Any) -> None:
    with curvestore.open_store(url) as store:
        barrier.wait(timeout=120)
        for i in range(_CONCURRENT_WRITES):
            store.write(key(), _concurrent_points(writer, i), mode="update")


_KILLED_SERIES = 12


def _killed_batch(r: int) -> dict[tuple[Any, ...], pd.Series]:
    """Round ``r``: value r in every series, over Jan-Mar (even r) or Feb-Apr (odd r)."""
    start, end = ("2024-01-01", "2024-03-31 23:45") if r % 2 == 0 else \
        ("2024-02-01", "2024-04-30 23:45")
    series = curve(start, end=end, value=float(r))
    return {("k", "load", n): series for n in range(_KILLED_SERIES)}


def _killed_writer_main(url: str, first_round: int, ready: str) -> None:
    """Child process: replace every series with round r, r+1, ... until killed."""
    store = curvestore.open_store(url)
    batch = _killed_batch(first_round)
    Path(ready).write_text("ready")
    r = first_round
    while True:
        store.write_many(batch, mode="replace")
        r += 1
        batch = _killed_batch(r)


_CHILD = ("import sys; "
          "from curvestore.testing.backend_concurrency import _killed_writer_main as m; "
          "m(sys.argv[1], int(sys.argv[2]), sys.argv[3])")

class BackendConcurrency(StoreFixtures):
    """Writers in other threads and processes: no lost point, no torn batch."""

    #: False for backends that live inside one process (the multi-process tests are skipped).
    shared_between_processes: ClassVar[bool] = True
    #: Seconds to wait for the children of the multi-process tests.
    process_timeout: ClassVar[float] = 180.0

    def require_processes(self) -> None:
        if not self.shared_between_processes:
            pytest.skip(f"{type(self).__name__}: the backend is not shared between processes")

    # -- concurrency --------------------------------------------------------------------------
    def test_backend_concurrent_update_threads(self, store: curvestore.Store,
                                               backend_url: str) -> None:
        """Two connections in threads of one process updating one series lose no point."""
        stores = [self.reopen(backend_url) for _ in range(2)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(writer: int) -> None:
            try:
                barrier.wait(timeout=60)
                for i in range(_CONCURRENT_WRITES):
                    stores[writer].write(key(), _concurrent_points(writer, i), mode="update")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.process_timeout)
        for s in stores:
            s.close()
        assert not errors, errors
        self._check_concurrent(store)

    @staticmethod
    def _check_concurrent(store: curvestore.Store) -> None:
        expected = pd.concat([_concurrent_points(w, i) for w in range(2)
                              for i in range(_CONCURRENT_WRITES)]).sort_index()
        got = store.read(key())
        assert got is not None
        got = got.dropna()
        missing = expected.index.difference(got.index)
        assert len(missing) == 0, f"{len(missing)} points lost, e.g. {list(missing[:3])}"
        assert len(got) == len(expected)
        assert (got.to_numpy() == expected.to_numpy()).all()

    @pytest.mark.slow
    def test_backend_concurrent_update_processes(self, store: curvestore.Store,
                                                 backend_url: str) -> None:
        """Two processes updating disjoint points of one series at the same time lose none."""
        self.require_processes()
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_concurrent_writer, args=(backend_url, w, barrier))
                 for w in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(self.process_timeout)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
                pytest.fail("a writer process hung")
        assert [p.exitcode for p in procs] == [0, 0]
        self._check_concurrent(store)

    def kill_writer_midway(self, url: str, first_round: int, delay: float, tmp_path: Any,
                           attempt: int) -> None:
        """Start the killed-writer child on ``url`` (writing rounds from ``first_round``), wait
        until it writes, let it run ``delay`` seconds, then SIGKILL it. Backends whose batch
        guarantees differ (S3) reuse this with their own checks afterwards."""
        kill_midway(_CHILD, [url, str(first_round)], tmp_path / f"ready-{attempt}",
                    tmp_path / f"stderr-{attempt}", delay, self.process_timeout, "writer")
        self.settle_killed_writer(url)

    def settle_killed_writer(self, url: str) -> None:
        """Wait until the medium has finished what a SIGKILLed writer had already sent.

        Note for implementers: a database server may still be committing a transaction whose
        COMMIT was on the wire when its client died; override this to wait until the
        server's session of the dead client is gone, else two reads right after the kill may
        see the store before and after that commit. The default waits for nothing."""
        return  # deliberately concrete: a client-side medium is settled when the child is dead

    @pytest.mark.slow
    def test_backend_killed_writer_leaves_whole_batches(self, store: curvestore.Store,
                                                        backend_url: str, tmp_path: Path
                                                        ) -> None:
        """A writer SIGKILLed at random moments never leaves a torn batch or chunk."""
        self.require_processes()
        if not hasattr(signal, "SIGKILL"):
            pytest.skip("needs SIGKILL")
        store.write_many(_killed_batch(0), mode="replace")
        store.close()
        rng = random.Random(20240331)
        current = 0
        delays = [0.0, 0.05, 0.2, 0.5, 1.0, rng.uniform(0, 0.3), rng.uniform(0.3, 1.5)]
        # Readers that do no recovery must not see half a batch either: a handle opened
        # before the kills (read-write, but reading only) and a read-only open, both asked
        # before any read-write open could finish the dead writer's batch.
        with self.reopen(backend_url) as before:
            for attempt, delay in enumerate(delays):
                self.kill_writer_midway(backend_url, current + 1, delay, tmp_path, attempt)
                seen = self._whole_batch(before, current)
                with self.reopen(backend_url, read_only=True) as read_only:
                    assert self._whole_batch(read_only, current) == seen
                current = self._check_whole_batch(backend_url, current)
                assert current == seen, "a read-write open changed what readers had seen"
        # the store is still writable after all that, and the feed still reads
        with self.reopen(backend_url) as again:
            again.write_many(_killed_batch(current + 1), mode="replace")
            assert self.feed(again, limit=500)
        assert self._check_whole_batch(backend_url, current + 1) == current + 1

    def _check_whole_batch(self, url: str, previous: int) -> int:
        with self.reopen(url) as store:
            return self._whole_batch(store, previous)

    @staticmethod
    def _whole_batch(store: curvestore.Store, previous: int) -> int:
        """The round every series of the killed-writer test holds; fails on a torn batch."""
        values = set()
        seen = []
        for k, series in store.read_many():
            seen.append(tuple(k.values()))
            unique = set(np.unique(series.to_numpy()).tolist())
            assert len(unique) == 1, f"series {k} mixes rounds {sorted(unique)}"
            (value,) = unique
            values.add(value)
            expected = curve(*(("2024-01-01", None, "2024-03-31 23:45") if value % 2 == 0
                               else ("2024-02-01", None, "2024-04-30 23:45")), value=value)
            assert len(series) == len(expected), f"series {k} is torn (round {value})"
            assert series.index[0] == expected.index[0]
            assert series.index[-1] == expected.index[-1]
        assert seen == sorted(_killed_batch(0)), "a series is missing"
        assert len(values) == 1, f"series disagree: a torn batch holds rounds {values}"
        (value,) = values
        assert value >= previous
        for _key, records in store.backend.scan({}):  # every stored chunk decodes
            for record in records:
                _chunks.decode(record, get_codec)
        return int(value)
