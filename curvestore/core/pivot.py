"""Long-format rows pivoted onto the grid: ``(series id, grid position, value)`` rows scattered
into dense blocks of grid points x series, every point given twice found.

Series ids are given in order of first appearance (:class:`KeyMap`), so the series seen so far
are ``0 .. n - 1``. The block is kept in *slabs* of consecutive ids, allocated as ids appear,
so that it grows without copying what it holds; all slabs share one time axis (grid positions
``lo .. lo + rows - 1``), which grows with headroom (doubling) when rows fall outside it, so
that input ordered by time costs a few copies, not one per batch. Beside each slab's values
(float64, NaN for no value) a boolean block records which points were given, NaN included:
a point given twice is a duplicate whatever its values.

Both blocks are in Fortran order: a series' points are contiguous, which is what the encoder
reads column by column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from curvestore.core.records import SeriesKey

__all__ = ["CELL_BYTES", "KeyMap", "Pivot", "Slab"]

#: bytes a grid point of a series costs in the pivot: its float64 value and its "given" flag
CELL_BYTES = 9
_SLAB_CELLS = 1 << 23  # ~75 MB a slab: big enough for few slabs, small enough to round up by
_MAX_SLAB_SERIES = 1 << 16
_MIN_SLAB_SERIES = 64


class KeyMap:
    """Series keys and their ids, in order of first appearance."""

    def __init__(self) -> None:
        self.ids: dict[SeriesKey, int] = {}
        self.keys: list[SeriesKey] = []

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: list[SeriesKey],
               check: Callable[[SeriesKey], SeriesKey] | None = None) -> np.ndarray:
        """The ids of ``keys`` (distinct), giving the next ids to those never seen; ``check``,
        when given, validates each new key (and may raise) before it is kept."""
        known = self.ids
        out = np.fromiter((known.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        new = np.flatnonzero(out < 0)
        if len(new):
            fresh = [keys[i] for i in new.tolist()]
            if check is not None:
                fresh = [check(k) for k in fresh]
            first = len(self.keys)
            out[new] = np.arange(first, first + len(fresh))
            known.update(zip(fresh, range(first, first + len(fresh)), strict=True))
            self.keys += fresh
        return out


@dataclass(eq=False)
class Slab:
    """Series ids ``first .. first + size - 1``: their values and given flags on the pivot's
    time axis, and how many points were given."""

    first: int
    size: int
    values: np.ndarray
    given: np.ndarray
    count: int = 0

    @classmethod
    def empty(cls, first: int, size: int, rows: int) -> Slab:
        return cls(first, size, np.full((rows, size), np.nan, order="F"),
                   np.zeros((rows, size), dtype=bool, order="F"))

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.given.nbytes)

    def regrid(self, shift: int, rows: int) -> None:
        """Move to a time axis of ``rows`` rows where old row ``r`` is row ``r + shift``."""
        old = self.values.shape[0]
        values = np.full((rows, self.size), np.nan, order="F")
        values[shift:shift + old] = self.values
        self.values = values
        given = np.zeros((rows, self.size), dtype=bool, order="F")
        given[shift:shift + old] = self.given
        self.given = given


class Pivot:
    """The dense blocks of the series seen so far (see the module docstring).

    ``released`` ids (``0 .. released - 1``) were handed out by :meth:`release` and dropped:
    rows for them can no longer be added.
    """

    def __init__(self, slab_bytes: int | None = None) -> None:
        self.slabs: list[Slab] = []
        self.lo = 0  # grid position of row 0
        self.rows = 0
        self.first_position: int | None = None  # the span of the points given
        self.last_position: int | None = None
        self.released = 0
        self.slab_cells = _SLAB_CELLS if slab_bytes is None else max(1, slab_bytes // CELL_BYTES)

    @property
    def end(self) -> int:
        """One past the last id a slab holds (or ``released``)."""
        return self.slabs[-1].first + self.slabs[-1].size if self.slabs else self.released

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.slabs)

    def _axis(self, lo: int, hi: int) -> tuple[int, int]:
        """The time axis ``(lo, rows)`` holding positions ``lo..hi`` and the current one."""
        if not self.rows:
            return lo, hi - lo + 1
        old_hi = self.lo + self.rows - 1
        if lo >= self.lo and hi <= old_hi:
            return self.lo, self.rows
        new_lo, new_hi = min(lo, self.lo), max(hi, old_hi)
        if new_hi - new_lo + 1 < 2 * self.rows:  # headroom on the side that grew
            if hi > old_hi:
                new_hi = new_lo + 2 * self.rows - 1
            else:
                new_lo = new_hi - 2 * self.rows + 1
        return new_lo, new_hi - new_lo + 1

    def _slab_size(self, rows: int, end: int) -> int:
        """The size of a new slab from id ``end``: as many series as the slabs before it
        (geometric growth: small inputs stay small), within the slab size bounds."""
        most = max(_MIN_SLAB_SERIES, min(_MAX_SLAB_SERIES, self.slab_cells // rows))
        return int(min(most, max(_MIN_SLAB_SERIES, end - self.released)))

    def bytes_after(self, ids_end: int, lo: int, hi: int) -> int:
        """What the slabs would take once they hold ids below ``ids_end`` on an axis that
        holds positions ``lo..hi``."""
        _, rows = self._axis(lo, hi)
        total = sum(s.size for s in self.slabs) * rows
        end = self.end
        while end < ids_end:
            size = self._slab_size(rows, end)
            total += size * rows
            end += size
        return total * CELL_BYTES

    def add(self, ids: np.ndarray, positions: np.ndarray, values: np.ndarray) -> int | None:
        """Scatter rows (``ids`` at or above :attr:`released`); returns the index of a row
        whose point was given before (by this call or an earlier one), else None. After a
        duplicate the pivot is left half-updated: the caller gives up."""
        if not len(ids):
            return None
        lo, hi = int(positions.min()), int(positions.max())
        new_lo, rows = self._axis(lo, hi)
        if (new_lo, rows) != (self.lo, self.rows):
            for slab in self.slabs:
                slab.regrid(self.lo - new_lo, rows)
            self.lo, self.rows = new_lo, rows
        top = int(ids.max()) + 1
        while self.end < top:
            self.slabs.append(Slab.empty(self.end, self._slab_size(rows, self.end), rows))
        self.first_position = lo if self.first_position is None else min(lo, self.first_position)
        self.last_position = hi if self.last_position is None else max(hi, self.last_position)
        starts = np.fromiter((s.first for s in self.slabs), dtype=np.int64,
                             count=len(self.slabs))
        which = np.searchsorted(starts, ids, side="right") - 1
        first, last = int(which.min()), int(which.max())
        for k in range(first, last + 1):
            rows_of = None if first == last else np.flatnonzero(which == k)
            duplicate = self._scatter(self.slabs[k], ids, positions, values, rows_of)
            if duplicate is not None:
                return duplicate
        return None

    def _scatter(self, slab: Slab, ids: np.ndarray, positions: np.ndarray,
                 values: np.ndarray, rows_of: np.ndarray | None) -> int | None:
        if rows_of is not None:
            if not len(rows_of):
                return None
            ids, positions, values = ids[rows_of], positions[rows_of], values[rows_of]
        flat = (ids - slab.first) * self.rows + (positions - self.lo)
        given = slab.given.T.reshape(-1)  # views: the blocks are in Fortran order
        before = given[flat]
        if before.any():
            return _input_row(rows_of, int(before.argmax()))
        slab.values.T.reshape(-1)[flat] = values
        given[flat] = True
        count = int(np.count_nonzero(given))
        if count != slab.count + len(flat):  # two rows of this call on one point
            _, first_at, seen = np.unique(flat, return_index=True, return_counts=True)
            twice = np.flatnonzero(flat == flat[first_at[int((seen > 1).argmax())]])
            return _input_row(rows_of, int(twice[1]))
        slab.count = count
        return None

    def blocks(self, slabs: Iterable[Slab], total: int
               ) -> list[tuple[Slab, int, np.ndarray, np.ndarray]]:
        """``(slab, first id, grid positions, block)`` for each of ``slabs``: the block is the
        view of its values on the positions given in any slab, for its ids below ``total``."""
        if self.first_position is None or self.last_position is None:
            return []
        a, b = self.first_position - self.lo, self.last_position - self.lo + 1
        positions = np.arange(self.first_position, self.last_position + 1, dtype=np.int64)
        out = []
        for slab in slabs:
            width = min(slab.size, total - slab.first)
            if width > 0:
                out.append((slab, slab.first, positions, slab.values[a:b, :width]))
        return out

    def release(self, count: int) -> None:
        """Drop the first ``count`` slabs (written): their ids can take no more rows."""
        if count:
            dropped = self.slabs[:count]
            self.released = dropped[-1].first + dropped[-1].size
            del self.slabs[:count]


def _input_row(rows_of: np.ndarray | None, at: int) -> int:
    return at if rows_of is None else int(rows_of[at])
