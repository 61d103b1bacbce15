"""The Store facade: the pandas-facing API over a Backend and the codecs.

The facade owns everything backend-neutral: key and input validation, grid math, chunking,
merge rules, encoding and checksums. Every write goes through one backend transaction
(all series of a ``write_many`` included), so a failed call leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from curvestore.core import chunks as _chunks
from curvestore.core.backend import Backend, Transaction
from curvestore.core.capabilities import (
    Capabilities,
    DecodesPieces,
    KeepsState,
    Summarises,
    WritesBatches,
)
from curvestore.core.codec import CodecLookup
from curvestore.core.columns import ArrowWriter
from curvestore.core.config import StoreConfig
from curvestore.core.feed import read_page
from curvestore.core.grid import Grid, get_grid, resolve_time_unit, to_utc_ns
from curvestore.core.ingest import TableReader
from curvestore.core.merge import MODES
from curvestore.core.records import Change, ChangePage, SeriesKey
from curvestore.core.store_frames import FrameMethods
from curvestore.core.tracing import Tracer, traced, traced_iterator
from curvestore.core.transact import CONFLICT_RETRIES, ScopedTransaction, run_transaction
from curvestore.core.validate import series_arrays
from curvestore.core.writes import Prepared, apply_writes, has_values
from curvestore.errors import (
    ConfigurationError,
    InvalidDataError,
    ReadOnlyError,
)

__all__ = ["FeedItem", "FeedPage", "Observer", "Store", "Window"]

Observer = Callable[..., None]
"""Told of events as ``observer(event, **details)`` (``chunks_committed``, ``sync_pulled``);
must not raise (the plugins' ``notify`` logs a failing plugin instead)."""


@dataclass(frozen=True)
class FeedItem:
    """One change-feed entry as users see it."""

    key: dict[str, Any]
    chunk: int
    period_start: pd.Timestamp
    version: int
    deleted: bool


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    cursor: str
    has_more: bool


@dataclass(frozen=True, slots=True)
class Window:
    """A read window on the store's grid: grid positions ``lo..hi`` and the chunks
    ``chunk_lo..chunk_hi`` that hold them (None: unbounded on that side)."""

    lo: int | None
    hi: int | None
    chunk_lo: int | None
    chunk_hi: int | None

    @property
    def empty(self) -> bool:
        return self.lo is not None and self.hi is not None and self.hi < self.lo

    def offsets(self, grid: Grid) -> tuple[int | None, int | None]:
        """``lo`` as an offset in chunk ``chunk_lo``'s period, ``hi`` in ``chunk_hi``'s:
        what a backend needs to skip pieces of those chunks outside the window."""
        first = None if self.lo is None or self.chunk_lo is None else \
            self.lo - grid.period(self.chunk_lo)[0]
        last = None if self.hi is None or self.chunk_hi is None else \
            self.hi - grid.period(self.chunk_hi)[0]
        return first, last


def _one_series(item: tuple[dict[str, Any], pd.Series]) -> dict[str, int]:
    return {"series": 1, "points": len(item[1])}


class Store(FrameMethods):
    """A store of dense time series on a regular grid; see the README for the semantics.

    Build one with :func:`curvestore.create_store` or :func:`curvestore.open_store`.
    """

    def __init__(self, backend: Backend, config: StoreConfig, *, codecs: CodecLookup,
                 observer: Observer | None = None, url: str = "", codec: str | None = None,
                 read_only: bool = False, time_unit: str | None = None,
                 tables: TableReader | None = None, tracer: Tracer | None = None,
                 arrow: ArrowWriter | None = None) -> None:
        """``codecs`` finds a codec by id (the registry's ``get_codec``); ``observer``, if
        given, is told of committed writes (``observer("chunks_committed", store=...,
        changes=...)``; the plugins' ``notify``); ``tables``, if given, opens the sources
        :meth:`ingest` takes besides DataFrames (Arrow, Parquet, CSV); ``tracer``, if given,
        gets a span per operation (:mod:`curvestore.core.tracing`); ``arrow``, if given,
        makes the Arrow reader :meth:`read_arrow` returns. All are handed in: the core does
        not know where codecs, observers, file readers, tracers and Arrow come from."""
        self.backend = backend
        self.tracer = tracer
        self.tables = tables
        self.arrow = arrow
        self.config = config
        self.url = url
        self.read_only = read_only or backend.read_only
        self.codecs = codecs
        self.observer = observer
        self.codec = codec or config.codec
        self._codec = codecs(self.codec)  # fail now on an unknown or uninstalled codec
        self.grid: Grid = get_grid(config.freq_ns, config.tz, config.chunking)
        #: unit of the DatetimeIndex reads return: pandas' own default unless asked otherwise
        self.time_unit = resolve_time_unit(time_unit)
        self.grid.check_unit(self.time_unit)
        self.schema = config.keys
        backend.bind(config.keys)
        #: the optional protocols the backend implements, checked once here
        self.capabilities = Capabilities.of(backend)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.backend!r}, freq={self.config.freq!r}, tz={self.config.tz!r})"

    # -- helpers ---------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyError` if the store was opened read-only."""
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is open read-only")

    def window(self, start: Any = None, end: Any = None) -> Window:
        """The grid positions and chunks of ``[start, end]`` (both inclusive; naive bounds
        are in the store tz; None is unbounded)."""
        lo_ns = to_utc_ns(start, self.config.tz, name="start")
        hi_ns = to_utc_ns(end, self.config.tz, name="end")
        lo = None if lo_ns is None else max(self.grid.position_at_or_after(lo_ns), 0)
        hi = None if hi_ns is None else self.grid.position_at_or_before(hi_ns)
        last = int(self.grid.bounds[-1]) - 1
        clo = None if lo is None else min(lo, last)
        chi = None if hi is None else min(max(hi, 0), last)
        return Window(lo, hi, *self.grid.chunk_range(clo, chi))

    def index(self, first_pos: int, count: int) -> pd.DatetimeIndex:
        """The index of ``count`` grid points from grid position ``first_pos``, in the store
        tz and :attr:`time_unit` (what every read builds its series on)."""
        return self.grid.index(first_pos, count, self.time_unit)

    def _prepare(self, key: SeriesKey, series: Any) -> Prepared:
        ns, values = series_arrays(series)
        positions = self.grid.positions(ns)
        return Prepared(key, _chunks.split(self.grid, positions, values))

    def transact(self, keys: Sequence[SeriesKey],
                 body: Callable[[ScopedTransaction], object], *,
                 retries: int = CONFLICT_RETRIES, batch: bool = False) -> list[Change]:
        """Run ``body(tx)`` as one all-or-nothing read-merge-write over ``keys`` and return
        the changes committed (observers are told of them).

        ``body`` reads through ``tx`` and stages records with ``tx.put`` (only for ``keys``:
        another key raises :class:`InvalidKeyError`); it is re-run from the start when an
        optimistic commit loses a race, so it must not have other side effects. With
        ``batch`` (only when :attr:`capabilities` has ``batches``) the transaction also takes
        ``tx.put_batch`` and answers ``tx.live_chunks()``."""
        self.check_writable()
        begin = None
        if batch:
            backend = self.backend
            if not isinstance(backend, WritesBatches):
                raise ConfigurationError(f"{backend!r} does not write batches")
            begin = backend.begin_batch
        tracer = self.tracer
        if tracer is None:
            committed = run_transaction(self.backend, keys, body, retries=retries, begin=begin)
        else:
            last: list[ScopedTransaction] = []

            def counted(tx: ScopedTransaction) -> object:
                last[:] = [tx]  # a retry runs the body again on a new transaction
                return body(tx)

            committed = run_transaction(self.backend, keys, counted, retries=retries,
                                        begin=begin)
            tracer.count(series=len(keys), chunks=len(committed),
                         points=last[0].staged_points if last else 0,
                         bytes=last[0].staged_bytes if last else 0)
        if committed:
            self.notify("chunks_committed", store=self, changes=committed)
        return committed

    def notify(self, event: str, **details: Any) -> None:
        """Tell the observer (if any) of ``event``."""
        if self.observer is not None:
            self.observer(event, **details)

    def _apply(self, tx: Transaction, items: list[Prepared], mode: str) -> None:
        apply_writes(tx, items, mode, codec=self._codec, codecs=self.codecs,
                     dtype=self.config.dtype, schema=self.schema)

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise ConfigurationError(f"mode must be one of {list(MODES)}, got {mode!r}")

    # -- writes ----------------------------------------------------------------------------
    @traced("write")
    def write(self, key: Mapping[str, Any], series: pd.Series, mode: str = "insert") -> int:
        """Write one series; returns the number of chunks written.

        ``insert`` raises SeriesExistsError if the series has data; ``update`` merges point
        by point (new values win, old ones stay where the new are NaN); ``replace`` makes the
        series equal to ``series``. With ``insert`` or ``update``, input without any valid
        value writes nothing; with ``replace`` it deletes the series' data (the count is then
        the number of chunks tombstoned).
        """
        self._check_mode(mode)
        self.check_writable()
        item = self._prepare(self.schema.key(key), series)
        if mode != "replace" and not has_values(item):
            return 0
        return len(self.transact([item.key], lambda tx: self._apply(tx, [item], mode)))

    @traced("write_many")
    def write_many(self, mapping: Mapping[Any, pd.Series], mode: str = "insert") -> int:
        """Write several series in one all-or-nothing call.

        ``mapping`` keys are tuples of key values in the store's key order (a bare value for
        single-key stores). Every input is validated before anything is written; with
        ``insert``, one existing series fails the whole call. Returns the number of chunks
        written (tombstones included); as for :meth:`write`, a series without any valid
        value is skipped, except with ``replace``, where its data is deleted.
        """
        self._check_mode(mode)
        self.check_writable()
        if not isinstance(mapping, Mapping):
            raise InvalidDataError(f"write_many takes a mapping of key tuple -> series, "
                                   f"got {type(mapping).__name__}")
        items = []
        seen: set[SeriesKey] = set()
        for raw_key, series in mapping.items():
            key = self.schema.key_from_tuple(raw_key)
            if key in seen:
                raise InvalidDataError(f"key {raw_key!r} is given twice")
            seen.add(key)
            item = self._prepare(key, series)
            if mode == "replace" or has_values(item):
                items.append(item)
        if not items:
            return 0
        items.sort(key=lambda p: p.key)
        return len(self.transact([p.key for p in items], lambda tx: self._apply(tx, items, mode)))

    @traced("delete")
    def delete(self, key: Mapping[str, Any]) -> int:
        """Tombstone every chunk of one series; returns the number of chunks deleted."""
        self.check_writable()
        series_key = self.schema.key(key)
        return self._delete([series_key])

    @traced("delete_many")
    def delete_many(self, filter: Mapping[str, Any] | None = None) -> int:
        """Tombstone every series matching ``filter`` (a partial key; None is everything)."""
        self.check_writable()
        where = self.schema.filter(filter)
        keys = list(self.backend.list_series(where))
        return self._delete(keys) if keys else 0

    def _delete(self, keys: list[SeriesKey]) -> int:
        def body(tx: Transaction) -> None:
            for key in keys:
                tx.put([_chunks.tombstone(key, m.chunk) for m in tx.live_metas(key)])

        return len(self.transact(keys, body))

    # -- reads -----------------------------------------------------------------------------
    @traced("read")
    def read(self, key: Mapping[str, Any], start: Any = None, end: Any = None,
             drop_bounds_na: bool = True) -> pd.Series | None:
        """The series on ``[start, end]`` (both inclusive; naive bounds are in the store tz),
        in the store tz at the store freq, or None when it has no value there."""
        series_key = self.schema.key(key)
        window = self.window(start, end)
        if window.empty:
            return None
        backend = self.backend
        if self.capabilities.pieces and isinstance(backend, DecodesPieces):
            first, last = window.offsets(self.grid)
            pieces = backend.read_pieces(series_key, window.chunk_lo, window.chunk_hi,
                                         first=first, last=last)
        else:
            records = backend.read_chunks(series_key, window.chunk_lo, window.chunk_hi)
            pieces = [_chunks.decode(r, self.codecs) for r in records]
        series = _chunks.assemble(self.grid, pieces, window.lo, window.hi, drop_bounds_na,
                                  self.index)
        if series is not None and self.tracer is not None:
            self.tracer.count(series=1, points=len(series))
        return series

    def read_many(self, filter: Mapping[str, Any] | None = None, start: Any = None,
                  end: Any = None, drop_bounds_na: bool = True
                  ) -> Iterator[tuple[dict[str, Any], pd.Series]]:
        """Stream ``(key_dict, series)`` for every series matching ``filter``, ordered by key,
        holding one series in memory at a time."""
        where = self.schema.filter(filter)  # bad filters and bounds raise here, not at next()
        return traced_iterator(self, "read_many",
                               self._stream(where, self.window(start, end), drop_bounds_na),
                               _one_series)

    def _stream(self, where: dict[str, Any], window: Window, drop_bounds_na: bool
                ) -> Iterator[tuple[dict[str, Any], pd.Series]]:
        if window.empty:
            return
        for key, pieces in self.scan_pieces(where, window):
            series = _chunks.assemble(self.grid, pieces, window.lo, window.hi,
                                      drop_bounds_na, self.index)
            if series is not None:
                yield self.schema.as_dict(key), series

    def scan_pieces(self, where: Mapping[str, Any], window: Window
                    ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
        """Each series matching ``where`` (a validated filter) with its decoded pieces of
        the window's chunks, ordered by key: the backend's own ``scan_pieces`` when it
        decodes pieces itself (:class:`DecodesPieces`; it may leave out pieces outside the
        window), else its ``scan`` decoded here."""
        backend = self.backend
        lo, hi = window.chunk_lo, window.chunk_hi
        if self.capabilities.pieces and isinstance(backend, DecodesPieces):
            first, last = window.offsets(self.grid)
            return backend.scan_pieces(where, lo, hi, first=first, last=last)
        return ((key, [_chunks.decode(r, self.codecs) for r in records])
                for key, records in backend.scan(where, lo, hi))

    def keys(self, filter: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Key dicts of the series matching ``filter``, ordered."""
        where = self.schema.filter(filter)
        backend = self.backend
        names = self.schema.names
        keys: Iterable[SeriesKey] = (
            backend.summarise(where).keys
            if self.capabilities.summaries and isinstance(backend, Summarises)
            else backend.list_series(where))
        if len(names) == 1:  # a fleet's meter ids: a third of the time of zip() per key
            (name,) = names
            return [{name: k[0]} for k in keys]
        return [dict(zip(names, k, strict=True)) for k in keys]

    def max_timestamp(self, filter: Mapping[str, Any] | None = None) -> pd.Timestamp | None:
        """The latest timestamp holding a value among matching series, from metadata only."""
        where = self.schema.filter(filter)
        best: int | None = None
        backend = self.backend
        if self.capabilities.summaries and isinstance(backend, Summarises):
            summary = backend.summarise(where)
            if len(summary):
                starts = self.grid.period_starts(summary.last_chunk)
                best = int((starts + summary.last_stop).max()) - 1
            return self._position_timestamp(best)
        for _key, metas in backend.list_metas(where):
            for meta in metas:
                last = self.grid.period(meta.chunk)[0] + meta.start + meta.length - 1
                best = last if best is None else max(best, last)
        return self._position_timestamp(best)

    def _position_timestamp(self, position: int | None) -> pd.Timestamp | None:
        if position is None:
            return None
        return self.grid.timestamp(int(self.grid.ns_of_positions(position)), self.time_unit)

    def info(self) -> dict[str, Any]:
        """Configuration and totals (series, chunks, points, payload bytes)."""
        series = chunk_count = points = payload = 0
        backend = self.backend
        if self.capabilities.summaries and isinstance(backend, Summarises):
            summary = backend.summarise({})
            series = len(summary)
            chunk_count = int(summary.chunks.sum())
            points = int(summary.points.sum())
            payload = int(summary.payload_bytes.sum())
        else:
            for _key, metas in backend.list_metas({}):
                series += 1
                chunk_count += len(metas)
                points += sum(m.count for m in metas)
                payload += sum(m.size for m in metas)
        return {
            "url": self.url,
            "backend": repr(self.backend),
            "keys": dict(zip(self.schema.names, self.schema.types, strict=True)),
            "freq": self.config.freq,
            "tz": self.config.tz,
            "chunking": self.config.chunking,
            "dtype": self.config.dtype,
            "codec": self.codec,
            "time_unit": self.time_unit,
            "store_id": self.config.store_id,
            "series": series,
            "chunks": chunk_count,
            "points": points,
            "payload_bytes": payload,
            "bytes_per_point": (payload / points) if points else None,
        }

    # -- maintenance -----------------------------------------------------------------------
    @traced("compact")
    def compact(self, filter: Mapping[str, Any] | None = None, *, before: Any = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Join what appends left in pieces into whole chunks and remove unused data, on
        backends that keep fragments (:func:`curvestore.core.maintenance.compact`)."""
        from curvestore.core.maintenance import compact

        done = compact(self, filter, before=before, progress=progress)
        if self.tracer is not None:
            self.tracer.count(chunks=int(done.get("chunks", 0)),
                              bytes=int(done.get("bytes_written", 0)))
        return done

    # -- change feed -----------------------------------------------------------------------
    def changes(self, cursor: str | None = None, filter: Mapping[str, Any] | None = None,
                limit: int = 1000) -> FeedPage:
        """A page of the change feed after ``cursor`` (None: from the start), in commit order.

        Pass the returned ``cursor`` back to continue; ``has_more`` tells whether more changes
        were already committed when the page was read.
        """
        page = self.raw_changes(cursor, filter, limit)
        items = [
            FeedItem(self.schema.as_dict(c.key), c.chunk,
                     self.grid.timestamp(self.grid.period_start_ns(c.chunk), self.time_unit),
                     c.version, c.deleted)
            for c in page.items
        ]
        return FeedPage(items, page.cursor, page.has_more)

    @traced("changes")
    def raw_changes(self, cursor: str | None = None, filter: Mapping[str, Any] | None = None,
                    limit: int = 1000) -> ChangePage:
        """:meth:`changes` as the records replication exchanges (series keys as tuples)."""
        if not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive integer, got {limit!r}")
        where = self.schema.filter(filter)
        page = read_page(self.backend, self.schema, self.config.store_id, cursor, where, limit)
        if self.tracer is not None:
            self.tracer.count(changes=len(page.items))
        return page

    # -- replication state -----------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        """A value saved by a committed ``tx.set_state`` (a replication cursor), or None.

        Raises ConfigurationError when the backend keeps no state (it cannot be a
        replication target; see :attr:`capabilities`)."""
        self.require_state()
        backend = self.backend
        return backend.get_state(name) if isinstance(backend, KeepsState) else None

    def require_state(self) -> None:
        """Raise ConfigurationError unless the backend keeps state (replication targets)."""
        if not self.capabilities.state:
            raise ConfigurationError(f"{self.backend!r} cannot be a replication target: it "
                                     "keeps no state (no get_state / set_state)")
