"""Helpers of the engine's bulk reads: series cut into groups of bounded size, the catalog
rows of many series at once, and series keys built only when asked for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.records import SeriesKey

if TYPE_CHECKING:
    from curvestore.engine._catalog import Catalog, Names

__all__ = ["LazyKeys", "key_of_row", "row_ranges", "scan_groups"]

#: Bulk reads fetch series in groups of at most this many series and, unless one series is
#: bigger, this many payload bytes: one batch of ranged reads per group, bounded memory.
_SCAN_GROUP = 4096
_SCAN_BYTES = 64 << 20


def scan_groups(catalog: Catalog, sids: np.ndarray, lo: int | None, hi: int | None
                ) -> Iterator[np.ndarray]:
    """``sids`` cut into consecutive groups of bounded size (series and payload bytes)."""
    starts, ends = catalog.slices(sids, lo, hi)
    prefix = catalog.size_prefix
    total = np.cumsum(prefix[ends] - prefix[starts])
    at = 0
    while at < len(sids):
        done = int(total[at - 1]) if at else 0
        stop = int(np.searchsorted(total, done + _SCAN_BYTES, side="right"))
        stop = min(max(stop, at + 1), at + _SCAN_GROUP)
        yield sids[at:stop]
        at = stop


def key_of_row(keys: list[SeriesKey], owner: np.ndarray, row: int) -> SeriesKey:
    return keys[int(owner[row])]


def row_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return shift + np.arange(total)


class LazyKeys(Sequence[SeriesKey]):
    """Series keys built on first use: metadata calls that need only numbers skip them."""

    def __init__(self, names: Names, sids: np.ndarray) -> None:
        self._names, self._sids = names, sids
        self._keys: list[SeriesKey] | None = None

    def _all(self) -> list[SeriesKey]:
        if self._keys is None:
            self._keys = self._names.keys(self._sids)
        return self._keys

    def __len__(self) -> int:
        return len(self._sids)

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self._all())

