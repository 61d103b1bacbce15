"""Long-format sources for :meth:`Store.ingest` that the core does not read itself: pyarrow
Tables, RecordBatches and RecordBatchReaders, any object with an Arrow stream
(``__arrow_c_stream__``: a Polars DataFrame, a DuckDB relation, :meth:`Store.read_arrow`'s
reader), and Parquet and CSV files, read in batches of rows (only the ingest columns), each
handed to the core as a DataFrame.

Above the core: :func:`open_table` is what :mod:`curvestore.opening` hands every store it
builds (the core's :data:`~curvestore.core.ingest.TableReader`), so that the core never
imports pyarrow, which is imported here on first use (the ``parquet`` extra). CSV files are
read with pyarrow when it is installed (multi-threaded, streaming), with pandas in chunks
otherwise. Key columns are read as the store's key types (so ``"007"`` stays text for a str
key), values as float64; timestamps with a UTC offset are read tz-aware, without one naive
(``tz=`` says their zone).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curvestore.core.ingest import LongTable
from curvestore.errors import BackendNotInstalledError, InvalidDataError, InvalidKeyError

if TYPE_CHECKING:
    import pandas as pd

    from curvestore.core.config import KeySchema
    from curvestore.core.longform import IngestColumns

__all__ = ["open_table"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".txt")


def open_table(source: Any, columns: IngestColumns, batch_rows: int, schema: KeySchema
               ) -> LongTable | None:
    """``source`` as a :class:`LongTable` of DataFrames of at most ``batch_rows`` rows, or
    None when it is neither an Arrow object nor a path."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = path.name.lower()
        if name.endswith(_PARQUET):
            return _parquet(path, columns, batch_rows)
        if name.endswith(_CSV):
            return _csv(path, columns, batch_rows, schema)
        raise InvalidDataError(f"{path}: unknown file type; ingest reads .parquet and .csv "
                               "files")
    if type(source).__module__.split(".")[0] != "pyarrow":
        if not hasattr(source, "__arrow_c_stream__"):
            return None
        # Polars and DuckDB frames, any Arrow stream: read through pyarrow, batch by batch
        pa = _pyarrow("reading Arrow data", "arrow")
        try:
            source = pa.RecordBatchReader.from_stream(source)
        except pa.ArrowException as exc:
            raise InvalidDataError(f"cannot read the Arrow stream of {type(source).__name__}:"
                                   f" {exc}") from None
    pa = _pyarrow("reading Arrow data")
    if isinstance(source, pa.Table):
        _check_names(source.schema.names, columns, "the table")
        table = source.select(columns.names)
        return LongTable(_frames(table.to_batches(max_chunksize=batch_rows), columns),
                         table.num_rows)
    if isinstance(source, pa.RecordBatch):
        _check_names(source.schema.names, columns, "the record batch")
        batch = source.select(columns.names)
        return LongTable(_frames(_sliced([batch], batch_rows), columns), batch.num_rows)
    if isinstance(source, pa.RecordBatchReader):
        _check_names(source.schema.names, columns, "the record batch reader")
        batches = (b.select(columns.names) for b in source)
        return LongTable(_frames(_sliced(batches, batch_rows), columns))
    return None


def _pyarrow(what: str, extra: str = "parquet") -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise BackendNotInstalledError(what, extra, str(exc)) from None
    return pyarrow


def _check_names(names: list[str], columns: IngestColumns, what: str) -> None:
    missing = [c for c in columns.names if c not in names]
    if missing:
        raise InvalidDataError(f"{what} has no column {', '.join(map(repr, missing))}; its "
                               f"columns are {names[:20]}")


