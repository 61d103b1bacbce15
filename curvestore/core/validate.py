"""Input validation: a pandas Series becomes (UTC nanoseconds, float64 values) or a typed error.

Nothing is silently altered: a non-datetime or naive index, duplicate timestamps, non-numeric
or infinite values all raise. NaN (and None / pd.NA in nullable dtypes) means "no value".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from curvestore.errors import InvalidDataError

__all__ = ["series_arrays"]

_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "empty", "decimal"}


def series_arrays(series: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a series; return its timestamps (int64 UTC ns) and values (float64)."""
    if not isinstance(series, pd.Series):
        raise InvalidDataError(
            f"expected a pandas Series with a tz-aware DatetimeIndex, got {type(series).__name__}"
        )
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidDataError(
            f"the series index must be a DatetimeIndex, got {type(index).__name__}"
        )
    if index.tz is None:
        raise InvalidDataError(
            "the series index is naive (no time zone); localize it first, e.g. "
            "series.tz_localize('Europe/Paris')"
        )
    if index.hasnans:
        raise InvalidDataError("the series index contains NaT")
    values = _values(series)
    if np.isinf(values).any():
        raise InvalidDataError("the series contains infinite values; use NaN for 'no value'")
    ns = index.as_unit("ns").asi8
    # Sorted input is the common case: uniqueness is then a strictly increasing index.
    if len(ns) > 1 and not (np.diff(ns) > 0).all():
        order = np.argsort(ns, kind="stable")
        ns, values = ns[order], values[order]
        repeated = np.flatnonzero(np.diff(ns) == 0)
        if len(repeated):
            dupes = pd.DatetimeIndex(ns[repeated[:3]], dtype=pd.DatetimeTZDtype("ns", index.tz))
            raise InvalidDataError(
                f"the series index has duplicate timestamps, e.g. {[str(d) for d in dupes]}"
            )
    return ns, values


def _values(series: pd.Series) -> np.ndarray:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise InvalidDataError("boolean values are not numeric; convert them explicitly")
    if pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        if dtype.kind == "c":
            raise InvalidDataError("complex values cannot be stored")
        return np.asarray(series.to_numpy(), dtype=np.float64)
    if dtype == np.dtype(object):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _NUMERIC_INFERRED:
            try:
                return np.asarray(
                    series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64
                )
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"values are not numeric: {exc}") from exc
    raise InvalidDataError(f"values must be numeric, got dtype {dtype} ({_sample(series)})")


def _sample(series: pd.Series) -> str:
    for value in series.to_numpy()[:50]:
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            return f"e.g. {value!r}"
    return "mixed types"
