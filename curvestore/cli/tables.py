"""Tables in and out: a series read from a CSV or parquet file, written to one or to stdout.

The first column holds the timestamps, the others the values. pandas is imported inside the
functions, so that commands which need no table do not pay for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from curvestore.cli.common import CLIError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["file_format", "read_series", "require_pyarrow", "write_series"]

PARQUET_HINT = 'pip install "curvestore[parquet]"'
_TZ_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def file_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".csv.gz", ".txt")) or path == "-":
        return "csv"
    raise CLIError(f"{path}: unknown file type; use a .csv or .parquet file")


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise CLIError(f"parquet files need pyarrow, which is not installed; install it with: "
                       f"{PARQUET_HINT}") from None


def read_frame(path: str) -> pd.DataFrame:
    """The table in ``path``, its first column the timestamps (a DatetimeIndex is reset)."""
    import pandas as pd

    if file_format(path) == "parquet":
        require_pyarrow()
        frame = pd.read_parquet(path)
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index()
    else:
        frame = pd.read_csv(sys.stdin if path == "-" else path, dtype={0: str})
    if frame.shape[1] < 2:
        raise CLIError(f"{path}: expected a timestamp column and a value column, "
                       f"found {list(map(str, frame.columns))}")
    return frame


def _iso_timestamps(column: pd.Series, path: str, *, utc: bool) -> pd.DatetimeIndex:
    import pandas as pd

    from curvestore.core.grid import FIRST_YEAR, LAST_YEAR

    try:
        return pd.DatetimeIndex(pd.to_datetime(column, utc=utc, format="ISO8601"))
    except pd.errors.OutOfBoundsDatetime as exc:  # pandas 2's nanoseconds end in 2262
        raise CLIError(f"{path}: a timestamp is outside the supported years "
                       f"{FIRST_YEAR}-{LAST_YEAR} ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path}: the first column is not ISO timestamps: {exc}") from None


def parse_timestamps(column: pd.Series, tz: str | None, path: str) -> pd.DatetimeIndex:
    """Parse a column of timestamps, tz-aware; naive ones only with ``tz`` (then localized)."""
    import pandas as pd

    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(column)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        aware = pd.Series(False, index=column.index)
    else:
        text = column.astype(str).str.strip()
        aware = text.str.contains(_TZ_SUFFIX, regex=True)
        column = text
    if aware.all():
        return _iso_timestamps(column, path, utc=True)
    if aware.any():
        row = int((~aware).to_numpy().argmax())
        raise CLIError(f"{path}: mixes timestamps with and without a UTC offset "
                       f"(e.g. row {row + 1}: {column.iloc[row]!r})")
    if tz is None:
        raise CLIError(f"{path}: timestamps have no UTC offset (e.g. {column.iloc[0]!r}); "
                       "give their time zone with --tz, e.g. --tz Europe/Paris")
    naive = _iso_timestamps(column, path, utc=False)
    try:
        return naive.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except Exception as exc:  # pytz/zoneinfo raise various types
        raise CLIError(f"{path}: cannot localize the timestamps in {tz}: {exc}") from None


def read_series(path: str, column: str | None, tz: str | None) -> pd.Series:
    """The one value column of ``path`` (or ``column``) indexed by its parsed timestamps."""
    import pandas as pd

    frame = read_frame(path)
    names = [str(c) for c in frame.columns]
    values = names[1:]
    if column is not None:
        if column not in values:
            raise CLIError(f"{path}: no value column {column!r}; columns are {values}")
        chosen = column
    elif len(values) == 1:
        chosen = values[0]
    else:
        raise CLIError(f"{path}: {len(values)} value columns {values}; choose one with --column")
    frame.columns = names
    index = parse_timestamps(frame[names[0]], tz, path)
    return pd.Series(frame[chosen].to_numpy(), index=index, name=chosen)


def write_series(series: pd.Series, path: str | None) -> None:
    """Write ``series`` as a two-column table (timestamp, value): CSV on stdout by default."""
    frame = series.rename("value").rename_axis("timestamp").reset_index()
    if path is None or path == "-":
        frame.to_csv(sys.stdout, index=False)
    elif file_format(path) == "parquet":
        require_pyarrow()
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
