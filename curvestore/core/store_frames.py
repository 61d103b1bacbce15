"""The frame methods of :class:`~curvestore.core.store.Store` (wide frames in and out, and
long-format ingest), kept apart so the store's module stays one screenful per concern."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from curvestore.core import frames_read, frames_write
from curvestore.core import ingest as _ingest
from curvestore.core.ingest import IngestProgress, IngestReport
from curvestore.core.longform import ingest_columns
from curvestore.core.tracing import traced

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
            Table, RecordBatch or RecordBatchReader, or the path of a ``.parquet`` or
            ``.csv`` file (read in batches; pyarrow for Parquet). Rows may come in any order.
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
