"""The batch half of :class:`~curvestore.testing.store.StoreSemantics`: what a backend that
writes batches (:class:`~curvestore.core.capabilities.WritesBatches`) or answers summaries
(:class:`~curvestore.core.capabilities.Summarises`) promises beyond what ``write_frame`` and the
metadata calls show. Each test is skipped on a backend without the capability.

* ``summarise`` says what the chunk metas say, with and without a filter;
* ``live_chunks`` lists every live chunk of the transaction's keys, with its stored end;
* ``put`` and ``put_batch`` mix in one transaction, and a chunk staged twice keeps the last
  one staged, with one change per chunk;
* a fragment extends the stored chunk (NaN in the gap), as ``write_many`` of the same data
  would store it;
* a batch transaction that fails writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.core import chunks as _chunks
from curvestore.core.batch import ChunkBatch
from curvestore.core.capabilities import Summarises
from curvestore.core.frames_write import encode_frame
from curvestore.core.records import SeriesKey
from curvestore.testing.fixtures import (
    KEYS,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
)

__all__ = ["BatchSemantics"]

A, B, C = ("a", "load", 1), ("a", "load", 2), ("b", "prod", 1)
JAN, FEB, MAR = 2024 * 12, 2024 * 12 + 1, 2024 * 12 + 2  # chunk indexes of monthly chunks


def _batch(store: curvestore.Store, columns: Mapping[SeriesKey, pd.Series],
           fragments: Mapping[SeriesKey, set[int]] | None = None) -> ChunkBatch:
    """``columns`` encoded as one batch (every key a column, all-NaN ones included), the
    chunks named in ``fragments`` flagged as fragments."""
    frame = pd.DataFrame(dict(columns))
    frame.columns = pd.MultiIndex.from_tuples(list(frame.columns), names=list(KEYS))
    encoded = encode_frame(store.schema, store.grid, frame, "replace",
                           store.codecs(store.codec), store.config.dtype)
    assert encoded is not None
    batch = encoded.batch
    flagged = fragments or {}
    append = np.array([chunk in flagged.get(batch.keys[series], set()) for series, chunk in
                       zip(batch.series.tolist(), batch.chunk.tolist(), strict=True)],
                      dtype=bool)
    return dataclasses.replace(batch, append=append)


def _summary_of_metas(store: curvestore.Store, where: Mapping[str, Any]) -> dict[str, Any]:
    rows = [(k, metas) for k, metas in store.backend.list_metas(where)]
    return {
        "keys": [k for k, _ in rows],
        "first_chunk": [m[0].chunk for _, m in rows],
        "first_start": [m[0].start for _, m in rows],
        "last_chunk": [m[-1].chunk for _, m in rows],
        "last_stop": [m[-1].start + m[-1].length for _, m in rows],
        "chunks": [len(m) for _, m in rows],
        "points": [sum(x.count for x in m) for _, m in rows],
        "payload_bytes": [sum(x.size for x in m) for _, m in rows],
    }


class BatchSemantics(StoreFixtures):
    """Batch transactions and summaries, straight on the backend through ``Store.transact``."""

    @staticmethod
    def _needs(store: curvestore.Store, capability: str) -> None:
        if not getattr(store.capabilities, capability):
            pytest.skip(f"the backend does not implement {capability}")

    def test_summary_is_what_the_chunk_metas_say(self, store: curvestore.Store) -> None:
        self._needs(store, "summaries")
        backend = store.backend
        assert isinstance(backend, Summarises)
        empty = backend.summarise({})
        assert len(empty) == 0 and list(empty.keys) == [] and len(empty.chunks) == 0
        store.write_many({
            A: curve("2024-01-20 05:15", end="2024-03-03 17:45", seed=1, nan=0.2),
            B: curve("2024-02-29 23:45", periods=1, seed=2),
            C: curve("2023-12-31 23:00", end="2024-01-01 01:00", seed=3),
            ("b", "load", 4): curve("2024-05-01", periods=9, seed=4),
        })
        store.write(key("a", "load", 1), curve("2024-02-10", periods=3, seed=5), mode="replace")
        store.delete(key("b", "load", 4))
        for given in ({}, {"site": "a"}, {"kind": "prod"}, {"n": 1}, {"site": "zz"}):
            where = store.schema.filter(given)
            summary = backend.summarise(where)
            expected = _summary_of_metas(store, where)
            assert list(summary.keys) == expected.pop("keys"), given
            for name, values in expected.items():
                got = getattr(summary, name)
                assert got.dtype == np.int64, name
                assert got.tolist() == values, (given, name)

    def test_summary_and_live_chunks_count_appended_days(self, store: curvestore.Store
                                                          ) -> None:
        """Days appended after a chunk's end (fragments, on a backend that keeps them) are
        part of the chunk for ``summarise``, ``list_metas`` and ``live_chunks``."""
        self._needs(store, "summaries")
        first = curve("2024-01-30", periods=96, seed=20, nan=0.1)
        store.write_frame(pd.DataFrame({A: first, B: first * 2}), mode="update")
        for day, seed in (("2024-01-31", 21), ("2024-02-01", 22), ("2024-02-02", 23)):
            values = curve(day, periods=96, seed=seed, nan=0.1)
            store.write_frame(pd.DataFrame({A: values}), mode="update")
        summary = store.backend.summarise({})  # type: ignore[attr-defined]
        expected = _summary_of_metas(store, {})
        assert list(summary.keys) == expected.pop("keys")
        expected.pop("payload_bytes")  # what a backend keeps appended days in is its own
        for name, values in expected.items():
            assert getattr(summary, name).tolist() == values, name
        if store.capabilities.batches:
            seen: list[Any] = []
            store.transact([A, B], lambda tx: seen.extend(tx.live_chunks()), batch=True)
            metas = dict(store.backend.list_metas({}))
            assert list(zip(*(a.tolist() for a in seen), strict=True)) == [
                (i, m.chunk, m.start + m.length) for i, k in enumerate([A, B])
                for m in metas[k]]

    def test_live_chunks_are_every_live_chunk_of_the_keys(self, store: curvestore.Store
                                                          ) -> None:
        self._needs(store, "batches")
        store.write_many({A: curve("2024-01-31 22:00", end="2024-03-01 03:00", seed=6, nan=0.1),
                          B: curve("2024-02-03", periods=5, seed=7)})
        store.write(key(n=1), curve("2024-02-10", periods=4, seed=8), mode="update")
        store.write(key(n=2), curve("2024-04-03", periods=5, seed=9), mode="replace")
        keys = [A, B, C]
        seen: list[Any] = []
        store.transact(keys, lambda tx: seen.extend(tx.live_chunks()), batch=True)
        series, chunk, end = seen
        metas = dict(store.backend.list_metas({}))
        expected = [(i, m.chunk, m.start + m.length) for i, k in enumerate(keys)
                    for m in metas.get(k, [])]
        assert [a.dtype for a in seen] == [np.int64] * 3
        assert list(zip(series.tolist(), chunk.tolist(), end.tolist(), strict=True)) == expected

    def test_records_and_batches_staged_together_keep_the_last(self, store: curvestore.Store
                                                                ) -> None:
        self._needs(store, "batches")
        old = curve("2024-01-10", end="2024-02-20", seed=10)
        store.write_many({A: old})
        cursor = store.changes().cursor
        new_a = curve("2024-01-05", end="2024-02-25", seed=11)
        new_b = curve("2024-01-01", end="2024-01-31", seed=12)
        batch = _batch(store, {A: new_a, B: new_b})
        replaced = _chunks.encode(A, _chunks.Piece(JAN, 0, np.ones(4)),
                                  store.codecs(store.codec), store.config.dtype)

        def body(tx: Any) -> None:
            tx.put([replaced])  # staged first: the batch's January of A replaces it
            tx.put_batch(batch)
            tx.put([_chunks.tombstone(B, JAN)])  # staged last: B's January is deleted

        before = _versions(store)
        changes = store.transact([A, B], body, batch=True)
        assert_series_exact(store.read(key(n=1)), dense(new_a))
        assert store.read(key(n=2)) is None
        # one change per chunk; B's January never held data: a backend may keep its
        # tombstone (a change) or nothing
        written = sorted((c.key, c.chunk, c.deleted) for c in changes)
        assert written in ([(A, JAN, False), (A, FEB, False)],
                           [(A, JAN, False), (A, FEB, False), (B, JAN, True)]), written
        _assert_newer(changes, before)
        assert sorted((tuple(i.key.values()), i.chunk, i.deleted)
                      for i in store.changes(cursor).items) == written

    def test_fragments_extend_the_stored_chunk(self, store: curvestore.Store,
                                               other_backend_url: str | None) -> None:
        self._needs(store, "batches")
        stored = curve("2024-01-03", end="2024-01-10 12:00", seed=13, nan=0.1)
        store.write_many({A: stored, B: stored * 2})
        later = curve("2024-01-20", end="2024-02-02", seed=14, nan=0.1)  # a gap, a new month
        march = curve("2024-03-01", end="2024-03-04", seed=15)
        batch = _batch(store, {A: later, B: march}, {A: {JAN}})

        def body(tx: Any) -> None:
            tx.live_chunks()
            tx.put_batch(batch)

        before = _versions(store)
        changes = store.transact([A, B], body, batch=True)
        assert sorted((c.key, c.chunk) for c in changes) == [(A, JAN), (A, FEB), (B, MAR)]
        _assert_newer(changes, before)
        expected = {A: pd.concat([stored, later]), B: pd.concat([stored * 2, march])}
        for n, series in ((1, expected[A]), (2, expected[B])):
            assert_series_exact(store.read(key(n=n)), dense(series))
        if other_backend_url is not None:  # what write_many of the same data stores
            with curvestore.create_store(other_backend_url, keys=self.keys, freq=self.freq,
                                         tz=self.tz, chunking=self.chunking) as twin:
                twin.write_many(expected)
                assert [m for _, m in _stripped(twin)] == [m for _, m in _stripped(store)]

    def test_failed_batch_transaction_writes_nothing(self, store: curvestore.Store) -> None:
        self._needs(store, "batches")
        stored = curve("2024-01-03", periods=10, seed=17)
        store.write_many({A: stored})
        cursor = store.changes().cursor
        batch = _batch(store, {A: curve("2024-01-05", periods=900, seed=18),
                               B: curve("2024-02-01", periods=3, seed=19)}, {A: {JAN}})

        def body(tx: Any) -> None:
            tx.live_chunks()
            tx.put_batch(batch)
            raise RuntimeError("the writer fails before its commit")

        with pytest.raises(RuntimeError):
            store.transact([A, B], body, batch=True)
        assert store.changes(cursor).items == []
        assert store.keys() == [key(n=1)]
        assert_series_exact(store.read(key(n=1)), dense(stored))


def _stripped(store: curvestore.Store) -> list[tuple[SeriesKey, list[tuple[int, ...]]]]:
    """Every series' chunk metas as far as they follow from the data (spans and counts; not
    versions, times or payload sizes, which depend on how the backend keeps appends)."""
    return [(k, [(m.chunk, m.start, m.length, m.count) for m in metas])
            for k, metas in store.backend.list_metas({})]


def _versions(store: curvestore.Store) -> dict[tuple[SeriesKey, int], int]:
    return {(k, m.chunk): m.version for k, metas in store.backend.list_metas({}) for m in metas}


def _assert_newer(changes: list[Any], before: dict[tuple[SeriesKey, int], int]) -> None:
    """Every chunk changed once, at a version above the one it had."""
    slots = [(c.key, c.chunk) for c in changes]
    assert len(set(slots)) == len(slots), slots
    for change in changes:
        assert change.version > before.get((change.key, change.chunk), 0), change
