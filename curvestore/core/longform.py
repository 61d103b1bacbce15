"""Long-format input: one batch of rows (a DataFrame with key, time and value columns) turned
into series ids, grid positions and float64 values, or a typed error naming the column and row.

Everything is vectorised over the rows: key columns are factorised (hashing, no sort), only
each batch's distinct keys reach Python (to find or give their ids); timestamps are
factorised too, so the grid check (and, for naive times, the time-zone localisation) runs on
the batch's distinct instants only. Values are checked as :func:`~curvestore.core.validate.
column_values` checks a series: nothing that float64 would alter is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core.grid import TIME_UNITS
from curvestore.core.validate import check_years, column_values
from curvestore.errors import InvalidDataError, InvalidKeyError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema
    from curvestore.core.grid import Grid
    from curvestore.core.pivot import KeyMap
    from curvestore.core.records import SeriesKey

__all__ = ["IngestColumns", "LongBatch", "convert", "ingest_columns"]

_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class IngestColumns:
    """The input columns: one per key attribute, in the store's key order, then the
    timestamps and the values."""

    keys: tuple[str, ...]
    time: str
    value: str

    @property
    def names(self) -> list[str]:
        return [*self.keys, self.time, self.value]


def ingest_columns(schema: KeySchema, key_columns: Any, time_column: str,
                   value_column: str) -> IngestColumns:
    """The columns to read: ``key_columns`` is None (columns named as the keys), a column
    name (single-key stores), a sequence of names in the store's key order, or a mapping of
    key name -> column name."""
    names = schema.names
    if key_columns is None:
        keys = tuple(names)
    elif isinstance(key_columns, str):
        keys = (key_columns,)
    elif isinstance(key_columns, Mapping):
        unknown = sorted(set(key_columns) - set(names))
        if unknown:
            raise InvalidKeyError(f"key_columns names unknown key attributes {unknown}; this "
                                  f"store's keys are {list(names)}", key_columns)
        keys = tuple(key_columns.get(n, "") for n in names)
        if "" in keys:
            missing = [n for n in names if n not in key_columns]
            raise InvalidKeyError(f"key_columns gives no column for {missing}", key_columns)
    else:
        keys = tuple(key_columns)
    if len(keys) != len(names):
        raise InvalidKeyError(f"key_columns names {len(keys)} columns {list(keys)}; this store "
                              f"has {len(names)} keys {list(names)}: give one column per key, "
                              "in that order", key_columns)
    columns = IngestColumns(keys, time_column, value_column)
    every = columns.names
    if not all(isinstance(c, str) and c for c in every):
        raise InvalidDataError(f"column names must be non-empty strings, got {every}")
    if len(set(every)) != len(every):
        raise InvalidDataError(f"the key, time and value columns must differ, got {every}")
    return columns


@dataclass(frozen=True, slots=True)
class LongBatch:
    """A converted batch: per row its series id, grid position and value (NaN: none)."""

    ids: np.ndarray
    positions: np.ndarray
    values: np.ndarray


def convert(frame: pd.DataFrame, columns: IngestColumns, schema: KeySchema, grid: Grid,
            keymap: KeyMap, tz: str | None, row0: int) -> LongBatch:
    """Validate and convert ``frame`` (rows ``row0 ..`` of the input, for messages); new keys
    are validated and given ids in ``keymap``."""
    missing = [c for c in columns.names if c not in frame.columns]
    if missing:
        shown = [str(c) for c in frame.columns][:20]
        raise InvalidDataError(f"the input has no column {', '.join(map(repr, missing))}; "
                               f"its columns are {shown}")
    positions = _positions(frame[columns.time], columns.time, grid, tz, row0)
    values = _values(frame[columns.value], columns.value, row0)
    ids = _ids(frame, columns, schema, keymap, row0)
    return LongBatch(ids, positions, values)


# -- keys --------------------------------------------------------------------------------------

def _ids(frame: pd.DataFrame, columns: IngestColumns, schema: KeySchema, keymap: KeyMap,
         row0: int) -> np.ndarray:
    codes_list, uniques_list = [], []
    checked = False
    for column, name, kind in zip(columns.keys, schema.names, schema.types, strict=True):
        codes, uniques, exact = _factorised(frame[column], column, name, kind, row0)
        codes_list.append(codes)
        uniques_list.append(uniques)
        checked = checked or not exact
    if len(codes_list) == 1:
        codes, picks = codes_list[0], [np.arange(len(uniques_list[0]))]
    else:
        codes, picks = _combined(codes_list, [len(u) for u in uniques_list])
    parts = [u[p].tolist() for u, p in zip(uniques_list, picks, strict=True)]
    keys: list[SeriesKey] = list(zip(*parts, strict=True))
    check: Callable[[SeriesKey], SeriesKey] | None = (
        schema.key_from_tuple if checked else None)
    return keymap.lookup(keys, check)[codes]


def _factorised(column: pd.Series, label: str, name: str, kind: str, row0: int
                ) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(codes, uniques, exact)``: the column factorised, its uniques of the key's type
    (``exact``: int64 values, valid as they are; otherwise each new key is validated)."""
    dtype = column.dtype
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if len(codes) and codes.min() < 0:
        row = int(np.argmax(codes < 0))
        raise InvalidKeyError(f"key column {label!r} (key {name!r}) has a missing value at "
                              f"row {row0 + row}", name)
    values = np.asarray(uniques)
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if kind == "int":
        if values.dtype.kind in "iu":
            if values.dtype.kind == "u" and len(values) and values.max() > _INT64_MAX:
                at = int(np.argmax(values > _INT64_MAX))
                raise InvalidKeyError(f"key column {label!r}: key {name!r} must fit in a "
                                      f"signed 64-bit integer, got {values[at]}", name)
            return codes, values.astype(np.int64, copy=False), True
        if values.dtype == object and pd.api.types.infer_dtype(values) == "integer":
            return codes, values, False
    elif values.dtype == object and pd.api.types.infer_dtype(values) == "string":
        return codes, values, False
    want = "integers" if kind == "int" else "text (str)"
    raise InvalidKeyError(f"key column {label!r} (key {name!r}, {kind}) must hold {want}, "
                          f"got dtype {dtype} (e.g. {values[0]!r})" if len(values) else
                          f"key column {label!r} (key {name!r}) must hold {want}", name)


