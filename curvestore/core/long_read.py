"""Long reads: the points of many series over a window as flat columns (series, grid
position, value), one row per point holding a value, for partitioned readers.

A partition of a distributed read is either every series of a filter over one chunk period
(:meth:`Store.scan_pieces`) or a given group of series (:func:`scan_keys`). Either way the
decoded pieces are cut to the window and concatenated, and the NaN (no value) dropped, with
a few numpy calls over the whole partition: the cost follows the points, with one Python
step per piece and no pandas object per series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from curvestore.core import chunks as _chunks
from curvestore.core.capabilities import DecodesPieces, ScansKeys

if TYPE_CHECKING:
    from curvestore.core.records import SeriesKey
    from curvestore.core.store import Store, Window

__all__ = ["LongBlock", "long_block", "scan_keys"]


@dataclass(frozen=True, slots=True)
class LongBlock:
    """Points of several series, one row each: ``values`` (never NaN) at grid ``positions``.
    Rows are key-major, ``keys[i]`` owning ``counts[i]`` consecutive rows (ascending in time),
    unless ``owner`` is given: then ``keys[owner[r]]`` owns row ``r``. Series without a value
    are left out."""

    keys: list[SeriesKey]
    counts: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    owner: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def owners(self) -> np.ndarray:
        """The index in :attr:`keys` of each row's series."""
        if self.owner is not None:
            return self.owner
        return np.repeat(np.arange(len(self.keys), dtype=np.int64), self.counts)

    @classmethod
    def empty(cls) -> LongBlock:
        none = np.empty(0, dtype=np.int64)
        return cls([], none, none, np.empty(0, dtype=np.float64))


def long_block(store: Store, scanned: Iterable[tuple[SeriesKey, list[_chunks.Piece]]],
               window: Window, *, time_major: bool = False) -> LongBlock:
    """The points of ``scanned`` (series with their decoded pieces, in key order) inside
    ``window``, NaN dropped, ordered by key then time, or by time then key with
    ``time_major`` (through a dense block of the window's points x series, as
    ``read_frame`` builds: meant for windows of one chunk period)."""
    grid = store.grid
    lo, hi = window.lo, window.hi
    stop = None if hi is None else hi + 1
    keys: list[SeriesKey] = []
    starts: list[int] = []
    arrays: list[np.ndarray] = []
    owners: list[int] = []
    period_start: dict[int, int] = {}
    for key, pieces in scanned:
        for piece in pieces:
            base = period_start.get(piece.chunk)
            if base is None:
                base = period_start[piece.chunk] = grid.period(piece.chunk)[0]
            a = base + piece.start
            b = a + len(piece.values)
            cut_a = a if lo is None else max(a, lo)
            cut_b = b if stop is None else min(b, stop)
            if cut_a < cut_b:
                if not keys or keys[-1] != key:
                    keys.append(key)
                starts.append(cut_a)
                arrays.append(piece.values[cut_a - a:cut_b - a])
                owners.append(len(keys) - 1)
    if not arrays:
        return LongBlock.empty()
    # One preallocated column each, filled piece by piece, the NaN dropped on the way: each
    # piece is read once while in cache, whatever the partition's size.
    lengths = [len(v) for v in arrays]
    values = np.empty(sum(lengths), dtype=np.float64)
    positions = np.empty(len(values), dtype=np.int64)
    longest = max(lengths)
    steps = np.arange(longest, dtype=np.int64)
    missing = np.empty(longest, dtype=bool)
    piece_counts = np.empty(len(arrays), dtype=np.int64)
    at = 0
    for i, (start, array, n) in enumerate(zip(starts, arrays, lengths, strict=True)):
        k = n - int(np.count_nonzero(np.isnan(array, out=missing[:n])))
        if k == n:
            values[at:at + n] = array
            np.add(steps[:n], start, out=positions[at:at + n])
        elif k:
            _copy_valid(array, missing[:n], steps, start, values[at:at + k],
                        positions[at:at + k])
        piece_counts[i] = k
        at += k
    values, positions = values[:at], positions[:at]
    counts = np.bincount(owners, weights=piece_counts, minlength=len(keys)).astype(np.int64)
    if not counts.all():  # series holding only NaN in the window
        keys = [k for k, n in zip(keys, counts.tolist(), strict=True) if n]
        counts = counts[counts > 0]
    block = LongBlock(keys, counts, positions, values)
    return _time_major(block) if time_major else block


