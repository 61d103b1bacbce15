"""Chunk pieces: cutting validated arrays into per-period spans, encoding and decoding them,
and assembling decoded spans back into a series. Vectorised per chunk, never per point."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curvestore.core.codec import Codec, CodecLookup
from curvestore.core.grid import Grid
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError

__all__ = ["Piece", "assemble", "decode", "encode", "periods", "split", "trim"]


@dataclass(slots=True)
class Piece:
    """Dense values of one chunk from grid offset ``start`` of its period (NaN: no value)."""

    chunk: int
    start: int
    values: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + len(self.values)


def periods(grid: Grid, positions: np.ndarray) -> list[tuple[int, int, int, np.ndarray]]:
    """Cut sorted grid positions by chunk period: ``(chunk, a, b, offsets)`` for each period
    holding some, where ``positions[a:b]`` are its points and ``offsets`` their grid offsets
    from the period's start."""
    if not len(positions):
        return []
    # Only the period bounds are searched, so the cost grows with chunks, not points.
    first_chunk, last_chunk = (int(c) for c in grid.chunk_of_positions(positions[[0, -1]]))
    inner = grid.bounds[first_chunk - grid.first_chunk + 1:last_chunk - grid.first_chunk + 1]
    cuts = np.searchsorted(positions, inner, side="left").tolist()
    out = []
    for chunk, a, b in zip(range(first_chunk, last_chunk + 1), [0, *cuts],
                           [*cuts, len(positions)], strict=True):
        if a < b:
            out.append((chunk, a, b, positions[a:b] - grid.period(chunk)[0]))
    return out


def split(grid: Grid, positions: np.ndarray, values: np.ndarray) -> list[Piece]:
    """Cut sorted grid positions and their values into one dense piece per chunk."""
    pieces = []
    for chunk, a, b, offsets in periods(grid, positions):
        first = int(offsets[0])
        span = int(offsets[-1]) - first + 1
        if span == b - a:
            dense = np.array(values[a:b], dtype=np.float64)
        else:
            dense = np.full(span, np.nan)
            dense[offsets - first] = values[a:b]
        pieces.append(Piece(chunk, first, dense))
    return pieces


def trim(piece: Piece) -> Piece | None:
    """The piece cut to its first..last valid point, or None when it holds no value."""
    valid = ~np.isnan(piece.values)
    if not valid.any():
        return None
    first = int(valid.argmax())
    last = len(valid) - int(valid[::-1].argmax())
    if first == 0 and last == len(valid):
        return piece
    return Piece(piece.chunk, piece.start + first, piece.values[first:last])


def encode(key: SeriesKey, piece: Piece, codec: Codec, dtype: str) -> ChunkRecord:
    values = np.ascontiguousarray(piece.values, dtype=dtype)
    payload = codec.encode(values)
    meta = ChunkMeta(
        chunk=piece.chunk, start=piece.start, length=len(values),
        count=int(np.count_nonzero(values == values)), codec=codec.codec_id, dtype=dtype,
        checksum=checksum(payload), size=len(payload),
    )
    return ChunkRecord(key, meta, payload)


def encode_trimmed(key: SeriesKey, pieces: list[Piece], codec: Codec, dtype: str
                   ) -> list[ChunkRecord]:
    """Trim and encode many pieces, skipping empty ones.

    Serial on purpose: measured with 36-chunk series, a thread pool made this twice slower
    (per-chunk work is too small to amortise the GIL hand-offs)."""
    records = []
    for piece in pieces:
        trimmed = trim(piece)
        if trimmed is not None:
            records.append(encode(key, trimmed, codec, dtype))
    return records


def tombstone(key: SeriesKey, chunk: int) -> ChunkRecord:
    return ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True))


@functools.lru_cache(maxsize=32)
def _dtype(name: str) -> np.dtype:
    return np.dtype(name)  # parsing the name costs more than the lookup, once per chunk


def decode(record: ChunkRecord, codecs: CodecLookup) -> Piece:
    """Verify a record's checksum and decode it with ``codecs(record.meta.codec)``."""
    meta = record.meta
    if checksum(record.payload) != meta.checksum or len(record.payload) != meta.size:
        raise IntegrityError(
            f"chunk {meta.chunk} of series {record.key} fails its checksum (stored data is "
            "corrupt); restore it from a replica or delete it"
        )
    values = codecs(meta.codec).decode(
        record.payload, dtype=_dtype(meta.dtype), length=meta.length
    )
    return Piece(meta.chunk, meta.start, values)


def assemble(
    grid: Grid,
    pieces: list[Piece],
    lo_pos: int | None,
    hi_pos: int | None,
    drop_bounds_na: bool,
    index: Callable[[int, int], pd.DatetimeIndex],
) -> pd.Series | None:
    """Place decoded pieces on the grid and cut the window ``[lo_pos, hi_pos]``.

    With ``drop_bounds_na`` the result runs from the first to the last valid point; without,
    it covers the full periods of the chunks read, cut to the window. None if no valid point.
    ``index(first_pos, count)`` builds the result's index (``grid.index`` in the caller's
    time unit); a piece may span several whole periods. One piece covering the window is used
    without a copy.
    """
    if not pieces:
        return None
    starts = [grid.period(p.chunk)[0] for p in pieces]
    if drop_bounds_na:
        first = starts[0] + pieces[0].start
        last = starts[-1] + pieces[-1].stop
    else:
        first = starts[0]
        last_start, last_len = grid.period(pieces[-1].chunk)
        last = max(last_start + last_len, starts[-1] + pieces[-1].stop)
    if lo_pos is not None:
        first = max(first, lo_pos)
    if hi_pos is not None:
        last = min(last, hi_pos + 1)
    if last <= first:
        return None
    head_start = starts[0] + pieces[0].start
    if len(pieces) == 1 and head_start <= first and last <= starts[0] + pieces[0].stop:
        out = pieces[0].values[first - head_start:last - head_start]
        if not out.flags.writeable:
            out = out.copy()
    else:
        out = np.full(last - first, np.nan)
        for piece, period_start in zip(pieces, starts, strict=True):
            a = period_start + piece.start
            b = a + len(piece.values)
            lo, hi = max(a, first), min(b, last)
            if lo < hi:
                out[lo - first:hi - first] = piece.values[lo - a:hi - a]
    if drop_bounds_na:
        # only an end that is NaN needs the scan: a chunk's stored span starts and ends on a
        # valid point, so that happens where a window cuts into a span, seldom otherwise
        if np.isnan(out[0]) or np.isnan(out[-1]):
            valid = ~np.isnan(out)
            if not valid.any():
                return None
            head = int(valid.argmax())
            tail = len(out) - int(valid[::-1].argmax())
            out = out[head:tail]
            first += head
    elif np.isnan(out).all():
        return None
    return pd.Series(out, index=index(first, len(out)), copy=False)
