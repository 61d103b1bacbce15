"""Input validation: a pandas Series becomes (UTC nanoseconds, float64 values) or a typed error.

Nothing is silently altered: a non-datetime or naive index, duplicate timestamps, timestamps
outside the supported years, non-numeric or infinite values, and values that float64 cannot
hold exactly (int64 beyond 2**53, uint64, huge Python ints, long doubles, decimals) all raise,
naming the first offending point. NaN (and None / pd.NA in nullable dtypes) means "no value".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from curvestore.core.grid import EARLIEST, FIRST_YEAR, LAST_YEAR, LATEST, TIME_UNITS
from curvestore.errors import GridError, InvalidDataError

__all__ = ["check_index", "check_years", "column_values", "frame_values", "series_arrays",
           "sorting"]

_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "empty", "decimal"}
# Every integer of magnitude up to 2**53 is a float64; beyond, only some are.
_EXACT_INT = 2**53
_HINT = "convert it explicitly (e.g. series.astype(float)) if rounding is acceptable"


def series_arrays(series: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a series; return its timestamps (int64 UTC ns) and values (float64)."""
    if not isinstance(series, pd.Series):
        raise InvalidDataError(
            f"expected a pandas Series with a tz-aware DatetimeIndex, got {type(series).__name__}"
        )
    index = series.index
    check_index(index, "series")
    values = column_values(series)
    infinite = np.isinf(values)
    if infinite.any():
        at = index[int(infinite.argmax())]
        raise InvalidDataError(
            f"the series has an infinite value at {at}; use NaN for 'no value'")
    ns = index.as_unit("ns").asi8
    order = sorting(ns, index, "series")
    if order is not None:
        ns, values = ns[order], values[order]
    return ns, values


def check_index(index: Any, what: str) -> None:
    """Refuse an index that is not a tz-aware DatetimeIndex without NaT within the supported
    years (``what`` names the input in messages: ``"series"``, ``"frame"``)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidDataError(
            f"the {what} index must be a DatetimeIndex, got {type(index).__name__}"
        )
    if index.tz is None:
        raise InvalidDataError(
            f"the {what} index is naive (no time zone); localize it first, e.g. "
            f"{what}.tz_localize('Europe/Paris')"
        )
    if index.hasnans:
        raise InvalidDataError(f"the {what} index contains NaT")
    check_years(index)


def sorting(ns: np.ndarray, index: pd.DatetimeIndex, what: str) -> np.ndarray | None:
    """The permutation that sorts the timestamps ``ns`` (of ``index``), or None when they are
    strictly increasing already; duplicate timestamps raise."""
    # Sorted input is the common case: uniqueness is then a strictly increasing index.
    if len(ns) < 2 or (np.diff(ns) > 0).all():
        return None
    order = np.argsort(ns, kind="stable")
    repeated = np.flatnonzero(np.diff(ns[order]) == 0)
    if len(repeated):
        dupes = pd.DatetimeIndex(ns[order][repeated[:3]],
                                 dtype=pd.DatetimeTZDtype("ns", index.tz))
        raise InvalidDataError(
            f"the {what} index has duplicate timestamps, e.g. {[str(d) for d in dupes]}"
        )
    return order


def frame_values(frame: pd.DataFrame, labels: Sequence[Any]) -> np.ndarray:
    """A frame's values as one float64 array of points x columns, each column contiguous,
    every column checked as :func:`column_values` checks a series (an error names the first
    offending column by its label in ``labels``, then its first offending point) and
    infinities refused.

    Float and small integer columns are converted in bulk, one block per dtype; only columns
    of other dtypes (nullable, object, integers beyond 2**53...) are read one by one."""
    rows, width = frame.shape
    positions: dict[np.dtype, list[int]] = {}
    one_by_one: list[int] = []
    for j, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and (
                (dtype.kind == "f" and dtype.itemsize <= 8) or dtype.kind in "iu"):
            positions.setdefault(dtype, []).append(j)
        else:
            one_by_one.append(j)
    if len(positions) == 1 and not one_by_one:
        [dtype] = positions
        block = _exact(frame.to_numpy(), dtype)
        if block is not None:
            return _finite(frame, labels, np.asfortranarray(block, dtype=np.float64))
        one_by_one = list(range(width))
        positions = {}
    out = np.empty((rows, width), dtype=np.float64, order="F")
    for dtype, columns in positions.items():
        block = _exact(frame.iloc[:, columns].to_numpy(), dtype)
        if block is None:
            one_by_one += columns
        else:
            out[:, columns] = block
    for j in sorted(one_by_one):
        try:
            out[:, j] = column_values(frame.iloc[:, j])
        except InvalidDataError as exc:
            raise type(exc)(f"column {labels[j]!r}: {exc}") from exc
    return _finite(frame, labels, out)


def _exact(block: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """``block`` as float64 when every value is exact as float64 (None: check one by one)."""
    wide = dtype.kind in "iu" and dtype.itemsize >= 8 and block.size
    if wide and (block.max() > _EXACT_INT or (dtype.kind == "i" and block.min() < -_EXACT_INT)):
        return None
    return block.astype(np.float64, copy=False)


def _finite(frame: pd.DataFrame, labels: Sequence[Any], block: np.ndarray) -> np.ndarray:
    infinite = np.isinf(block)
    columns = infinite.any(axis=0)
    if columns.any():
        j = int(columns.argmax())
        at = frame.index[int(infinite[:, j].argmax())]
        raise InvalidDataError(f"the frame has an infinite value at {at} in column "
                               f"{labels[j]!r}; use NaN for 'no value'")
    return block


def check_years(index: pd.DatetimeIndex) -> None:
    """Refuse timestamps far outside the supported years before converting them to ns (where
    years past 2262 overflow); the grid refuses the ones just outside, at its period bounds."""
    if not len(index):
        return
    ticks = index.asi8
    step = TIME_UNITS[index.unit]
    lo, hi = -(-EARLIEST.value // step), LATEST.value // step
    if ticks.min() >= lo and ticks.max() <= hi:
        return
    at = index[int(np.argmax((ticks < lo) | (ticks > hi)))]
    raise GridError(f"timestamp {at} is outside the supported years {FIRST_YEAR}-{LAST_YEAR}")


def column_values(series: pd.Series) -> np.ndarray:
    """A series' values as float64, refusing any that float64 would alter (see the module
    docstring); NaN, None and NA mean "no value"."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise InvalidDataError("boolean values are not numeric; convert them explicitly")
    if pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            exact = getattr(dtype, "numpy_dtype", None)
            if exact is not None and exact.kind in "iu":  # nullable / Arrow integers
                ints = series.to_numpy(dtype=exact, na_value=0)
                _check_ints(series, ints)
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        if dtype.kind == "c":
            raise InvalidDataError("complex values cannot be stored")
        raw = series.to_numpy()
        if dtype.kind in "iu":
            _check_ints(series, raw)
            return raw.astype(np.float64)
        with np.errstate(over="ignore"):  # a long double beyond float64 is refused below
            values = np.asarray(raw, dtype=np.float64)
        if dtype.itemsize > 8:  # long double: keep only what float64 holds exactly
            _refuse_where(series, ~((values == raw) | np.isnan(raw)))
        return values
    if dtype == np.dtype(object):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _NUMERIC_INFERRED:
            return _object_values(series)
    raise InvalidDataError(f"values must be numeric, got dtype {dtype} ({_sample(series)})")


