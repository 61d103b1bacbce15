"""Frame writes: a wide DataFrame (one column per series) validated, cut and encoded in bulk.

The index is validated and placed on the grid once for all columns; each chunk period is cut
once as a 2D block (points x series), and every column's first and last valid point and its
count of valid points come from numpy reductions over the block. Only the codec and the
checksum run column by column. The result is a :class:`~curvestore.core.batch.ChunkBatch`:

* a backend that writes batches (:class:`~curvestore.core.capabilities.WritesBatches`) takes
  it whole, updates that only extend a chunk going in as fragments, the others merged;
* any other backend gets the batch as records, through the same per-series read-merge-write
  as ``write_many`` (:func:`~curvestore.core.writes.apply_writes`).

Either way the stored result is what ``write_many`` of the same columns stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core import chunks as _chunks
from curvestore.core.batch import ChunkBatch
from curvestore.core.merge import update
from curvestore.core.records import ChunkRecord, SeriesKey, checksum
from curvestore.core.validate import check_index, frame_values, sorting
from curvestore.core.writes import Prepared, apply_writes
from curvestore.errors import InvalidDataError, InvalidKeyError, SeriesExistsError

if TYPE_CHECKING:
    from curvestore.core.codec import Codec
    from curvestore.core.config import KeySchema
    from curvestore.core.grid import Grid
    from curvestore.core.store import Store
    from curvestore.core.transact import ScopedTransaction

__all__ = ["EncodedFrame", "column_keys", "commit_encoded", "encode_block", "encode_frame",
           "write_frame"]


@dataclass(slots=True)
class EncodedFrame:
    """A validated frame as a batch of plain rows, with each row's values (a view of the
    frame's block, trimmed to its valid span) for the merges of an update."""

    batch: ChunkBatch
    values: list[np.ndarray]

    def prepared(self) -> list[Prepared]:
        """The rows as :class:`Prepared` series (pieces and their records), one per key of
        the batch, ordered by key: what the per-series read-merge-write takes."""
        batch = self.batch
        items = [Prepared(key, [], []) for key in batch.keys]
        for row, record in enumerate(batch.records()):
            item = items[int(batch.series[row])]
            item.pieces.append(_chunks.Piece(record.chunk, record.meta.start, self.values[row]))
            assert item.records is not None
            item.records.append(record)
        return items


def write_frame(store: Store, frame: Any, mode: str, codec: Codec) -> int:
    """:meth:`Store.write_frame` (mode and writability checked by the store): validate and
    encode ``frame`` with ``codec``, then commit it in one transaction."""
    encoded = encode_frame(store.schema, store.grid, frame, mode, codec, store.config.dtype)
    if encoded is None:
        return 0
    return commit_encoded(store, encoded, mode, codec)


def commit_encoded(store: Store, encoded: EncodedFrame, mode: str, codec: Codec) -> int:
    """Commit an encoded frame in one transaction with ``mode``'s rules: whole, as a batch,
    on a backend that writes batches; through the per-series read-merge-write otherwise.
    Returns the number of chunks written (tombstones included)."""
    keys = encoded.batch.keys
    if store.capabilities.batches:
        def batch_body(tx: ScopedTransaction) -> None:
            _stage_batch(tx, encoded, mode, store, codec)

        return len(store.transact(keys, batch_body, batch=True))
    items = encoded.prepared()

    def body(tx: ScopedTransaction) -> None:
        apply_writes(tx, items, mode, codec=codec, codecs=store.codecs,
                     dtype=store.config.dtype, schema=store.schema)

    return len(store.transact(keys, body))


