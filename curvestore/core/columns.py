"""Column batches: the matching series over a window as numpy columns, streamed a bounded
number of points at a time, for the Arrow reader (:meth:`Store.read_arrow`) to wrap.

Two layouts:

* **long**: one row per stored point (key columns, ``ts``, ``value``); points without a value
  (NaN) are not rows. Series are taken in key order, as many per batch as fill about
  ``batch_points`` points (a series is never split), from the store's vectorised scan
  (:meth:`Store.scan_pieces`). A batch of series that mostly share their span (a fleet's
  month) is laid on a block of series x span, as :meth:`Store.read_frame` lays it, and its
  columns are three masked copies of the block (values; the span's times broadcast; keys
  repeated per series): no work per piece but one copy. Series of scattered spans are
  concatenated piece by piece instead. Never a per point object.
  Text key columns are dictionary encoded (each distinct value once per batch, a code per
  row), int keys are int64 per row.
* **wide**: one row per grid point (``ts``), one column per matching series whose stored
  span meets the window (from the metadata, so the schema is known before the first batch),
  NaN where a series has no value. The window is read a group of whole chunk periods at a
  time (as many as fit ``batch_points``, at least one: a wide batch holds a chunk period of
  every column), each group's block of points x series filled from one scan and given as
  one batch. Rows run from the first to the last point holding a value in any series, as in
  :meth:`Store.read_frame`.

Timestamps are int64 microseconds since the epoch (UTC); the stream carries the store tz.
The core imports no Arrow library: the store is handed the function that turns a
:class:`ColumnStream` into Arrow batches (:data:`ArrowWriter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.capabilities import Summarises
from curvestore.core.spans import Part, cut, laid
from curvestore.core.tracing import traced_iterator

if TYPE_CHECKING:
    from curvestore.core.grid import Grid
    from curvestore.core.records import SeriesKey
    from curvestore.core.store import Store, Window

__all__ = ["BATCH_POINTS", "LAYOUTS", "ArrowWriter", "ColumnStream", "KeyColumn",
           "LongColumns", "WideColumns", "column_stream"]

#: points (rows x columns) a batch holds by default: 8 MB of values, a few batches in flight
BATCH_POINTS = 1 << 20
LAYOUTS = ("long", "wide")
_US = 1000


@dataclass(frozen=True, slots=True)
class KeyColumn:
    """One key attribute per row: ``values`` per row (int keys, int64), or ``codes`` per row
    (int32) into ``values``, the batch's distinct texts (str keys, an object array)."""

    values: np.ndarray
    codes: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class LongColumns:
    """A long batch: key columns (in the store's key order), timestamps (int64 UTC
    microseconds) and values (float64, never NaN)."""

    keys: list[KeyColumn]
    ts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class WideColumns:
    """A wide batch: timestamps (int64 UTC microseconds) and ``values[row, column]``
    (float64, NaN: no value), each column contiguous."""

    ts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class ColumnStream:
    """What a reader yields and how to label it: the key ``names`` and ``types`` (``"int"``
    or ``"str"``), the store ``tz``, the names of the time and value columns, the batches
    (lazy: reading happens as they are consumed) and, for the wide layout, the series of its
    columns, in order."""

    layout: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    tz: str
    time_column: str
    value_column: str
    batches: Iterator[LongColumns | WideColumns]
    columns: list[SeriesKey] = field(default_factory=list)


ArrowWriter = Callable[[ColumnStream], Any]
"""``writer(stream)``: the Arrow object :meth:`Store.read_arrow` returns for a stream (a
``pyarrow.RecordBatchReader``). Handed to the store, like codecs, so the core imports no
Arrow library."""


