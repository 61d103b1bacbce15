"""Frame reads: the matching series over a window as one wide DataFrame.

Decoded pieces are cut to the window and copied into one preallocated float64 array (points x
series, each column contiguous); the rows are then trimmed to the first and last point that
holds a value in any series, and series without a value in the window dropped, with two
numpy reductions over the whole array. No per-series pandas object is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core.spans import Part, cut, laid

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema
    from curvestore.core.records import SeriesKey
    from curvestore.core.store import Store

__all__ = ["frame_columns", "read_frame"]


def read_frame(store: Store, filter: Mapping[str, Any] | None, start: Any, end: Any
               ) -> pd.DataFrame:
    """:meth:`Store.read_frame`."""
    where = store.schema.filter(filter)  # bad filters and bounds raise before any read
    window = store.window(start, end)
    if window.empty:
        return _empty(store)
    lo, hi = window.lo, window.hi
    stop = None if hi is None else hi + 1
    grid = store.grid
    keys: list[SeriesKey] = []
    spans: list[list[Part]] = []
    first, last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    start_of = lru_cache(maxsize=None)(lambda chunk: grid.period(chunk)[0])
    for key, pieces in store.scan_pieces(where, window):
        kept = cut(start_of, pieces, lo, stop)
        if kept:
            keys.append(key)
            spans.append(kept)
            first = min(first, kept[0][0])
            last = max(last, max(a + len(v) for a, v in kept))
    if not keys:
        return _empty(store)
    out = laid(spans, first, last).T  # points x series, each column contiguous
    # A piece cut by the window may start or end on NaN, and the bounds are those of the
    # values: trim rows to the first and last holding one, drop series holding none.
    valid = ~np.isnan(out)
    rows = valid.any(axis=1)
    if not rows.any():
        return _empty(store)
    head = int(rows.argmax())
    tail = len(rows) - int(rows[::-1].argmax())
    if head or tail < len(rows):
        out = out[head:tail]
    columns = valid.any(axis=0)
    if not columns.all():
        out = out[:, columns]
        keys = [k for k, keep in zip(keys, columns.tolist(), strict=True) if keep]
    return pd.DataFrame(out, index=store.index(first + head, len(out)),
                        columns=frame_columns(store.schema, keys), copy=False)


def frame_columns(schema: KeySchema, keys: list[SeriesKey]) -> pd.Index:
    """Column labels for ``keys`` as ``write_frame`` takes them: the key values for a
    single-key store, a MultiIndex named by the key attributes otherwise."""
    if len(schema.names) == 1:
        if not keys:
            return pd.Index([], dtype=_label_dtype(schema.types[0]), name=schema.names[0])
        return pd.Index([k[0] for k in keys], name=schema.names[0])
    if not keys:
        return pd.MultiIndex.from_arrays(
            [pd.Index([], dtype=_label_dtype(t)) for t in schema.types], names=schema.names)
    return pd.MultiIndex.from_tuples(keys, names=schema.names)


@lru_cache(maxsize=2)
def _label_dtype(kind: str) -> Any:
    """The dtype pandas gives labels of a key type (str labels: ``str`` on pandas 3,
    ``object`` on pandas 2)."""
    return pd.Index([0 if kind == "int" else "x"]).dtype


def _empty(store: Store) -> pd.DataFrame:
    return pd.DataFrame(np.empty((0, 0)), index=store.index(0, 0),
                        columns=frame_columns(store.schema, []))