def column_keys(schema: KeySchema, columns: pd.Index) -> list[SeriesKey]:
    """The series keys a frame's column labels name: values for a single-key store, tuples in
    key order (a MultiIndex, whose level names, when given, must be the key names in order,
    or a flat Index of tuples) otherwise. Duplicates raise."""
    named = isinstance(columns, pd.MultiIndex) and any(n is not None for n in columns.names)
    if named and tuple(columns.names) != schema.names:
        raise InvalidKeyError(
            f"the frame's column levels are {list(columns.names)}; this store's keys are "
            f"{list(schema.names)}, in that order", list(columns.names))
    if (len(schema.names) == 1 and schema.types[0] == "int"
            and not isinstance(columns, pd.MultiIndex) and columns.dtype.kind == "i"):
        # a fleet's meter ids: signed 64-bit by their dtype, so valid keys as a whole
        keys = [(v,) for v in columns.to_numpy(dtype=np.int64).tolist()]
    else:
        keys = [schema.key_from_tuple(label) for label in columns]
    if len(set(keys)) != len(keys):
        seen: set[SeriesKey] = set()
        for label, key in zip(columns, keys, strict=True):
            if key in seen:
                raise InvalidDataError(f"column {label!r} is given twice")
            seen.add(key)
    return keys


def encode_frame(schema: KeySchema, grid: Grid, frame: Any, mode: str, codec: Codec,
                 dtype: str) -> EncodedFrame | None:
    """Validate ``frame`` whole and encode it as plain rows: every column holding a value
    (every column with ``replace``, whose empty ones delete their series). None when there
    is nothing to write."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidDataError(f"expected a pandas DataFrame with a tz-aware DatetimeIndex "
                               f"and one column per series, got {type(frame).__name__}")
    keys = column_keys(schema, frame.columns)
    index = frame.index
    check_index(index, "frame")
    block = frame_values(frame, [k[0] if len(k) == 1 else k for k in keys])
    ns = index.as_unit("ns").asi8
    order = sorting(ns, index, "frame")
    if order is not None:
        ns, block = ns[order], np.asfortranarray(block[order])
    positions = grid.positions(ns)
    return encode_block(keys, grid, positions, block, mode, codec, dtype)


def encode_block(keys: Sequence[SeriesKey], grid: Grid, positions: np.ndarray,
                 block: np.ndarray, mode: str, codec: Codec, dtype: str
                 ) -> EncodedFrame | None:
    """Encode a validated block: ``block[i, j]`` is series ``keys[j]`` (distinct, valid) at
    grid position ``positions[i]`` (strictly increasing), float64, NaN for no value, each
    column contiguous (Fortran order). Columns holding a value become rows of the batch
    (every column with ``replace``, whose empty ones delete their series). None when there is
    nothing to write."""
    if not keys:
        return None
    rows = _Rows()
    for chunk, first, dense in _blocks(grid, positions, block):
        rows.add(chunk, first, dense, codec, dtype)
    written = np.zeros(len(keys), dtype=bool)
    written[np.asarray(rows.column, dtype=np.int64)] = True
    if mode == "replace":
        written[:] = True
    if not written.any():
        return None
    ranked = sorted((keys[j], j) for j in np.flatnonzero(written).tolist())
    rank = np.zeros(len(keys), dtype=np.int64)
    rank[[j for _, j in ranked]] = np.arange(len(ranked))
    return rows.encoded([k for k, _ in ranked], rank, codec.codec_id, dtype)


def _blocks(grid: Grid, positions: np.ndarray, block: np.ndarray
            ) -> list[tuple[int, int, np.ndarray]]:
    """``(chunk, first offset, dense block)`` per chunk period: the rows of ``block`` on
    every grid point from the period's first given point to its last, NaN where none was
    given (a view of ``block`` when nothing is missing)."""
    out = []
    for chunk, a, b, offsets in _chunks.periods(grid, positions):
        first = int(offsets[0])
        span = int(offsets[-1]) - first + 1
        if span == b - a:
            dense = block[a:b]
        else:
            dense = np.full((span, block.shape[1]), np.nan, order="F")
            dense[offsets - first] = block[a:b]
        out.append((chunk, first, dense))
    return out


class _Rows:
    """Encoded chunks gathered period by period, then ordered by (series, chunk)."""

    def __init__(self) -> None:
        self.column: list[int] = []
        self.chunk: list[int] = []
        self.start: list[int] = []
        self.length: list[int] = []
        self.count: list[int] = []
        self.checksum: list[int] = []
        self.payloads: list[bytes] = []
        self.values: list[np.ndarray] = []

    def add(self, chunk: int, first: int, dense: np.ndarray, codec: Codec, dtype: str) -> None:
        valid = ~np.isnan(dense)
        count = np.count_nonzero(valid, axis=0)
        head = valid.argmax(axis=0)
        tail = len(dense) - valid[::-1].argmax(axis=0)
        for j in np.flatnonzero(count).tolist():
            a, b = int(head[j]), int(tail[j])
            values = np.ascontiguousarray(dense[a:b, j], dtype=dtype)
            payload = codec.encode(values)
            self.column.append(j)
            self.chunk.append(chunk)
            self.start.append(first + a)
            self.length.append(b - a)
            self.count.append(int(count[j]))
            self.checksum.append(checksum(payload))
            self.payloads.append(payload)
            self.values.append(values)

    def encoded(self, keys: list[SeriesKey], rank: np.ndarray, codec: str, dtype: str
                ) -> EncodedFrame:
        series = rank[np.asarray(self.column, dtype=np.int64)]
        chunk = np.asarray(self.chunk, dtype=np.int64)
        order = np.lexsort((chunk, series))
        payloads = [self.payloads[i] for i in order.tolist()]
        batch = _batch(keys, series[order], chunk[order],
                       np.asarray(self.start, dtype=np.int64)[order],
                       np.asarray(self.length, dtype=np.int64)[order],
                       np.asarray(self.count, dtype=np.int64)[order],
                       np.asarray(self.checksum, dtype=np.int64)[order],
                       payloads, np.zeros(len(order), dtype=bool), codec, dtype)
        return EncodedFrame(batch, [self.values[i] for i in order.tolist()])


def _batch(keys: Sequence[SeriesKey], series: np.ndarray, chunk: np.ndarray, start: np.ndarray,
           length: np.ndarray, count: np.ndarray, crc: np.ndarray, payloads: list[bytes],
           append: np.ndarray, codec: str, dtype: str) -> ChunkBatch:
    size = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
    offset = np.zeros(len(size), dtype=np.int64)
    np.cumsum(size[:-1], out=offset[1:])
    return ChunkBatch(keys=keys, series=series, chunk=chunk, start=start, length=length,
                      count=count, checksum=crc, size=size, offset=offset, append=append,
                      data=b"".join(payloads), codec=codec, dtype=dtype)


# -- backends that write batches ------------------------------------------------------------

def _stage_batch(tx: ScopedTransaction, encoded: EncodedFrame, mode: str, store: Store,
                 codec: Codec) -> None:
    """Stage a frame's batch in a batch transaction: insert refuses series with live chunks,
    replace tombstones the live chunks it does not write, update appends what starts at or
    after a chunk's stored end and merges the rest with what is stored."""
    batch = encoded.batch
    live_series, live_chunk, live_end = (np.asarray(a, dtype=np.int64)
                                         for a in tx.live_chunks())
    if mode == "insert":
        if len(live_series):
            raise SeriesExistsError(store.schema.as_dict(batch.keys[s])
                                    for s in np.unique(live_series).tolist())
        tx.put_batch(batch)
        return
    live = (live_series << 32) | live_chunk
    rows = (batch.series << 32) | batch.chunk
    if mode == "replace":
        stale = ~np.isin(live, rows)
        tx.put([_chunks.tombstone(batch.keys[s], c) for s, c in
                zip(live_series[stale].tolist(), live_chunk[stale].tolist(), strict=True)])
        tx.put_batch(batch)
        return
    at = np.minimum(np.searchsorted(live, rows), max(len(live) - 1, 0))
    found = (live[at] == rows) if len(live) else np.zeros(len(rows), dtype=bool)
    end = np.where(found, live_end[at] if len(live) else 0, 0)
    append = found & (batch.start >= end)
    merge = np.flatnonzero(found & ~append)
    merged = _merged(tx, encoded, merge, store, codec) if len(merge) else {}
    fragment_codec = getattr(store.backend, "fragment_codec", None)
    if fragment_codec is None or fragment_codec == batch.codec or not append.any():
        tx.put_batch(_with(batch, append, merged))
        return
    # the backend keeps fragments in a codec of its own (raw, for a log-structured engine
    # that joins them in bulk later): the appended rows go in a batch of their own
    whole = np.flatnonzero(~append)
    if len(whole):
        tx.put_batch(_rows_of(_with(batch, append, merged), whole))
    tx.put_batch(_recoded(encoded, np.flatnonzero(append), store.codecs(fragment_codec)))