def column_stream(store: Store, where: Mapping[str, Any], window: Window, layout: str,
                  batch_points: int, time_column: str, value_column: str) -> ColumnStream:
    """The stream of ``layout`` over the series matching ``where`` (validated) on
    ``window``; the wide layout looks its columns up in the metadata now."""
    schema = store.schema
    labels = (tuple(schema.names), tuple(schema.types), store.config.tz, time_column,
              value_column)
    if layout == "long":
        batches: Iterator[Any] = _long(store, where, window, batch_points)
        keys: list[SeriesKey] = []
    else:
        keys, first, last = _live(store, where, window)
        batches = _wide(store, where, window, keys, first, last, batch_points)
    # a span from the first batch to the last, as for read_many (points: as read_frame
    # counts them, grid cells in the wide layout)
    spanned = traced_iterator(store, "read_arrow", batches,
                              lambda b: {"points": int(b.values.size)})
    return ColumnStream(layout, *labels, spanned, keys)


def _micros(grid: Grid, positions: np.ndarray) -> np.ndarray:
    ns: np.ndarray = grid.ns_of_positions(positions)
    return ns // _US


# -- long --------------------------------------------------------------------------------------

_Part = tuple[int, np.ndarray, "np.ndarray | None"]
"""Points of one series: the grid position of the first, their values, and their offsets
from it (None: consecutive)."""


def _long(store: Store, where: Mapping[str, Any], window: Window, batch_points: int
          ) -> Iterator[LongColumns]:
    if window.empty:
        return
    stop = None if window.hi is None else window.hi + 1
    starts = lru_cache(maxsize=None)(lambda chunk: store.grid.period(chunk)[0])
    batch = _LongBatch(store)
    for key, pieces in store.scan_pieces(where, window):
        kept = cut(starts, pieces, window.lo, stop)
        if kept:
            batch.add(key, kept)
            if batch.points >= batch_points:
                yield from batch.columns()
                batch = _LongBatch(store)
    yield from batch.columns()


