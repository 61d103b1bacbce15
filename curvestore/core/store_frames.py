"""The frame methods of :class:`~curvestore.core.store.Store` (wide frames in and out, and
long-format ingest), kept apart so the store's module stays one screenful per concern."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from curvestore.core import frames_read, frames_write
from curvestore.core import ingest as _ingest
from curvestore.core.columns import BATCH_POINTS, LAYOUTS, column_stream
from curvestore.core.ingest import IngestProgress, IngestReport
from curvestore.core.longform import ingest_columns
from curvestore.core.tracing import traced
from curvestore.errors import ConfigurationError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["FrameMethods"]


class FrameMethods:
    """Mixed into :class:`~curvestore.core.store.Store`."""

    @traced("write_frame")
    def write_frame(self, frame: pd.DataFrame, mode: str = "insert") -> int:
        """Write the columns of a wide frame, one series each, in one all-or-nothing call.

        The same as :meth:`write_many` of the frame's columns, validated and encoded for all
        columns at once (a frame of many series costs little more than its values).

        Parameters
        ----------
        frame
            A DataFrame on a tz-aware DatetimeIndex (on the store's grid, any time unit, any
            order) with one column per series. Column labels are key values: the value
            itself for a single-key store; for several keys, a MultiIndex whose levels are
            the key attributes in the store's key order (level names, when set, must be the
            key names in that order) or a flat Index of tuples. NaN means "no value".
        mode
            ``"insert"`` (every series must be without data), ``"update"`` (new values win,
            old ones stay where the new are NaN) or ``"replace"`` (each series becomes
            exactly its column; an all-NaN column deletes the series' data). With ``insert``
            and ``update``, all-NaN columns are skipped.

        Returns
        -------
        int
            The number of chunks written (tombstones included), as :meth:`write_many`.

        Raises
        ------
        InvalidDataError
            Not a DataFrame; a naive index, NaT, duplicate timestamps or duplicate columns;
            values that are not numeric, infinite or not exact as float64 (the message names
            the column and the first offending point).
        GridError
            Timestamps off the store's grid or outside the supported years.
        InvalidKeyError
            A column label that is not a valid key.
        SeriesExistsError
            With ``insert``, when any of the series has data.
        ConfigurationError
            An unknown mode.
        ReadOnlyError
            The store was opened read-only.
        """
        store = cast("Store", self)
        store._check_mode(mode)
        store.check_writable()
        return frames_write.write_frame(store, frame, mode, store._codec)

    @traced("ingest")
    def ingest(self, source: Any, *, key_columns: Any = None, time_column: str,
               value_column: str, mode: str = "insert", tz: str | None = None,
               buffer_bytes: int = _ingest.BUFFER_BYTES,
               points_per_commit: int = _ingest.POINTS_PER_COMMIT,
               batch_rows: int = _ingest.BATCH_ROWS,
               progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Write long-format rows (one row per series and timestamp), streamed in batches.

        The rows are pivoted onto the grid without a pandas object per series and written
        as :meth:`write_frame` writes a frame, in groups of series, one commit each.

        Parameters
        ----------
        source
            A pandas DataFrame or an iterable of DataFrames; on a store from
            :func:`~curvestore.open_store` / :func:`~curvestore.create_store` also a pyarrow
            Table, RecordBatch or RecordBatchReader, any object with an Arrow stream
            (``__arrow_c_stream__``: a Polars DataFrame, a DuckDB relation, the long layout
            of :meth:`read_arrow`), or the path of a ``.parquet`` or ``.csv`` file (read in
            batches; pyarrow for Parquet and Arrow streams). Rows may come in any order.
        key_columns
            The column of each key attribute: None (columns named as the keys), a name for a
            single-key store, names in the store's key order, or ``{key: column}``. Values
            must be of the key's type (int or str).
        time_column, value_column
            The timestamps (tz-aware, any zone and unit; on the store's grid) and the values
            (numeric; NaN or null: no value, as in a frame).
        mode
            ``"insert"``, ``"update"`` or ``"replace"``, per series as in :meth:`write_frame`
            (each series of the input is written once, whole).
        tz
            The zone of naive timestamps (refused without it, as :meth:`write` refuses a
            naive index); ``store.config.tz`` takes them in the store's zone. Times that do
            not exist or are ambiguous there (DST changes) are refused.
        buffer_bytes
            The memory the pivoted block may take: 9 bytes per grid point and series over
            the input's time span. Input within it is validated whole before anything is
            written; larger input is written group by group and must give each series' rows
            together (see below).
        points_per_commit
            About how many grid points (series x span) one commit takes.
        batch_rows
            Rows per batch read from the source.
        progress
            Called with an :class:`~curvestore.core.ingest.IngestProgress` after each batch
            read and each commit.

        Returns
        -------
        IngestReport
            Rows, series, points and chunks written, commits, and the time spent reading,
            encoding and committing.

        Raises
        ------
        InvalidDataError
            A missing column; timestamps that are not timestamps, naive without ``tz``,
            missing, or outside the supported years; values that are not numeric, infinite
            or not exact as float64 (the message names the column and row); input larger
            than ``buffer_bytes`` whose series' rows are not together.
        DuplicatePointError
            Two rows for the same series and timestamp.
        GridError
            Timestamps off the store's grid.
        InvalidKeyError
            Key columns that are missing values or of the wrong type, invalid keys.
        SeriesExistsError
            With ``insert``, when any series of the input (with a value) has data.
        ConfigurationError
            An unknown mode or a bad setting.
        ReadOnlyError
            The store was opened read-only.

        Atomicity: each commit is all-or-nothing. Input that fits ``buffer_bytes`` is
        checked whole first, so bad input writes nothing; an error while committing (a
        backend failure, a concurrent writer) leaves the groups committed before it, which
        the error's notes count. Larger input is written as it is read, so an error found
        later leaves the groups written before it.
        """
        store = cast("Store", self)
        store._check_mode(mode)
        store.check_writable()
        columns = ingest_columns(store.schema, key_columns, time_column, value_column)
        return _ingest.ingest(store, source, columns, mode, store._codec, tz=tz,
                              buffer_bytes=buffer_bytes, points_per_commit=points_per_commit,
                              batch_rows=batch_rows, progress=progress)

    @traced("read_frame")
    def read_frame(self, filter: Mapping[str, Any] | None = None, start: Any = None,
                   end: Any = None) -> pd.DataFrame:
        """The series matching ``filter`` on ``[start, end]`` as one wide frame.

        Equal to a frame of :meth:`read_many`'s series (same bounds and filter) on every
        grid point between the first and the last point holding a value in any of them,
        built without a pandas object per series.

        Parameters
        ----------
        filter
            A partial key (None: every series).
        start, end
            Inclusive bounds, in any form :meth:`read` takes (None: unbounded).

        Returns
        -------
        pandas.DataFrame
            One float64 column per series holding a value in the window, ordered by key,
            labelled as :meth:`write_frame` takes them (a single-key store's values in an
            Index named after the key; a MultiIndex named by the key attributes otherwise);
            the index is the store's DatetimeIndex (store tz, :attr:`time_unit`, ``freq``
            set) from the first to the last point holding a value, NaN where a series has
            none. No matching value: an empty frame with those column and index types.

        Raises
        ------
        InvalidKeyError
            An invalid filter.
        InvalidDataError
            A bound that is not a timestamp.
        """
        store = cast("Store", self)
        frame = frames_read.read_frame(store, filter, start, end)
        if store.tracer is not None:
            store.tracer.count(series=frame.shape[1], points=frame.size)
        return frame

    def read_arrow(self, filter: Mapping[str, Any] | None = None, start: Any = None,
                   end: Any = None, layout: str = "long", *, batch_points: int = BATCH_POINTS,
                   time_column: str = "ts", value_column: str = "value") -> Any:
        """The series matching ``filter`` on ``[start, end]`` as a stream of Arrow record
        batches, read from the store as it is consumed, in bounded memory.

        The result is a ``pyarrow.RecordBatchReader``: it implements the Arrow PyCapsule
        stream protocol (``__arrow_c_stream__``), so ``polars.from_arrow(reader)``,
        ``duckdb.sql("select ... from reader")`` and ``pyarrow.Table.from_batches(reader)``
        take it without a copy. It can be consumed once, while the store is open.

        Parameters
        ----------
        filter
            A partial key (None: every series).
        start, end
            Inclusive bounds, in any form :meth:`read` takes (None: unbounded).
        layout
            ``"long"``: a row per stored point, ordered by key then time: one column per key
            attribute (int keys int64, text keys ``dictionary<int32, string>``), then
            ``ts`` (``timestamp[us, <store tz>]``) and ``value`` (float64). Points without a
            value are not rows. :meth:`ingest` takes it back as it is
            (``time_column="ts", value_column="value"``).
            ``"wide"``: ``ts``, then a float64 column per matching series whose stored span
            (first to last value, from the metadata) meets the window (all null when the
            window falls in a gap of it), ordered by key, named by its key values (joined by
            ``/`` for several keys; the key as JSON in the field's ``curvestore.key``
            metadata); a row per grid point from the first to the last holding a value in
            any series, as :meth:`read_frame`; a point without a value is null (NaN in
            ``to_numpy()`` and ``to_pandas()``).
        batch_points
            About how many points a batch holds (default 1,048,576: 8 MB of values). Long
            batches take whole series until they hold that many; wide batches take that
            many points in rows of every column, but read a whole chunk period of every
            column at once (a month of 10,000 meters at 15 minutes is 240 MB).
        time_column, value_column
            The names of the time and value columns (they must differ from the key names).

        Returns
        -------
        pyarrow.RecordBatchReader
            With the schema above even when nothing matches (then without rows).

        Raises
        ------
        InvalidKeyError
            An invalid filter.
        InvalidDataError
            A bound that is not a timestamp.
        ConfigurationError
            An unknown layout, a bad ``batch_points`` or column name, a store whose grid
            microseconds cannot hold, or a store built without an Arrow writer (open it with
            :func:`~curvestore.open_store`).
        BackendNotInstalledError
            pyarrow is not installed (``pip install "curvestore[arrow]"``).
        """
        store = cast("Store", self)
        if layout not in LAYOUTS:
            raise ConfigurationError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
        if not isinstance(batch_points, int) or isinstance(batch_points, bool) \
                or batch_points < 1:
            raise ConfigurationError(f"batch_points must be a positive integer, got "
                                     f"{batch_points!r}")
        names = [*store.schema.names, time_column, value_column]
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ConfigurationError(f"time_column and value_column must be non-empty names, "
                                     f"apart from each other and from the keys, got {names}")
        where = store.schema.filter(filter)  # bad filters and bounds raise before any read
        window = store.window(start, end)
        store.grid.check_unit("us")
        if store.arrow is None:
            raise ConfigurationError(f"{store!r} was built without an Arrow writer; open it "
                                     "with curvestore.open_store to read Arrow")
        return store.arrow(column_stream(store, where, window, layout, batch_points,
                                         time_column, value_column))