def _merged(tx: ScopedTransaction, encoded: EncodedFrame, rows: np.ndarray, store: Store,
            codec: Codec) -> dict[int, ChunkRecord]:
    """Rows ``rows`` (overlapping stored chunks) merged with what is stored, by row; the
    stored chunks are read all at once (``tx.read_chunks``)."""
    batch = encoded.batch
    keys = batch.keys
    refs = [(keys[s], c) for s, c in zip(batch.series[rows].tolist(),
                                         batch.chunk[rows].tolist(), strict=True)]
    out: dict[int, ChunkRecord] = {}
    for row, (key, chunk), record in zip(rows.tolist(), refs, tx.read_chunks(refs),
                                         strict=True):
        new = _chunks.Piece(chunk, int(batch.start[row]), encoded.values[row])
        merged = update(None if record is None else _chunks.decode(record, store.codecs), new)
        assert merged is not None  # the new piece holds a value
        out[row] = _chunks.encode(key, merged, codec, store.config.dtype)
    return out


def _rows_of(batch: ChunkBatch, rows: np.ndarray) -> ChunkBatch:
    """The batch of ``batch``'s rows ``rows``."""
    return _batch(batch.keys, batch.series[rows], batch.chunk[rows], batch.start[rows],
                  batch.length[rows], batch.count[rows], batch.checksum[rows],
                  [batch.payload(i) for i in rows.tolist()], batch.append[rows], batch.codec,
                  batch.dtype)


