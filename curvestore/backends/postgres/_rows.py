"""Chunk rows staged by a PostgreSQL batch transaction, as columns.

A batch transaction stages :class:`~curvestore.core.batch.ChunkBatch` es and, mixed with them,
plain records (tombstones, merged chunks). Both become :class:`Rows`: one numpy array per
column, series named by their index in the transaction's keys, codec and dtype names by their
index in a small name table, payloads as views of the batch's buffer. At commit the parts are
concatenated and, for a chunk staged more than once, the last one staged is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curvestore.backends.postgres._ddl import CHUNK_MIN
from curvestore.core.batch import ChunkBatch
from curvestore.core.records import ChunkRecord, SeriesKey

__all__ = ["Rows", "slot_codes"]


def slot_codes(series: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """One sortable int64 per (series index, chunk): ordered as the pairs are."""
    return (series.astype(np.int64) << 32) | (chunk.astype(np.int64) - CHUNK_MIN)


@dataclass(slots=True)
class Rows:
    """Chunk rows as columns (see the module docstring); ``stamp`` orders the staging calls."""

    series: np.ndarray
    chunk: np.ndarray
    start: np.ndarray
    length: np.ndarray
    count: np.ndarray
    checksum: np.ndarray
    size: np.ndarray
    updated_at: np.ndarray
    deleted: np.ndarray
    append: np.ndarray
    codec: np.ndarray
    dtype: np.ndarray
    names: list[str]
    payloads: list[bytes | memoryview]
    stamp: np.ndarray

    def __len__(self) -> int:
        return len(self.chunk)

    @classmethod
    def of_batch(cls, batch: ChunkBatch, series: np.ndarray, stamp: int, now: int) -> Rows:
        """The rows of ``batch``, its series renumbered by ``series`` (batch key index ->
        transaction key index)."""
        n = len(batch)
        view = memoryview(batch.data)
        payloads: list[bytes | memoryview] = [
            view[o:o + s] for o, s in zip(batch.offset.tolist(), batch.size.tolist(),
                                          strict=True)]

        def column(values: np.ndarray) -> np.ndarray:
            return np.array(values, dtype=np.int64)  # a copy: joins rewrite some rows

        return cls(series[batch.series], column(batch.chunk), column(batch.start),
                   column(batch.length), column(batch.count), column(batch.checksum),
                   column(batch.size), np.full(n, now, dtype=np.int64), np.zeros(n, dtype=bool),
                   np.array(batch.append, dtype=bool), np.zeros(n, dtype=np.int64),
                   np.ones(n, dtype=np.int64), [batch.codec, batch.dtype], payloads,
                   np.full(n, stamp, dtype=np.int64))

    @classmethod
    def of_records(cls, records: Sequence[ChunkRecord], index: Callable[[SeriesKey], int],
                   stamp: int, now: int) -> Rows:
        """Plain records (few: tombstones and merged chunks), ``index`` giving the
        transaction's index of a key."""
        metas = [r.meta for r in records]
        names = sorted({m.codec for m in metas} | {m.dtype for m in metas})
        number = {name: i for i, name in enumerate(names)}

        def column(values: list[int]) -> np.ndarray:
            return np.asarray(values, dtype=np.int64)

        return cls(column([index(r.key) for r in records]), column([m.chunk for m in metas]),
                   column([m.start for m in metas]), column([m.length for m in metas]),
                   column([m.count for m in metas]), column([m.checksum for m in metas]),
                   column([m.size for m in metas]),
                   column([m.updated_at or now for m in metas]),
                   np.asarray([m.deleted for m in metas], dtype=bool),
                   np.zeros(len(metas), dtype=bool), column([number[m.codec] for m in metas]),
                   column([number[m.dtype] for m in metas]), names,
                   [r.payload for r in records], np.full(len(metas), stamp, dtype=np.int64))

    @classmethod
    def latest(cls, parts: Sequence[Rows]) -> Rows:
        """The parts' rows, the last one staged for each chunk, ordered by (series, chunk)."""
        offsets = np.cumsum([0] + [len(p.names) for p in parts[:-1]])

        def column(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        joined = cls(column("series"), column("chunk"), column("start"), column("length"),
                     column("count"), column("checksum"), column("size"), column("updated_at"),
                     column("deleted"), column("append"),
                     np.concatenate([p.codec + o for p, o in zip(parts, offsets, strict=True)]),
                     np.concatenate([p.dtype + o for p, o in zip(parts, offsets, strict=True)]),
                     [name for p in parts for name in p.names],
                     [payload for p in parts for payload in p.payloads], column("stamp"))
        codes = slot_codes(joined.series, joined.chunk)
        order = np.lexsort((joined.stamp, codes))
        codes = codes[order]
        last = np.ones(len(codes), dtype=bool)
        last[:-1] = codes[1:] != codes[:-1]
        keep = order[last]
        if len(keep) == len(joined) and (np.diff(keep) > 0).all():
            return joined
        return joined.take(keep)

    def take(self, rows: np.ndarray) -> Rows:
        """These rows, in this order."""
        payloads = self.payloads
        return Rows(self.series[rows], self.chunk[rows], self.start[rows], self.length[rows],
                    self.count[rows], self.checksum[rows], self.size[rows],
                    self.updated_at[rows], self.deleted[rows], self.append[rows],
                    self.codec[rows], self.dtype[rows], self.names,
                    [payloads[i] for i in rows.tolist()], self.stamp[rows])