def _check_ints(series: pd.Series, ints: np.ndarray) -> None:
    """Refuse integers that float64 would round (vectorised; fast when all are small)."""
    if ints.dtype.itemsize < 8 or not len(ints):
        return
    if ints.max() <= _EXACT_INT and (ints.dtype.kind == "u" or ints.min() >= -_EXACT_INT):
        return
    floats = ints.astype(np.float64)
    # The one float64 beyond the integer type's range (2**63 or 2**64) cannot cast back.
    beyond = floats >= (2.0**63 if ints.dtype.kind == "i" else 2.0**64)
    back = np.where(beyond, 0.0, floats).astype(ints.dtype)
    _refuse_where(series, beyond | (back != ints))


def _object_values(series: pd.Series) -> np.ndarray:
    """Python ints, floats and decimals (and NA) as float64, refusing any they would alter."""
    raw = series.to_numpy()
    try:
        values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except OverflowError as exc:  # a Python int beyond float64's range
        _refuse_where(series, np.array([_overflows(v) for v in raw], dtype=bool))
        raise InvalidDataError(f"values are beyond float64's range: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"values are not numeric: {exc}") from exc
    valid = np.flatnonzero(~np.isnan(values))
    floats = values[valid]
    # Python compares int, float and Decimal exactly; numpy integer scalars would compare
    # through float64, so the integral floats are compared as Python ints.
    target = floats.astype(object)
    integral = np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) < 2.0**63)
    target[integral] = floats[integral].astype(np.int64).astype(object)
    wide = np.isfinite(floats) & (np.floor(floats) == floats) & ~integral
    if wide.any():
        target[wide] = [int(f) for f in floats[wide]]  # only ints of 2**63 and beyond
    same = np.asarray(raw[valid] == target, dtype=bool)
    bad = np.zeros(len(raw), dtype=bool)
    bad[valid[~same]] = True
    _refuse_where(series, bad)
    return values


def _overflows(value: Any) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    except (TypeError, ValueError):
        return False
    return False


def _refuse_where(series: pd.Series, bad: np.ndarray) -> None:
    if bad.any():
        at = int(bad.argmax())
        text = str(series.iloc[at])
        if len(text) > 40:
            text = f"{text[:20]}... ({len(text)} characters)"
        raise InvalidDataError(
            f"the value {text} at {series.index[at]} cannot be stored exactly as float64 (the "
            f"store's dtype); {_HINT}")


def _sample(series: pd.Series) -> str:
    for value in series.to_numpy()[:50]:
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            return f"e.g. {value!r}"
    return "mixed types"