def _recoded(encoded: EncodedFrame, rows: np.ndarray, codec: Codec) -> ChunkBatch:
    """Rows ``rows`` of a frame's batch, as fragments encoded with ``codec``."""
    batch = encoded.batch
    payloads = [codec.encode(np.ascontiguousarray(encoded.values[i], dtype=batch.dtype))
                for i in rows.tolist()]
    crc = np.fromiter((checksum(p) for p in payloads), dtype=np.int64, count=len(payloads))
    return _batch(batch.keys, batch.series[rows], batch.chunk[rows], batch.start[rows],
                  batch.length[rows], batch.count[rows], crc, payloads,
                  np.ones(len(rows), dtype=bool), codec.codec_id, batch.dtype)


def _with(batch: ChunkBatch, append: np.ndarray, merged: dict[int, ChunkRecord]
          ) -> ChunkBatch:
    """``batch`` with fragment flags ``append`` and the rows of ``merged`` replaced."""
    if not merged:
        return ChunkBatch(keys=batch.keys, series=batch.series, chunk=batch.chunk,
                          start=batch.start, length=batch.length, count=batch.count,
                          checksum=batch.checksum, size=batch.size, offset=batch.offset,
                          append=append, data=batch.data, codec=batch.codec, dtype=batch.dtype)
    start, length, count, crc = (a.copy() for a in (batch.start, batch.length, batch.count,
                                                    batch.checksum))
    payloads = [batch.payload(i) for i in range(len(batch))]
    for row, record in merged.items():
        meta = record.meta
        start[row], length[row], count[row], crc[row] = (meta.start, meta.length, meta.count,
                                                         meta.checksum)
        payloads[row] = record.payload
    return _batch(batch.keys, batch.series, batch.chunk, start, length, count, crc, payloads,
                  append, batch.codec, batch.dtype)
