"""Write modes on dense chunk pieces.

* insert and replace store the new piece as given (trimmed to its valid span);
* update merges point by point: a new value wins wherever it is not NaN, the old value is kept
  where the new one is NaN (pandas' ``new.combine_first(old)``).
A result without any valid point means "no chunk": a tombstone if one existed before.
"""

from __future__ import annotations

import numpy as np

from curvestore.core.chunks import Piece, trim

__all__ = ["MODES", "update"]

MODES = ("insert", "update", "replace")


def update(old: Piece | None, new: Piece) -> Piece | None:
    """``new.combine_first(old)`` on one chunk, trimmed."""
    if old is None:
        return trim(new)
    first = min(old.start, new.start)
    stop = max(old.stop, new.stop)
    out = np.full(stop - first, np.nan)
    out[old.start - first:old.stop - first] = old.values
    target = out[new.start - first:new.stop - first]
    valid = ~np.isnan(new.values)
    target[valid] = new.values[valid]
    return trim(Piece(new.chunk, first, out))
