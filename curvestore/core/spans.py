"""Decoded pieces on the grid: cut to a window, and laid on a block of series x span.

Shared by the bulk readers that build a block over many series (:func:`Store.read_frame`,
the long Arrow batches): a piece is ``(chunk, start, values)``; its grid position is its
chunk period's first position plus ``start``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from curvestore.core.chunks import Piece

__all__ = ["Part", "cut", "laid"]

Part = tuple[int, np.ndarray]
"""A run of values: the grid position of the first, and the values."""


def cut(starts: Callable[[int], int], pieces: list[Piece], lo: int | None, stop: int | None
        ) -> list[Part]:
    """The pieces' parts inside ``[lo, stop)`` (no bound where None), in piece order;
    ``starts(chunk)`` is the grid position of a chunk period's first point."""
    kept = []
    for piece in pieces:
        a = starts(piece.chunk) + piece.start
        b = a + len(piece.values)
        cut_a = a if lo is None else max(a, lo)
        cut_b = b if stop is None else min(b, stop)
        if cut_a < cut_b:
            kept.append((cut_a, piece.values[cut_a - a:cut_b - a]))
    return kept


def laid(series_parts: Sequence[list[Part]], first: int, end: int) -> np.ndarray:
    """A block of series x grid positions ``[first, end)`` (C order: each series' row
    contiguous; its transpose is points x series with each column contiguous), NaN where a
    series has no part; later parts over earlier ones, as every read assembles them."""
    block = np.full((len(series_parts), end - first), np.nan)
    for row, parts in zip(block, series_parts, strict=True):
        for a, values in parts:
            row[a - first:a - first + len(values)] = values
    return block