#: NaN in a piece up to which its valid stretches are copied one by one: load curves miss a
#: few readings a month, and a slice copy per stretch costs less than a masked copy.
_FEW_HOLES = 32


def _copy_valid(array: np.ndarray, missing: np.ndarray, steps: np.ndarray, start: int,
                values: np.ndarray, positions: np.ndarray) -> None:
    """The values of ``array`` that are not ``missing`` into ``values``, their grid
    positions (``start`` + index) into ``positions``."""
    holes = np.flatnonzero(missing)
    if len(holes) > _FEW_HOLES:
        valid = ~missing
        np.compress(valid, array, out=values)
        np.add(np.compress(valid, steps[:len(array)]), start, out=positions)
        return
    at = previous = 0
    for hole in [*holes.tolist(), len(array)]:
        if hole > previous:
            n = hole - previous
            values[at:at + n] = array[previous:hole]
            np.add(steps[previous:hole], start, out=positions[at:at + n])
            at += n
        previous = hole + 1


def _time_major(block: LongBlock) -> LongBlock:
    """``block``'s rows ordered by time then key, through a dense (points x series) block."""
    if not len(block):
        return block
    first = int(block.positions.min())
    span = int(block.positions.max()) - first + 1
    # written series by series (key-major: sequential), then transposed in one copy
    flat = np.full(span * len(block.keys), np.nan)
    flat[block.owners() * span + (block.positions - first)] = block.values
    dense = np.ascontiguousarray(flat.reshape(len(block.keys), span).T)
    valid = ~np.isnan(dense)
    rows, owner = np.nonzero(valid)
    return LongBlock(block.keys, block.counts, rows + first, dense[valid], owner)


def scan_keys(store: Store, keys: Sequence[SeriesKey], window: Window
              ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
    """Each of ``keys`` (valid series keys) holding chunks in the window's range, with its
    decoded pieces, in key order: the backend's bulk :class:`ScansKeys` read when it has one;
    else one ``fetch`` of every (series, chunk) of a bounded window, which backends batch
    (PostgreSQL: one query); else a read per series."""
    backend = store.backend
    lo, hi = window.chunk_lo, window.chunk_hi
    ordered = sorted(set(keys))
    if window.empty or not ordered:
        return iter(())
    if store.capabilities.key_scans and isinstance(backend, ScansKeys):
        first, last = window.offsets(store.grid)
        return backend.scan_keys(ordered, lo, hi, first=first, last=last)
    if lo is not None and hi is not None:
        return _fetched(store, ordered, lo, hi)
    return _each(store, ordered, window)


def _fetched(store: Store, keys: list[SeriesKey], lo: int, hi: int
             ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
    chunks = range(lo, hi + 1)
    records = store.backend.fetch([(key, chunk) for key in keys for chunk in chunks])
    for i, key in enumerate(keys):
        mine = records[i * len(chunks):(i + 1) * len(chunks)]
        pieces = [_chunks.decode(r, store.codecs) for r in mine if not r.meta.deleted]
        if pieces:
            yield key, pieces


def _each(store: Store, keys: list[SeriesKey], window: Window
          ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
    backend = store.backend
    lo, hi = window.chunk_lo, window.chunk_hi
    for key in keys:
        if store.capabilities.pieces and isinstance(backend, DecodesPieces):
            first, last = window.offsets(store.grid)
            pieces = backend.read_pieces(key, lo, hi, first=first, last=last)
        else:
            pieces = [_chunks.decode(r, store.codecs) for r in backend.read_chunks(key, lo, hi)]
        if pieces:
            yield key, pieces