def _combined(codes_list: list[np.ndarray], sizes: list[int]
              ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Several keys' codes as one code per distinct combination, and for each key the
    position of each combination's value among that key's uniques."""
    codes = codes_list[0].astype(np.int64)
    picks = [np.arange(sizes[0])]
    for more, size in zip(codes_list[1:], sizes[1:], strict=True):
        joint, uniques = pd.factorize(codes * size + more)
        picks = [p[uniques // size] for p in picks] + [uniques % size]
        codes = joint.astype(np.int64)
    return codes, picks


# -- times -------------------------------------------------------------------------------------

def _positions(column: pd.Series, label: str, grid: Grid, tz: str | None, row0: int
               ) -> np.ndarray:
    dtype = column.dtype
    aware = isinstance(dtype, pd.DatetimeTZDtype)
    if not aware and not (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        raise InvalidDataError(f"the time column {label!r} must hold timestamps, got dtype "
                               f"{dtype}; parse it first (e.g. pd.to_datetime(..., "
                               "format='ISO8601'))")
    index = pd.DatetimeIndex(column)
    if index.hasnans:
        row = int(np.argmax(index.isna()))
        raise InvalidDataError(f"the time column {label!r} has a missing value at row "
                               f"{row0 + row}")
    check_years(index)
    codes, ticks = pd.factorize(index.asi8)
    ns = ticks * TIME_UNITS[index.unit]
    if not aware:
        ns = _localized(ns, label, tz)
    order = np.argsort(ns)
    distinct = np.empty(len(ns), dtype=np.int64)
    distinct[order] = grid.positions(ns[order])
    return distinct[codes]


def _localized(wall_ns: np.ndarray, label: str, tz: str | None) -> np.ndarray:
    """Naive wall-clock instants in ``tz`` as UTC nanoseconds."""
    if tz is None:
        raise InvalidDataError(f"the time column {label!r} is naive (no time zone): give the "
                               "zone its times are in (tz=..., --tz on the command line; "
                               "e.g. the store's), or timestamps with a UTC offset")
    try:
        local = pd.DatetimeIndex(wall_ns.view("datetime64[ns]")).tz_localize(
            tz, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # pytz/zoneinfo raise various types
        raise InvalidDataError(f"the time column {label!r} holds a time that does not exist "
                               f"or is ambiguous in {tz} (a DST change): {exc}; give such "
                               "times with a UTC offset") from None
    return np.asarray(local.asi8, dtype=np.int64)


# -- values ------------------------------------------------------------------------------------

def _values(column: pd.Series, label: str, row0: int) -> np.ndarray:
    numbered = column.set_axis(pd.RangeIndex(row0, row0 + len(column)))
    try:
        values = column_values(numbered)
    except InvalidDataError as exc:
        raise InvalidDataError(f"the value column {label!r} (rows numbered from 0): "
                               f"{exc}") from None
    infinite = np.isinf(values)
    if infinite.any():
        row = int(infinite.argmax())
        raise InvalidDataError(f"the value column {label!r} has an infinite value at row "
                               f"{row0 + row}; use NaN (or null) for 'no value'")
    return values
