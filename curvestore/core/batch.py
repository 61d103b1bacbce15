"""Columnar records for vectorised paths: many chunks as arrays instead of one object each.

A :class:`ChunkBatch` is what a frame write hands a backend that implements
:class:`~curvestore.core.capabilities.WritesBatches` (one segment per commit, no per-chunk
object); :class:`SeriesSummary` is what a backend that implements
:class:`~curvestore.core.capabilities.Summarises` answers metadata calls with (no directory
walk, no per-series record). Both convert to the plain records of
:mod:`curvestore.core.records`, so code that does not know them keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

__all__ = ["ChunkBatch", "SeriesSummary"]


@dataclass(frozen=True, slots=True, eq=False)
class ChunkBatch:
    """Encoded chunks of one codec and dtype, one row each, ordered by (series, chunk).

    Row ``i`` is chunk ``chunk[i]`` of series ``keys[series[i]]``: ``length[i]`` grid points
    from offset ``start[i]`` of the period, ``count[i]`` of them valid, encoded as
    ``data[offset[i]:offset[i] + size[i]]`` whose CRC-32 is ``checksum[i]``. When
    ``append[i]`` is true the row is a *fragment*: it extends the chunk's stored span, starting
    at or after its current end (``start[i] >= end`` as told by
    :meth:`~curvestore.core.capabilities.BatchTransaction.live_chunks`), and the chunk's
    points before it are kept; otherwise the row replaces the chunk whole. Arrays are int64
    (``append``: bool).
    """

    keys: Sequence[SeriesKey]
    series: np.ndarray
    chunk: np.ndarray
    start: np.ndarray
    length: np.ndarray
    count: np.ndarray
    checksum: np.ndarray
    size: np.ndarray
    offset: np.ndarray
    append: np.ndarray
    data: bytes
    codec: str
    dtype: str

    def __len__(self) -> int:
        return len(self.chunk)

    def payload(self, row: int) -> bytes:
        first = int(self.offset[row])
        return self.data[first:first + int(self.size[row])]

    def records(self) -> list[ChunkRecord]:
        """The rows as records, for backends without batch writes. Fragments cannot be
        expressed as records (a record replaces its chunk): a batch holding one raises."""
        if self.append.any():
            raise ValueError("a batch with fragments (append rows) has no record form")
        columns = zip(self.series.tolist(), self.chunk.tolist(), self.start.tolist(),
                      self.length.tolist(), self.count.tolist(), self.checksum.tolist(),
                      self.size.tolist(), self.offset.tolist(), strict=True)
        keys, data, codec, dtype = self.keys, self.data, self.codec, self.dtype
        return [ChunkRecord(keys[s], ChunkMeta(chunk=c, start=a, length=n, count=k, codec=codec,
                                               dtype=dtype, checksum=h, size=z),
                            data[o:o + z])
                for s, c, a, n, k, h, z, o in columns]


@dataclass(frozen=True, slots=True, eq=False)
class SeriesSummary:
    """What metadata calls need of every matching series with live chunks, one row each,
    ordered by key: the first valid point (chunk ``first_chunk``, offset ``first_start`` of
    its period), the end of the last (chunk ``last_chunk``, offset ``last_stop``, exclusive),
    and totals of live chunks, valid points and payload bytes. Arrays are int64."""

    keys: Sequence[SeriesKey]
    first_chunk: np.ndarray
    first_start: np.ndarray
    last_chunk: np.ndarray
    last_stop: np.ndarray
    chunks: np.ndarray
    points: np.ndarray
    payload_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)
