"""``ReplicationConformance``: the sync protocol between the backend under test and others.

Subclass it with the usual ``backend_url_factory`` fixture (see
:class:`~curvestore.testing.store.StoreFixtures`). Replication is proved in both directions
against a ``memory://`` store, and between two stores of the backend under test, including
a replicating process killed with SIGKILL at random points and resumed (skipped when the
backend is not shared between processes).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pandas as pd
import pytest

import curvestore
from curvestore.core.records import ChunkRecord
from curvestore.core.sync import StoreSource, state_name
from curvestore.core.transact import transaction
from curvestore.errors import ConfigMismatchError, ConflictError
from curvestore.testing.fixtures import (
    KEYS,
    StoreFixtures,
    assert_series_exact,
    curve,
    key,
    plain_name_key,
    read_expected,
)

__all__ = ["ReplicationConformance", "assert_stores_equal"]


def assert_stores_equal(a: curvestore.Store, b: curvestore.Store,
                        filter: dict[str, Any] | None = None) -> int:
    """Every series of ``a`` (matching ``filter``) reads point for point the same in ``b``,
    and ``b`` has no other matching series. Returns the number of series compared."""
    left = list(a.read_many(filter))
    right = list(b.read_many(filter))
    assert [k for k, _ in left] == [k for k, _ in right]
    for (_k, sa), (_k2, sb) in zip(left, right, strict=True):
        assert_series_exact(sb, sa)
        pd.testing.assert_series_equal(sb, sa)  # index unit and freq included
    return len(left)


def _raw(store: curvestore.Store) -> dict[tuple[Any, int], tuple[str, bytes]]:
    out = {}
    for k, records in store.backend.scan({}):
        for r in records:
            out[(k, r.chunk)] = (r.meta.codec, r.payload)
    return out


class ReplicationConformance(StoreFixtures):
    """The sync protocol, proved on the backend under test."""

    shared_between_processes: ClassVar[bool] = True

    def _store(self, url: str) -> curvestore.Store:
        return curvestore.create_store(url, keys=self.keys, freq=self.freq, tz=self.tz,
                                       chunking=self.chunking)

    @pytest.fixture
    def memory_store(self) -> Iterator[curvestore.Store]:
        from curvestore.backends.memory import MemoryBackend

        name = f"replica-{uuid.uuid4().hex}"
        s = self._store(f"memory://{name}")
        yield s
        s.close()
        MemoryBackend.forget(name)

    @staticmethod
    def _fill(store: curvestore.Store) -> None:
        store.write_many({
            ("a", "load", 1): curve("2024-01-20", end="2024-03-05", seed=1),
            ("a", "load", 2): curve("2024-02-01", periods=500, seed=2, nan=0.1),
            ("b", "prod", 1): curve("2024-06-01", periods=96, seed=3),
        })

    def test_replicate_full_then_nothing(self, store: curvestore.Store,
                                         memory_store: curvestore.Store) -> None:
        self._fill(store)
        first = curvestore.replicate(store, memory_store, batch=2)
        assert first.chunks == 5 and first.pages >= 1  # 3 + 1 + 1 months
        assert assert_stores_equal(store, memory_store) == 3
        assert _raw(memory_store) == _raw(store)  # payloads byte-identical, codecs kept
        second = curvestore.replicate(store, memory_store)
        assert (second.changes, second.chunks, second.tombstones) == (0, 0, 0)

    def test_replicate_into_backend_under_test(self, store: curvestore.Store,
                                               memory_store: curvestore.Store) -> None:
        self._fill(memory_store)
        curvestore.replicate(memory_store, store)
        assert assert_stores_equal(memory_store, store) == 3
        assert store.get_state(
            state_name(memory_store.config.store_id, {})) is not None

    def test_incremental_update_replace_delete(self, store: curvestore.Store,
                                               memory_store: curvestore.Store) -> None:
        self._fill(store)
        curvestore.replicate(store, memory_store)
        store.write(key("a", "load", 1), curve("2024-02-10", periods=50, seed=9), mode="update")
        store.write(key("a", "load", 2), curve("2024-05-01", periods=20, seed=8), mode="replace")
        store.delete(key("b", "prod", 1))
        report = curvestore.replicate(store, memory_store)
        assert report.tombstones == 2  # the old month of a/load/2, the month of b/prod/1
        assert assert_stores_equal(store, memory_store) == 2
        assert memory_store.read(key("b", "prod", 1)) is None

    def test_filtered_replication(self, store: curvestore.Store,
                                  memory_store: curvestore.Store) -> None:
        self._fill(store)
        report = curvestore.replicate(store, memory_store, filter={"kind": "load"})
        assert report.chunks == 4
        assert [k["kind"] for k in memory_store.keys(None)] == ["load", "load"]
        store.write(key("b", "prod", 1), curve("2024-06-02", periods=4, seed=5), mode="update")
        store.write(key("a", "load", 1), curve("2024-03-05", periods=4, seed=5), mode="update")
        again = curvestore.replicate(store, memory_store, filter={"kind": "load"})
        assert again.chunks == 1
        assert assert_stores_equal(store, memory_store, {"kind": "load"}) == 2

    def test_local_writes_on_target_do_not_skip_source_changes(
            self, store: curvestore.Store, memory_store: curvestore.Store) -> None:
        self._fill(store)
        curvestore.replicate(store, memory_store)
        memory_store.write(key("z", "local", 1), curve("2024-01-01", periods=10, seed=4))
        memory_store.write(key("a", "load", 1), curve("2024-01-25", periods=3, value=7.0),
                           mode="update")
        store.write(key("a", "load", 2), curve("2024-02-03", periods=5, value=1.5),
                    mode="update")
        curvestore.replicate(store, memory_store)
        assert_series_exact(memory_store.read(key("a", "load", 2)),
                            store.read(key("a", "load", 2)))
        assert memory_store.read(key("z", "local", 1)) is not None
        # a source change wins over the target's local edit of the same chunk
        store.write(key("a", "load", 1), curve("2024-01-25", periods=1, value=3.0),
                    mode="update")
        curvestore.replicate(store, memory_store)
        assert_series_exact(memory_store.read(key("a", "load", 1)),
                            store.read(key("a", "load", 1)))

    def test_incompatible_stores_are_refused(self, store: curvestore.Store) -> None:
        other = curvestore.create_store("memory://", keys=KEYS, freq="1h", tz=self.tz)
        with pytest.raises(ConfigMismatchError, match="freq"):
            curvestore.replicate(store, other)

    def test_chain_of_replicas(self, store: curvestore.Store, memory_store: curvestore.Store,
                               backend_url_factory: Callable[[], str]) -> None:
        """A replica's feed carries what it imported, so it can be replicated in turn."""
        third = self._store(backend_url_factory())
        try:
            self._fill(memory_store)
            curvestore.replicate(memory_store, store)
            curvestore.replicate(store, third)
            assert assert_stores_equal(memory_store, third) == 3
            memory_store.delete_many({"kind": "load"})
            curvestore.replicate(memory_store, store)
            curvestore.replicate(store, third)
            assert third.keys() == [key("b", "prod", 1)]
        finally:
            third.close()

    def test_key_names_users_choose_replicate(self, plain_name_store: curvestore.Store
                                              ) -> None:
        """Stores keyed by version, id, chunk, payload, cursor, limit... replicate in process
        (both ways, filtered, incrementally, tombstones included) and over HTTP with the
        store under test served, filtered on each key name."""
        store, keys = plain_name_store, self.plain_name_keys
        names = list(keys)
        a, b = plain_name_key(keys, 1), plain_name_key(keys, 2)
        c = {**a, names[-1]: plain_name_key(keys, 3)[names[-1]]}

        def memory() -> curvestore.Store:
            return curvestore.create_store("memory://", keys=keys, freq=self.freq, tz=self.tz,
                                           chunking=self.chunking)

        source = memory()
        source.write_many({
            tuple(a.values()): curve("2024-01-20", end="2024-03-05", seed=1),
            tuple(b.values()): curve("2024-02-01", periods=500, seed=2, nan=0.1),
            tuple(c.values()): curve("2024-06-01", periods=96, seed=3),
        })
        assert curvestore.replicate(source, store, batch=2).chunks == 5
        assert assert_stores_equal(source, store) == 3
        replica = memory()
        for name in names:  # a filtered pull keeps a cursor of its own per filter
            curvestore.replicate(store, replica, filter={name: b[name]})
            assert assert_stores_equal(store, replica, {name: b[name]}) == 1, name
        curvestore.replicate(store, replica)
        store.write(a, curve("2024-02-10", periods=50, value=7.0), mode="update")
        store.delete(c)
        report = curvestore.replicate(store, replica)
        assert (report.chunks, report.tombstones) == (1, 1)
        assert assert_stores_equal(store, replica) == 2

        pytest.importorskip("waitress")
        pytest.importorskip("requests")
        from curvestore.adapters.http import HTTPSource, make_app
        from curvestore.adapters.http.serving import serve_in_thread

        with serve_in_thread(make_app(store)) as base_url, HTTPSource(base_url) as remote:
            over_http = memory()
            report = curvestore.replicate(remote, over_http)
            assert (report.chunks, report.tombstones) == (4, 1)
            assert assert_stores_equal(store, over_http) == 2
            for name in names:  # cursor= and limit= included: filters, not parameters
                for series in (a, b):
                    filtered = memory()
                    curvestore.replicate(remote, filtered, filter={name: series[name]})
                    assert assert_stores_equal(store, filtered, {name: series[name]}) == 1, \
                        name
            store.write(b, curve("2024-02-02", periods=3, value=1.5), mode="update")
            assert curvestore.replicate(remote, over_http).chunks == 1
            assert assert_stores_equal(store, over_http) == 2

    def test_stale_cursor_commits_nothing(self, store: curvestore.Store,
                                          memory_store: curvestore.Store) -> None:
        """A commit whose expected cursor was overtaken fails whole: chunks and cursor."""
        self._fill(memory_store)
        curvestore.replicate(memory_store, store)
        name = state_name(memory_store.config.store_id, {})
        saved = store.get_state(name)
        k = store.schema.key(key("q", "load", 1))
        [record] = memory_store.backend.fetch([(store.schema.key(key("a", "load", 1)), 24288)])
        moved = record.key, record.meta.chunk
        assert not record.meta.deleted, moved
        before = self.feed(store)
        for expected in (None, "a cursor from another run"):
            with pytest.raises(ConflictError), transaction(store.backend, [k]) as tx:
                tx.put([ChunkRecord(k, record.meta, record.payload)])
                tx.set_state(name, "newer", expected=expected)
            assert store.get_state(name) == saved
            assert store.read(key("q", "load", 1)) is None
            assert self.feed(store) == before
        with transaction(store.backend, [k]) as tx:  # the right one commits
            tx.put([ChunkRecord(k, record.meta, record.payload)])
            tx.set_state(name, "newer", expected=saved)
        assert store.get_state(name) == "newer"
        assert store.read(key("q", "load", 1)) is not None

    def test_concurrent_replications_cannot_commit_a_stale_page(
            self, store: curvestore.Store, memory_store: curvestore.Store) -> None:
        """Run B fetches chunk X (v1) and is slow to commit; X changes at the source (v2) and
        run A imports it; B must not then commit X = v1 with its older cursor."""
        x = key("a", "load", 1)
        memory_store.write(x, curve("2024-01-10", periods=20, value=1.0))
        fetched, resume = threading.Event(), threading.Event()

        class SlowSource(StoreSource):
            """Run B's view of the source: its first fetch stalls after reading."""

            def fetch(self, refs: Any) -> list[ChunkRecord]:
                records = super().fetch(refs)
                if not fetched.is_set():
                    fetched.set()
                    assert resume.wait(60), "run B was never resumed"
                return records

        outcome: dict[str, Any] = {}

        def run_b() -> None:
            try:
                outcome["report"] = curvestore.replicate(SlowSource(memory_store), store)
            except BaseException as exc:  # reported to the test's thread
                outcome["error"] = exc

        b = threading.Thread(target=run_b)
        b.start()
        try:
            assert fetched.wait(60), "run B never fetched"
            memory_store.write(x, curve("2024-01-10", periods=20, value=2.0), mode="update")
            report_a = curvestore.replicate(memory_store, store)  # run A
            assert report_a.chunks == 1
        finally:
            resume.set()
            b.join(60)
        assert "error" not in outcome, outcome.get("error")
        assert read_expected(store, x).tolist() == [2.0] * 20  # not B's stale 1.0
        assert assert_stores_equal(memory_store, store) == 1
        later = curvestore.replicate(memory_store, store)
        assert (later.changes, later.chunks) == (0, 0)
        memory_store.write(x, curve("2024-01-10", periods=20, value=3.0), mode="update")
        assert curvestore.replicate(memory_store, store).chunks == 1  # the feed still flows
        assert read_expected(store, x).tolist() == [3.0] * 20

    @pytest.mark.slow
    def test_replication_killed_at_random_points_resumes(
            self, backend_url_factory: Callable[[], str]) -> None:
        """SIGKILL the replicating process at random moments; resuming loses and duplicates
        nothing, and the target ends equal to the source point for point."""
        if not self.shared_between_processes:
            pytest.skip("the backend is not shared between processes")
        source_url, target_url = backend_url_factory(), backend_url_factory()
        source, target = self._store(source_url), self._store(target_url)
        target.close()
        rng = random.Random(7)
        source.write_many({(f"s{i:02d}", "load", i): curve("2024-01-01", periods=2000 + 50 * i,
                                                           seed=i, nan=0.05)
                           for i in range(24)})
        code = ("import sys, curvestore; curvestore.replicate(curvestore.open_store(sys.argv[1]),"
                " curvestore.open_store(sys.argv[2]), batch=7)")
        kills = 0
        for round_ in range(6):
            if round_ == 3:  # the source keeps changing between runs
                source.write(key("s01", "load", 1), curve("2024-01-03", periods=300, seed=99),
                             mode="update")
                source.delete(key("s02", "load", 2))
            child = subprocess.Popen([sys.executable, "-c", code, source_url, target_url],
                                     env={**os.environ}, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.2, 1.2))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
            child.wait()
        final = subprocess.run([sys.executable, "-c", code, source_url, target_url],
                               env={**os.environ}, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr
        target = curvestore.open_store(target_url)
        try:
            assert assert_stores_equal(source, target) == 23
            again = curvestore.replicate(source, target)
            assert (again.changes, again.chunks) == (0, 0)
        finally:
            target.close()
            source.close()
        assert kills >= 1, "no run was killed: make the workload longer"