class _LongBatch:
    """Whole series gathered for one long batch: each series' parts (first grid position,
    values) inside the window, in piece order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys: list[SeriesKey] = []
        self.parts: list[list[Part]] = []
        self.points = 0
        self.first = np.iinfo(np.int64).max
        self.end = np.iinfo(np.int64).min

    def add(self, key: SeriesKey, kept: list[Part]) -> None:
        self.keys.append(key)
        self.parts.append(kept)
        for a, values in kept:
            self.points += len(values)
            self.first = min(self.first, a)
            self.end = max(self.end, a + len(values))

    def columns(self) -> Iterator[LongColumns]:
        if not self.keys:
            return
        if len(self.keys) * (self.end - self.first) <= _DENSE * self.points:
            yield self._dense()
        else:
            yield self._sparse()

    def _dense(self) -> LongColumns:
        """Series that mostly share their span (a fleet's month): laid on a block of series x
        the span, as ``read_frame`` does, and the rows taken with three masked copies of the
        block, whatever the number of series (no work per piece but one copy)."""
        block = laid(self.parts, self.first, self.end)
        valid = ~np.isnan(block)
        counts = np.count_nonzero(valid, axis=1)
        times = _micros(self.store.grid, np.arange(self.first, self.end, dtype=np.int64))
        return _labelled(self.store, self.keys, counts,
                         np.broadcast_to(times, block.shape)[valid], block[valid])

    def _sparse(self) -> LongColumns:
        """Series of scattered spans: their parts without NaN, back to back."""
        owners: list[int] = []
        parts: list[_Part] = []
        for i, kept in enumerate(self.parts):
            for a, values in _in_order(kept):
                missing = np.isnan(values)
                if not missing.any():
                    parts.append((a, values, None))
                else:
                    offsets = np.flatnonzero(~missing)
                    if not len(offsets):
                        continue
                    parts.append((a, values.take(offsets), offsets))
                owners.append(i)
        if not parts:
            return _labelled(self.store, self.keys, np.zeros(len(self.keys), dtype=np.int64),
                             np.empty(0, dtype=np.int64), np.empty(0))
        lengths = np.fromiter((len(v) for _, v, _ in parts), dtype=np.int64, count=len(parts))
        counts = np.bincount(owners, weights=lengths, minlength=len(self.keys)).astype(np.int64)
        return _labelled(self.store, self.keys, counts,
                         _part_times(self.store.grid, parts, lengths),
                         np.concatenate([v for _, v, _ in parts]))


#: A batch is laid on a dense block of series x span while that has at most this many cells
#: per point held.
_DENSE = 4


def _in_order(kept: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """The parts of one series ordered by time and apart: pieces that overlap or come out of
    order (fragments of a chunk, each over the ones before it) are laid on one array, the
    later over the earlier, as every read assembles them."""
    end = None
    for a, values in kept:
        if end is not None and a < end:
            break
        end = a + len(values)
    else:
        return kept
    first = min(a for a, _ in kept)
    out = np.full(max(a + len(v) for a, v in kept) - first, np.nan)
    for a, values in kept:
        out[a - first:a - first + len(values)] = values
    return [(first, out)]


def _labelled(store: Store, keys: list[SeriesKey], counts: np.ndarray, ts: np.ndarray,
              values: np.ndarray) -> LongColumns:
    """The batch of ``keys`` holding ``counts[i]`` rows each, in order: its key columns."""
    columns = []
    for i, kind in enumerate(store.schema.types):
        labels = [k[i] for k in keys]
        if kind == "int":
            columns.append(KeyColumn(np.repeat(np.asarray(labels, dtype=np.int64), counts)))
        else:
            uniques, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
            columns.append(KeyColumn(uniques, np.repeat(codes.astype(np.int32), counts)))
    return LongColumns(columns, ts, values)


def _part_times(grid: Grid, parts: list[_Part], lengths: np.ndarray) -> np.ndarray:
    """The timestamps of every point of ``parts``."""
    firsts = np.fromiter((a for a, _, _ in parts), dtype=np.int64, count=len(parts))
    spans = np.fromiter((n if o is None else int(o[-1]) + 1 for (_, _, o), n in
                         zip(parts, lengths.tolist(), strict=True)),
                        dtype=np.int64, count=len(parts))
    lo = int(firsts.min())
    span = int((firsts + spans).max()) - lo
    if span <= 4 * int(lengths.sum()):
        # series of a batch mostly share their span (a fleet's month): convert the span
        # once and copy slices of it, rather than converting each point
        times = _micros(grid, np.arange(lo, lo + span, dtype=np.int64))
        return np.concatenate([
            times[a - lo:a - lo + len(v)] if o is None else times[a - lo:].take(o)
            for a, v, o in parts])
    positions = np.concatenate([np.arange(a, a + len(v), dtype=np.int64) if o is None else
                                o + a for a, v, o in parts])
    return _micros(grid, positions)


# -- wide --------------------------------------------------------------------------------------

def _live(store: Store, where: Mapping[str, Any], window: Window
          ) -> tuple[list[SeriesKey], int, int]:
    """The matching series whose stored span (first to last valid point, from the
    metadata) meets the window, ordered by key, and the chunks of the first and last of
    those spans' points (0, -1 when none)."""
    backend = store.backend
    grid = store.grid
    if store.capabilities.summaries and isinstance(backend, Summarises):
        summary = backend.summarise(where)
        keys = list(summary.keys)
        first = grid.period_starts(summary.first_chunk) + summary.first_start
        last = grid.period_starts(summary.last_chunk) + summary.last_stop - 1
    else:
        keys, spans = [], []
        for key, metas in backend.list_metas(where):
            if metas:
                keys.append(key)
                starts = [grid.period(m.chunk)[0] + m.start for m in metas]
                spans.append((min(starts), max(a + m.length - 1 for a, m in
                                               zip(starts, metas, strict=True))))
        first = np.asarray([a for a, _ in spans], dtype=np.int64)
        last = np.asarray([b for _, b in spans], dtype=np.int64)
    meets = np.ones(len(keys), dtype=bool)
    if window.lo is not None:
        meets &= last >= window.lo
    if window.hi is not None:
        meets &= first <= window.hi
    if not meets.any():
        return [], 0, -1
    if not meets.all():
        keys = [keys[i] for i in np.flatnonzero(meets).tolist()]
        first, last = first[meets], last[meets]
    chunks = grid.chunk_of_positions(np.array([first.min(), last.max()]))
    return keys, int(chunks[0]), int(chunks[1])


def _wide(store: Store, where: Mapping[str, Any], window: Window, keys: list[SeriesKey],
          first: int, last: int, batch_points: int) -> Iterator[WideColumns]:
    if window.empty or not keys:
        return
    grid = store.grid
    if window.chunk_lo is not None:
        first = max(first, window.chunk_lo)
    if window.chunk_hi is not None:
        last = min(last, window.chunk_hi)
    width = len(keys)
    rows_per_batch = max(1, batch_points // width)
    column_of = {k: j for j, k in enumerate(keys)}
    starts = lru_cache(maxsize=None)(lambda chunk: grid.period(chunk)[0])
    gap = _Gap(width, rows_per_batch)
    chunk = first
    while chunk <= last:
        # whole periods up to about batch_points points, at least one
        a, rows = grid.period(chunk)
        end = chunk
        while end < last and (rows + grid.period(end + 1)[1]) * width <= batch_points:
            end += 1
            rows += grid.period(end)[1]
        lo = a if window.lo is None else max(a, window.lo)
        hi = a + rows - 1 if window.hi is None else min(a + rows - 1, window.hi)
        sub = replace(window, lo=lo, hi=hi, chunk_lo=chunk, chunk_hi=end)
        chunk = end + 1
        if hi < lo:
            continue
        block = np.full((hi - lo + 1, width), np.nan, order="F")
        for key, pieces in store.scan_pieces(where, sub):
            j = column_of.get(key)
            if j is None:  # written since the metadata was read: not a column
                continue
            column = block[:, j]
            for at, values in cut(starts, pieces, lo, hi + 1):
                column[at - lo:at - lo + len(values)] = values
        yield from gap.emit(grid, lo, block)


class _Gap:
    """Rows are emitted from the first to the last holding a value: rows without any value
    after data are held back (counted) until a later row holds one, then given in batches of
    ``rows_per_batch``."""

    def __init__(self, width: int, rows_per_batch: int) -> None:
        self.width = width
        self.rows_per_batch = rows_per_batch
        self.started = False
        self.pending_at = 0  # grid position of the first held-back row
        self.pending = 0
        self._blank: np.ndarray | None = None

    def emit(self, grid: Grid, lo: int, block: np.ndarray) -> Iterator[WideColumns]:
        valid_rows = (~np.isnan(block)).any(axis=1)
        if not valid_rows.any():
            if self.started:
                self.pending += len(block)
            return
        head = 0 if self.started else int(valid_rows.argmax())
        tail = len(block) - int(valid_rows[::-1].argmax())
        if self.pending:
            yield from self._blanks(grid)
        self.started = True
        # one batch per block: its memory is held anyway, and each batch costs an Arrow
        # array per column, which would dominate with many columns and few rows a batch
        yield WideColumns(_micros(grid, np.arange(lo + head, lo + tail, dtype=np.int64)),
                          block[head:tail])
        self.pending_at, self.pending = lo + tail, len(block) - tail

    def _blanks(self, grid: Grid) -> Iterator[WideColumns]:
        """The held-back rows, all NaN (one shared read-only block)."""
        if self._blank is None:
            self._blank = np.full((self.rows_per_batch, self.width), np.nan, order="F")
            self._blank.flags.writeable = False
        at, left = self.pending_at, self.pending
        while left:
            n = min(left, self.rows_per_batch)
            yield WideColumns(_micros(grid, np.arange(at, at + n, dtype=np.int64)),
                              self._blank[:n])
            at, left = at + n, left - n
        self.pending = 0
