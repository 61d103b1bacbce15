"""``to_store``: the partitions of a long-layout Dask DataFrame written into a store by the
workers, each partition one all-or-nothing commit (:meth:`Store.ingest` of the partition,
sized so that it commits once)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core.long_read import long_block, scan_keys
from curvestore.core.longform import IngestColumns, ingest_columns
from curvestore.core.merge import MODES
from curvestore.dask._workers import dask_dataframe, worker_store
from curvestore.errors import ConfigurationError, InvalidDataError, SeriesExistsError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["WriteReport", "to_store"]

#: ``ingest`` budgets that make one partition one commit, validated whole first
_ONE_COMMIT = 1 << 62
_COUNTS = ("commits", "already_written", "empty", "series", "points", "chunks")


@dataclass(frozen=True)
class WriteReport:
    """What :func:`to_store` wrote."""

    #: partitions of the frame
    partitions: int
    #: partitions committed by this call (one commit each)
    commits: int
    #: ``insert`` partitions found already committed, with exactly their data, when their
    #: task ran again (a worker died after the commit and before reporting it): written
    #: once, counted once, not committed again
    already_written: int
    #: partitions without a point holding a value (nothing to write)
    empty: int
    #: series written, summed over partitions (a series in several partitions counts in each)
    series: int
    #: points holding a value written (already written partitions included)
    points: int
    #: chunks committed (tombstones included), as :meth:`Store.ingest` counts them
    chunks: int
    #: wall-clock time of the whole call
    seconds: float


def to_store(ddf: Any, url: str, mode: str = "insert", *, key_columns: Any = None,
             time_column: str = "ts", value_column: str = "value",
             tz: str | None = None) -> WriteReport:
    """Write a Dask DataFrame in long layout into the store at ``url`` from the workers.

    Each partition is written by one task as :meth:`~curvestore.Store.ingest` writes its
    rows, validated whole and committed once: a partition is all-or-nothing; partitions
    commit independently and in parallel (the store's concurrency control merges concurrent
    ``update`` s of one series without losing a point).

    Parameters
    ----------
    ddf
        A ``dask.dataframe.DataFrame`` with a column per key attribute, a time column (or
        an index of that name: :func:`read_dask` indexes by ``ts``) and a value column, as
        :meth:`~curvestore.Store.ingest` takes them; NaN means no value.
    url
        The store's URL; every worker opens it once (writable) and keeps it.
    mode
        ``"insert"``, ``"update"`` or ``"replace"``, per partition as
        :meth:`~curvestore.Store.ingest` applies it. ``insert`` and ``replace`` apply to each
        partition's series as a whole, so a series must lie within one partition for them
        (``read_dask(partition="series")`` gives such frames; ``ddf.shuffle(on=keys)`` makes
        them); ``update`` takes series spread over any number of partitions.
    key_columns, time_column, value_column, tz
        As :meth:`~curvestore.Store.ingest` takes them.

    Returns
    -------
    WriteReport
        Partitions, commits, series, points and chunks written.

    Raises
    ------
    BackendNotInstalledError
        Dask is not installed (``pip install "curvestore[dask]"``).
    InvalidDataError
        Not a Dask DataFrame, or a column missing (raised before anything runs); bad rows in
        a partition (that partition writes nothing).
    SeriesExistsError
        With ``insert``, a partition holding a series that has other data.
    ConfigurationError
        An unknown mode.
    ReadOnlyError
        The store at ``url`` is read-only.

    A retried task (its worker died) writes its partition again: ``update`` and ``replace``
    give the same result again; with ``insert``, a partition whose data is found committed
    exactly is reported as ``already_written`` instead of failing. Partitions committed
    before an error stay committed.
    """
    dd = dask_dataframe("curvestore.dask.to_store")
    began = time.perf_counter()
    if mode not in MODES:
        raise ConfigurationError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if not isinstance(ddf, dd.DataFrame):
        raise InvalidDataError(f"to_store takes a dask DataFrame, got {type(ddf).__name__}")
    store = worker_store(url, read_only=False)
    store.check_writable()
    columns = ingest_columns(store.schema, key_columns, time_column, value_column)
    present = {str(c) for c in ddf.columns}
    missing = [c for c in (*columns.keys, columns.value) if c not in present]
    if columns.time not in present and ddf.index.name != columns.time:
        missing.append(columns.time)
    if missing:
        raise InvalidDataError(
            f"the frame has no column {', '.join(map(repr, missing))} (it has "
            f"{sorted(present)}, index {ddf.index.name!r}); to_store needs one per key "
            f"attribute {list(store.schema.names)}, a time column (or index) and a value "
            "column; name them with key_columns=, time_column=, value_column=")
    writer = _WritePartition(url, mode, columns, tz)
    meta = pd.DataFrame({name: np.empty(0, dtype=np.int64) for name in _COUNTS})
    done = ddf.map_partitions(writer, meta=meta, enforce_metadata=False).compute()
    totals = {name: int(done[name].sum()) for name in _COUNTS}
    return WriteReport(partitions=int(ddf.npartitions), seconds=time.perf_counter() - began,
                       **totals)


@dataclass(frozen=True)
class _WritePartition:
    """The task: write one partition on a worker; returns its counts as a one-row frame."""

    url: str
    mode: str
    columns: IngestColumns
    tz: str | None

    def __call__(self, part: pd.DataFrame) -> pd.DataFrame:
        cols = self.columns
        times = part[cols.time] if cols.time in part.columns else part.index
        frame = pd.DataFrame({**{name: part[name].array for name in cols.keys},
                              cols.time: times.array, cols.value: part[cols.value].array})
        counts = dict.fromkeys(_COUNTS, 0)
        store = worker_store(self.url, read_only=False)
        try:
            report = _commit(store, frame, self)
        except SeriesExistsError:
            if self.mode != "insert" or not _already_written(store, frame, cols, self.tz):
                raise
            valid = frame[frame[cols.value].notna()]
            counts.update(already_written=1, points=len(valid),
                          series=len(valid.drop_duplicates(list(cols.keys))))
        else:
            counts.update(commits=report.commits, series=report.series, points=report.points,
                          chunks=report.chunks, empty=int(report.commits == 0))
        return pd.DataFrame({name: [value] for name, value in counts.items()})


def _commit(store: Store, frame: pd.DataFrame, task: _WritePartition) -> Any:
    """One partition through ``ingest``, in one commit (the point where a test kills a
    worker after the commit)."""
    cols = task.columns
    return store.ingest(frame, key_columns=list(cols.keys), time_column=cols.time,
                        value_column=cols.value, mode=task.mode, tz=task.tz,
                        buffer_bytes=_ONE_COMMIT, points_per_commit=_ONE_COMMIT)


def _already_written(store: Store, frame: pd.DataFrame, cols: IngestColumns,
                     tz: str | None) -> bool:
    """Whether the store holds exactly ``frame``'s points for its series over its time span:
    an insert of this partition committed before (its commit was all-or-nothing, so all of
    it is there), as opposed to series that held other data."""
    frame = frame[frame[cols.value].notna()]
    if frame.empty:
        return False
    times = pd.DatetimeIndex(frame[cols.time])
    if times.tz is None:
        if tz is None:
            return False
        times = times.tz_localize(tz)
    ns = times.as_unit("ns").asi8
    keys = list(dict.fromkeys(zip(*(frame[k].tolist() for k in cols.keys), strict=True)))
    window = store.window(pd.Timestamp(int(ns.min()), tz="UTC"),
                          pd.Timestamp(int(ns.max()), tz="UTC"))
    block = long_block(store, scan_keys(store, [store.schema.key_from_tuple(k) for k in keys],
                                        window), window)
    stored = pd.DataFrame({"ns": store.grid.ns_of_positions(block.positions),
                           "value": block.values})
    given = pd.DataFrame({"ns": ns, "value": frame[cols.value].to_numpy(np.float64)})
    for i, name in enumerate(cols.keys):
        labels = [k[i] for k in block.keys]
        stored.insert(i, name, pd.Series(np.asarray(labels, dtype=object)[block.owners()],
                                         dtype=object))
        given.insert(i, name, pd.Series(frame[name].tolist(), dtype=object))
    order = [*cols.keys, "ns"]
    stored = stored.sort_values(order, ignore_index=True)
    given = given.sort_values(order, ignore_index=True)
    return bool(stored.equals(given))
