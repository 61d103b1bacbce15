"""Arrow output for :meth:`Store.read_arrow`: the core's column batches
(:class:`~curvestore.core.columns.ColumnStream`) as a ``pyarrow.RecordBatchReader``.

Above the core: :func:`arrow_reader` is what :mod:`curvestore.opening` hands every store it
builds (the core's :data:`~curvestore.core.columns.ArrowWriter`), so that the core never
imports pyarrow, which is imported here on first use (the ``arrow`` extra).

The reader implements the Arrow PyCapsule stream protocol (``__arrow_c_stream__``), so
Polars, DuckDB and pyarrow take it without a copy. Numeric columns share the numpy buffers
the core built; text keys are dictionary encoded (a code per row), which DuckDB reads as
VARCHAR and Polars as Categorical. In the wide layout a missing point is null (its value
slot holds NaN, so ``to_numpy()`` and ``to_pandas()`` give NaN), so that SQL aggregates and
Polars skip it as they skip any missing value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from curvestore.core.columns import ColumnStream, LongColumns, WideColumns
from curvestore.errors import BackendNotInstalledError, ConfigurationError

__all__ = ["arrow_reader", "require_pyarrow"]


def require_pyarrow(what: str) -> Any:
    """The ``pyarrow`` module, or :class:`BackendNotInstalledError` naming the ``arrow``
    extra."""
    try:
        import pyarrow
    except ImportError as exc:
        raise BackendNotInstalledError(what, "arrow", str(exc)) from None
    return pyarrow


def arrow_reader(stream: ColumnStream) -> Any:
    """``stream`` as a ``pyarrow.RecordBatchReader`` (batches are read from the store as
    the reader is consumed)."""
    pa = require_pyarrow("Store.read_arrow")
    time_column, value_column = stream.time_column, stream.value_column
    ts_type = pa.timestamp("us", tz=stream.tz)
    if stream.layout == "long":
        fields = [pa.field(n, pa.int64() if t == "int" else pa.dictionary(pa.int32(),
                                                                           pa.string()),
                           nullable=False)
                  for n, t in zip(stream.names, stream.types, strict=True)]
        fields += [pa.field(time_column, ts_type, nullable=False),
                   pa.field(value_column, pa.float64(), nullable=False)]
    else:
        fields = [pa.field(time_column, ts_type, nullable=False)]
        fields += _wide_fields(pa, stream, time_column)
    schema = pa.schema(fields, metadata={"curvestore.layout": stream.layout})
    return pa.RecordBatchReader.from_batches(schema, _batches(pa, schema, stream, ts_type))


def _wide_fields(pa: Any, stream: ColumnStream, time_column: str) -> list[Any]:
    """A float64 column per series, named by its key values (joined by ``/`` for several
    keys), the key itself in the field's metadata (``curvestore.key``, JSON)."""
    names = stream.names
    labels = ["/".join(str(v) for v in key) for key in stream.columns]
    taken = {time_column}
    for label in labels:
        if label in taken:
            raise ConfigurationError(
                f"the wide layout names a column per series by its key values; {label!r} is "
                f"taken twice (by the time column {time_column!r} or another series): read "
                "the long layout, or give another time_column")
        taken.add(label)
    return [pa.field(label, pa.float64(),
                     metadata={"curvestore.key": json.dumps(dict(zip(names, key, strict=True)))})
            for label, key in zip(labels, stream.columns, strict=True)]


def _batches(pa: Any, schema: Any, stream: ColumnStream, ts_type: Any) -> Iterator[Any]:
    int32, int64, float64, text = pa.int32(), pa.int64(), pa.float64(), pa.string()

    def plain(kind: Any, values: Any) -> Any:  # shares the numpy buffer
        return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])

    for batch in stream.batches:
        ts = plain(ts_type, batch.ts)
        if isinstance(batch, LongColumns):
            arrays = [plain(int64, k.values) if k.codes is None else
                      pa.DictionaryArray.from_arrays(plain(int32, k.codes),
                                                     pa.array(k.values, type=text))
                      for k in batch.keys]
            arrays += [ts, plain(float64, batch.values)]
        else:
            assert isinstance(batch, WideColumns)
            arrays = [ts, *_wide_columns(pa, batch.values)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _wide_columns(pa: Any, block: np.ndarray) -> list[Any]:
    """A float64 array per column of ``block`` (each contiguous), sharing its buffer, with
    NaN as null: the validity bitmaps of all columns are packed in one pass."""
    rows, width = block.shape
    valid = ~np.isnan(block)
    nulls = (rows - np.count_nonzero(valid, axis=0)).tolist()
    bits = np.asfortranarray(np.packbits(valid, axis=0, bitorder="little"))
    float64 = pa.float64()
    return [pa.Array.from_buffers(
                float64, rows, [pa.py_buffer(bits[:, j]) if nulls[j] else None,
                                pa.py_buffer(block[:, j])], null_count=nulls[j])
            for j in range(width)]
