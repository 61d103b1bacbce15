"""``read_dask``: a store's series as a Dask DataFrame in long layout, one task per group of
series or per chunk period, each reading through the store's bulk paths on a worker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core.capabilities import Summarises
from curvestore.core.grid import TIME_UNITS
from curvestore.core.long_read import LongBlock, long_block, scan_keys
from curvestore.core.store import Window
from curvestore.dask._workers import dask_dataframe, worker_store
from curvestore.errors import ConfigurationError

if TYPE_CHECKING:
    from curvestore.core.records import SeriesKey
    from curvestore.core.store import Store

__all__ = ["PARTITIONS", "POINTS_PER_PARTITION", "long_frame", "read_dask"]

PARTITIONS = ("series", "period")
#: Points a ``partition="series"`` partition holds by default: some 70 MB in long layout
#: (three 8-byte columns), near the partition size Dask's guidance aims at. Much smaller ones
#: spend more in scheduling and per-partition work than they gain in balance; columns over
#: 32 MB are mapped fresh from the kernel at every allocation by glibc's malloc (its largest
#: adaptive mmap threshold), which measured ~40 % slower here.
POINTS_PER_PARTITION = 3_000_000


def read_dask(url: str, filter: Mapping[str, Any] | None = None, start: Any = None,
              end: Any = None, *, partition: str = "series",
              series_per_partition: int | None = None) -> Any:
    """The series of the store at ``url`` matching ``filter`` on ``[start, end]`` as a Dask
    DataFrame in long layout: one row per point holding a value.

    Parameters
    ----------
    url
        The store's URL, as :func:`~curvestore.open_store` takes it; it must reach the
        store from every worker (a shared path, a database or S3 endpoint they can see).
        Each worker process opens the store once, read-only, and keeps it.
    filter
        A partial key (None: every series).
    start, end
        Inclusive bounds, in any form :meth:`~curvestore.Store.read` takes (None:
        unbounded).
    partition
        ``"series"``: one partition per group of ``series_per_partition`` series (in key
        order), all their points in the window; divisions are unknown. ``"period"``: one
        partition per chunk period (month or year) of the window, every matching series;
        divisions are the period starts, so ``ddf.loc[a:b]`` reads only the periods it
        needs.
    series_per_partition
        Series per partition with ``partition="series"``; None sizes partitions for about
        :data:`POINTS_PER_PARTITION` points each, from the store's metadata (the matching
        series' mean points, at most the window's length).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns: one per key attribute (int64, or strings as pandas makes them), then
        ``value`` (float64, never NaN: a point without a value has no row). Index: ``ts``,
        tz-aware in the store's time zone and time unit. Within a partition, rows are ordered
        by key, then time. The frame holds what the store held when each partition was read:
        a read of a store being written is not one snapshot.

    Raises
    ------
    BackendNotInstalledError
        Dask is not installed (``pip install "curvestore[dask]"``).
    ConfigurationError
        An unknown ``partition`` or a bad ``series_per_partition``.
    InvalidKeyError, InvalidDataError
        A bad filter or bound (raised here, before anything runs).
    """
    dd = dask_dataframe("curvestore.dask.read_dask")
    if partition not in PARTITIONS:
        raise ConfigurationError(f"partition must be one of {list(PARTITIONS)}, "
                                 f"got {partition!r}")
    if series_per_partition is not None and (
            not isinstance(series_per_partition, int) or series_per_partition < 1):
        raise ConfigurationError("series_per_partition must be a positive integer, got "
                                 f"{series_per_partition!r}")
    store = worker_store(url, read_only=True)
    where = store.schema.filter(filter)
    window = store.window(start, end)
    meta = long_frame(store, LongBlock.empty())
    if partition == "series":
        size = series_per_partition or _series_for_points(store, where, window)
        parts, divisions = _series_parts(store, where, window, size), None
    else:
        parts, divisions = _period_parts(store, where, window)
    if not parts:
        return dd.from_pandas(meta, npartitions=1)
    # a fresh name per call: the store may change between two calls with the same arguments
    reader = _ReadPartition(url, where, uuid.uuid4().hex)
    return dd.from_map(reader, parts, meta=meta, divisions=divisions,
                       label=f"curvestore-read-{partition}", enforce_metadata=False)


@dataclass(frozen=True)
class _Part:
    """One partition: a group of series (``keys``) over ``window``, or every series of the
    filter over one chunk period (``keys`` None, ``window`` within that period)."""

    window: tuple[int | None, int | None, int | None, int | None]
    keys: tuple[SeriesKey, ...] | None = None
    token: str = ""

    def __dask_tokenize__(self) -> str:
        # named once, not hashed key by key: thousands of keys per part cost Dask's
        # tokenizer more than reading them
        return self.token


@dataclass(frozen=True)
class _ReadPartition:
    """The task: read one :class:`_Part` on a worker, as a pandas DataFrame."""

    url: str
    where: dict[str, Any]
    nonce: str

    def __call__(self, part: _Part) -> pd.DataFrame:
        store = worker_store(self.url, read_only=True)
        window = Window(*part.window)
        if part.keys is None:  # time-major, so that ``.loc`` slices within the partition
            scanned = store.scan_pieces(self.where, window)
            return long_frame(store, long_block(store, scanned, window, time_major=True))
        scanned = scan_keys(store, part.keys, window)
        return long_frame(store, long_block(store, scanned, window))


def long_frame(store: Store, block: LongBlock) -> pd.DataFrame:
    """``block`` as the long-layout DataFrame :func:`read_dask` documents (its columns are
    taken over: the positions become the timestamps)."""
    columns: dict[str, Any] = {}
    for i, (name, kind) in enumerate(zip(store.schema.names, store.schema.types, strict=True)):
        labels = [k[i] for k in block.keys]
        if kind == "int":
            ints = np.asarray(labels, dtype=np.int64)
            columns[name] = (np.repeat(ints, block.counts) if block.owner is None
                             else ints[block.owner])
        else:  # strings as pandas makes them (``str`` on pandas 3, object on 2)
            columns[name] = pd.Index(labels, dtype=_str_dtype()).take(block.owners())
    columns["value"] = block.values
    # in the store's time unit directly (the grid is whole in it: Grid.check_unit), computed
    # in place: the block's positions are not used again
    step = TIME_UNITS[store.time_unit]
    grid = store.grid
    stamps = block.positions
    stamps *= grid.freq_ns // step
    stamps += grid.origin_ns // step
    index = utc_index(stamps.view(f"datetime64[{store.time_unit}]"), store.config.tz)
    return pd.DataFrame(columns, index=index, copy=False)


def utc_index(utc: np.ndarray, tz: str) -> pd.DatetimeIndex:
    """A ``ts`` index in ``tz`` over ``utc`` (naive datetime64 of UTC instants), without a
    copy: pandas' public constructors localize naive values, a pass that costs as much as
    building the rest of a partition; the array's own constructor takes them as they are.
    Should a pandas release drop it, the public path is taken."""
    dtype = pd.DatetimeTZDtype(unit=np.datetime_data(utc.dtype)[0], tz=tz)
    try:
        from pandas.core.arrays import DatetimeArray

        array = DatetimeArray._simple_new(utc, dtype=dtype)
    except (ImportError, AttributeError, TypeError, AssertionError):  # pragma: no cover
        return pd.DatetimeIndex(utc, name="ts", copy=False, tz="UTC").tz_convert(tz)
    return pd.DatetimeIndex(array, name="ts", copy=False)


def _str_dtype() -> Any:
    return pd.Index(["x"]).dtype


def _series_parts(store: Store, where: dict[str, Any], window: Window, size: int
                  ) -> list[_Part]:
    if window.empty:
        return []
    names = store.schema.names
    keys = [tuple(k[n] for n in names) for k in store.keys(where)]
    bounds = (window.lo, window.hi, window.chunk_lo, window.chunk_hi)
    nonce = uuid.uuid4().hex
    return [_Part(bounds, tuple(keys[i:i + size]), f"{nonce}-{i}")
            for i in range(0, len(keys), size)]


def _series_for_points(store: Store, where: dict[str, Any], window: Window) -> int:
    """Series per partition for about :data:`POINTS_PER_PARTITION` points each."""
    backend = store.backend
    per_series = 0.0
    if store.capabilities.summaries and isinstance(backend, Summarises):
        points = backend.summarise(where).points
        per_series = float(points.mean()) if len(points) else 0.0
    if window.lo is not None and window.hi is not None:
        span = window.hi - window.lo + 1
        per_series = min(per_series, span) if per_series else span
    if per_series <= 0:  # nothing to go by: a month of quarter-hours
        per_series = 3_000.0
    return max(1, int(POINTS_PER_PARTITION // per_series))


def _period_parts(store: Store, where: dict[str, Any], window: Window
                  ) -> tuple[list[_Part], tuple[pd.Timestamp, ...] | None]:
    """One part per chunk period holding data of the matching series within the window,
    and the divisions: each part's first timestamp, then the last one of the last."""
    if window.empty:
        return [], None
    span = _chunk_span(store, where)
    if span is None:
        return [], None
    lo_chunk = span[0] if window.chunk_lo is None else max(span[0], window.chunk_lo)
    hi_chunk = span[1] if window.chunk_hi is None else min(span[1], window.chunk_hi)
    parts, firsts = [], []
    last = 0
    for chunk in range(lo_chunk, hi_chunk + 1):
        start, length = store.grid.period(chunk)
        a = start if window.lo is None else max(start, window.lo)
        b = start + length - 1 if window.hi is None else min(start + length - 1, window.hi)
        if a > b:
            continue
        parts.append(_Part((a, b, chunk, chunk), token=f"{where}-{a}-{b}-{uuid.uuid4().hex}"))
        firsts.append(a)
        last = b
    if not parts:
        return [], None
    return parts, tuple(store.index(p, 1)[0] for p in [*firsts, last])


def _chunk_span(store: Store, where: dict[str, Any]) -> tuple[int, int] | None:
    """The first and last chunk holding data among the matching series (metadata only)."""
    backend = store.backend
    if store.capabilities.summaries and isinstance(backend, Summarises):
        summary = backend.summarise(where)
        if not len(summary):
            return None
        return int(summary.first_chunk.min()), int(summary.last_chunk.max())
    first = last = None
    for _key, metas in backend.list_metas(where):
        for meta in metas:
            first = meta.chunk if first is None else min(first, meta.chunk)
            last = meta.chunk if last is None else max(last, meta.chunk)
    return None if first is None or last is None else (first, last)