def _sliced(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _frames(batches: Iterable[Any], columns: IngestColumns) -> Iterator[pd.DataFrame]:
    """Arrow batches as DataFrames: text as categoricals (keys factorise on their codes),
    without consolidating columns into one block (no copy); timestamps given as text are
    parsed (each distinct one once)."""
    import pandas as pd

    pa = _pyarrow("reading Arrow data")
    for batch in batches:
        for name in columns.keys:
            column = batch.column(name)
            if column.null_count:
                row = int(column.is_null().to_numpy(zero_copy_only=False).argmax())
                raise InvalidKeyError(f"key column {name!r} has a missing value (row {row} "
                                      "of a batch)", name)
        try:
            frame = batch.to_pandas(strings_to_categorical=True, split_blocks=True)
        except pa.ArrowException as exc:
            raise InvalidDataError(f"cannot convert the input: {exc}") from None
        times = frame[columns.time]
        if isinstance(times.dtype, pd.CategoricalDtype):  # text (a CSV's mixed offsets)
            parsed = _parsed_times(times.cat.categories.to_series(index=None), columns.time)
            frame[columns.time] = pd.DatetimeIndex(parsed).take(
                times.cat.codes.to_numpy(), allow_fill=True, fill_value=pd.NaT)
        yield frame


def _parquet(path: Path, columns: IngestColumns, batch_rows: int) -> LongTable:
    _pyarrow(f"reading {path.name}")
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    _check_names(parquet.schema_arrow.names, columns, str(path))
    batches = parquet.iter_batches(batch_size=batch_rows, columns=columns.names)
    return LongTable(_closing(_frames(batches, columns), parquet), parquet.metadata.num_rows)


def _closing(frames: Iterator[pd.DataFrame], source: Any) -> Iterator[pd.DataFrame]:
    try:
        yield from frames
    finally:
        source.close()


def _csv(path: Path, columns: IngestColumns, batch_rows: int, schema: KeySchema) -> LongTable:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return LongTable(_csv_with_pandas(path, columns, batch_rows, schema))
    return LongTable(_csv_with_arrow(path, columns, batch_rows, schema))


def _csv_with_arrow(path: Path, columns: IngestColumns, batch_rows: int, schema: KeySchema
                    ) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as csv

    types = {c: pa.int64() if t == "int" else pa.string()
             for c, t in zip(columns.keys, schema.types, strict=True)}
    types[columns.value] = pa.float64()
    try:
        with csv.open_csv(path) as header:  # reads one block, for the column names
            _check_names(header.schema.names, columns, str(path))
        reader = csv.open_csv(path, convert_options=csv.ConvertOptions(
            include_columns=columns.names, column_types=types))
    except pa.ArrowInvalid as exc:
        raise InvalidDataError(f"{path}: {exc}") from None
    try:
        batches = _checked(reader, path)
        yield from _frames(_sliced(batches, batch_rows), columns)
    finally:
        reader.close()


def _checked(reader: Any, path: Path) -> Iterator[Any]:
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # a cell of the wrong type, a missing column
            raise InvalidDataError(f"{path}: {exc}") from None
        yield batch


def _csv_with_pandas(path: Path, columns: IngestColumns, batch_rows: int, schema: KeySchema
                     ) -> Iterator[pd.DataFrame]:
    import pandas as pd

    types: dict[str, Any] = {c: "int64" if t == "int" else "category"
                             for c, t in zip(columns.keys, schema.types, strict=True)}
    types[columns.value] = "float64"
    types[columns.time] = str
    try:
        chunks = pd.read_csv(path, usecols=columns.names, dtype=types, chunksize=batch_rows)
        with chunks:
            for chunk in chunks:
                chunk[columns.time] = _parsed_times(chunk[columns.time], columns.time)
                yield chunk
    except ValueError as exc:
        raise InvalidDataError(f"{path}: {exc}") from None


def _parsed_times(text: pd.Series, label: str) -> pd.Series:
    """ISO timestamps: tz-aware (in UTC) when they carry an offset, naive otherwise."""
    import pandas as pd

    text = text.astype(str).str.strip()
    aware = text.str.contains(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", regex=True)
    if aware.any() and not aware.all():
        row = int((~aware).to_numpy().argmax())
        raise InvalidDataError(f"the time column {label!r} mixes timestamps with and without "
                               f"a UTC offset (e.g. {text.iloc[row]!r})")
    try:
        return pd.to_datetime(text, format="ISO8601", utc=bool(len(text)) and bool(aware.all()))
    except (ValueError, TypeError) as exc:
        first = str(exc).split(". ")[0]  # pandas goes on with hints about formats
        raise InvalidDataError(f"the time column {label!r} is not ISO timestamps: "
                               f"{first}") from None
