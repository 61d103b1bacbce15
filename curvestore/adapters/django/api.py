"""holcstore's ``TimeseriesChunkStore`` classmethods, delegated to a core :class:`Store`.

Same names, signatures and outcomes as holcstore 0.6.7, with one deliberate difference:
values that are not on the store's grid (finer than or misaligned with ``STORE_FREQ``) raise
``ValueError`` (a :class:`~curvestore.errors.GridError`) instead of being silently dropped by
a reindex. Naive input is localised to ``STORE_TZ`` with a warning, as holcstore does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.db import IntegrityError, models

from curvestore.arrow import arrow_reader
from curvestore.core import chunks as _chunks
from curvestore.core.grid import Grid
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.store import Store, Window
from curvestore.errors import SeriesExistsError, StoreExistsError
from curvestore.plugins import notify
from curvestore.registry import get_codec
from curvestore.sources import open_table
from curvestore.tracing import store_tracer

if TYPE_CHECKING:  # the backend imports this module at run time (see _cs_store)
    from curvestore.adapters.django.backend import DjangoModelBackend

__all__ = ["ChunkStoreAPI"]

logger = logging.getLogger(__name__)


def _grid_index(grid: Grid, first_pos: int, count: int, unit: str) -> pd.DatetimeIndex:
    return grid.index(first_pos, count, unit)


class ChunkStoreAPI:
    """Mixin of the public classmethods; ``cls`` is a concrete chunk-store model."""

    # -- plumbing --------------------------------------------------------------------------
    @classmethod
    def _cs_backend(cls, using: str | None = None) -> DjangoModelBackend:
        return cls._backend_of(cls._cs_store(using))

    @staticmethod
    def _backend_of(store: Store) -> DjangoModelBackend:
        # _cs_store builds every store of this class over the DjangoModelBackend models.py
        # hands in, so the cast only tells the type checker what the store was built with
        return cast("DjangoModelBackend", store.backend)

    @classmethod
    def _cs_store(cls, using: str | None = None) -> Store:
        """The core store over this model (cached per class and database alias)."""
        from django.db import router

        from curvestore.adapters.django.options import model_config
        from curvestore.core.config import StoreConfig

        alias = using or router.db_for_write(cls)
        cache = cls.__dict__.get("_cs_stores")
        if cache is None:
            cache = {}
            type.__setattr__(cls, "_cs_stores", cache)
        store = cache.get(alias)
        if store is None:
            # the backend class is handed in by models.py (it needs the ORM's models, which
            # need this mixin): this module never imports the backend
            backend = cls._cs_backend_class(cls, using=alias)  # type: ignore[attr-defined]
            manifest = backend.read_manifest()
            if manifest is None:
                config = model_config(cls)  # type: ignore[arg-type]
                try:
                    backend.create_manifest(config.manifest())
                except StoreExistsError:
                    config = StoreConfig.from_manifest(backend.read_manifest() or {})
            else:
                config = StoreConfig.from_manifest(manifest)
                config.check_compatible(keys=backend.model_config.keys,
                                        freq=backend.model_config.freq,
                                        tz=backend.model_config.tz,
                                        chunking=backend.model_config.chunking)
            # holcstore-format rows are re-encoded from the values anyway: the core's codec
            # would only be decoded again, so it stores them raw ("none") in between
            codec = None if backend.framed else "none"
            store = cache[alias] = Store(backend, config, codec=codec, codecs=get_codec,
                                         observer=notify, tables=open_table,
                                         arrow=arrow_reader,
                                         tracer=store_tracer(),
                                         time_unit=cls.TIME_UNIT)  # type: ignore[attr-defined]
        return store

    @classmethod
    def _index(cls, store: Store, first_pos: int, count: int) -> pd.DatetimeIndex:
        """The store's index of ``count`` points from ``first_pos`` (``freq`` set, as
        holcstore returns it), from a per-model LRU cache of ``CACHED_INDEX_SIZE`` indexes
        (holcstore's setting). Each caller gets its own shallow copy, so renaming one
        returned index never renames another."""
        cache = cls.__dict__.get("_cs_index_cache")
        if cache is None:
            cache = lru_cache(maxsize=cls.CACHED_INDEX_SIZE)(_grid_index)  # type: ignore[attr-defined]
            type.__setattr__(cls, "_cs_index_cache", cache)
        return cache(store.grid, first_pos, count, store.time_unit).copy()

    @classmethod
    def _assemble(cls, store: Store, pieces: list[_chunks.Piece], lo_pos: int | None,
                  hi_pos: int | None, drop_bounds_na: bool) -> pd.Series | None:
        """The core's ``chunks.assemble``, with the index from :meth:`_index` instead of a
        fresh one whose ``freq`` would then be validated. None when the window holds no
        value (see :meth:`_nan_span` for what the reads return then)."""
        return _chunks.assemble(store.grid, pieces, lo_pos, hi_pos, drop_bounds_na,
                                lambda first, count: cls._index(store, first, count))

    @classmethod
    def _nan_span(cls, store: Store, first_chunk: int, last_chunk: int, lo_pos: int | None,
                  hi_pos: int | None) -> pd.Series | None:
        """NaN over the window's part within the periods of chunks ``[first_chunk,
        last_chunk]`` (a series' first and last live rows), None when the window misses them.

        That is holcstore's answer for a window inside a series that holds no value: its rows
        are whole periods, one for every period from the series' first to its last (NaN
        where there is no value), cut to the window, and trimming the NaN bounds of an
        all-NaN series leaves it as it is. This adapter does not store periods without any
        value, so the series' span stands for the rows holcstore would have."""
        grid = store.grid
        first = grid.period(first_chunk)[0]
        last_start, last_len = grid.period(last_chunk)
        last = last_start + last_len
        if lo_pos is not None:
            first = max(first, lo_pos)
        if hi_pos is not None:
            last = min(last, hi_pos + 1)
        if last <= first:
            return None
        return pd.Series(np.full(last - first, np.nan),
                         index=cls._index(store, first, last - first), copy=False)

    @classmethod
    def _span_window(cls, store: Store, key: Any, lo_pos: int | None, hi_pos: int | None
                     ) -> pd.Series | None:
        """:meth:`_nan_span` over one series' span (one aggregate query), None when the
        series has no live row."""
        backend = cls._backend_of(store)
        span = backend._qs().filter(**backend.key_dict(key), is_deleted=False).aggregate(
            first=models.Min("chunk_index"), last=models.Max("chunk_index"))
        if span["first"] is None:
            return None
        return cls._nan_span(store, span["first"], span["last"], lo_pos, hi_pos)

    @classmethod
    def _key_order(cls) -> tuple[str, ...]:
        from curvestore.adapters.django.options import key_schema

        return key_schema(cls).names  # type: ignore[arg-type]

    # -- holcstore helpers -----------------------------------------------------------------
    @classmethod
    def get_model_keys(cls, allow_id: bool = False) -> set[str]:
        """The key field names (a set, as holcstore returns), plus ``id`` if asked."""
        keys = set(cls._key_order())
        return {"id", *keys} if allow_id else keys

    @classmethod
    def _ensure_all_attrs_specified(cls, attrs: Mapping[str, Any],
                                    bonus_keys: list[str] | None = None) -> None:
        expected = {*cls.get_model_keys(), *(bonus_keys or [])}
        if set(attrs) != expected:
            raise ValueError(f"Trying to set or get partial attributes {dict(attrs)} while full "
                             f"attributes list is {sorted(expected)}")

    @classmethod
    def _check_attrs(cls, attrs: Mapping[str, Any], allow_id: bool = True) -> None:
        bad = {k.split("__")[0] for k in attrs} - cls.get_model_keys(allow_id=allow_id)
        if bad:
            raise ValueError(f"Unknown attribute(s) {bad}")

    @classmethod
    def _normalize_input(cls, serie: pd.Series) -> pd.Series | None:
        """holcstore's checks: None for empty or all-NaN input, ValueError for a
        non-datetime index, naive input localised to STORE_TZ with a warning."""
        if serie.empty:
            return None
        if not isinstance(serie.index, pd.DatetimeIndex):
            raise ValueError("Index must be a DatetimeIndex.")
        if serie.isnull().all():
            return None
        if serie.index.tz is None:
            logger.warning("Saving serie without tz may lead to inconsistent results: "
                           "localized to STORE_TZ %s", cls.STORE_TZ)  # type: ignore[attr-defined]
            serie = serie.tz_localize(cls.STORE_TZ)  # type: ignore[attr-defined]
        return serie

    # -- writes ----------------------------------------------------------------------------
    @classmethod
    def set_ts(cls, attrs: dict, serie: pd.Series, update: bool = False, replace: bool = False,
               bulk_create_batch_size: int = 200) -> None:
        """Write one series: insert (IntegrityError if it exists), ``update`` (new values win,
        old kept where new are NaN) or ``replace``. All key fields are required."""
        if update and replace:
            raise ValueError("update and replace are mutually exclusive")
        if not (update or replace) and cls.ALLOW_CLIENT_SERVER_SYNC:  # type: ignore[attr-defined]
            raise ValueError(f"Trying to use set_ts with model {cls.__name__} without update "
                             "or replace option while ALLOW_CLIENT_SERVER_SYNC=True.")
        cls._ensure_all_attrs_specified(attrs)
        serie = cls._normalize_input(serie)
        if serie is None:
            return
        mode = "update" if update else "replace" if replace else "insert"
        try:
            cls._cs_store().write(attrs, serie, mode=mode)
        except SeriesExistsError as exc:
            raise IntegrityError(str(exc)) from exc

    @classmethod
    def set_many_ts(cls, mapping: dict[tuple, pd.Series], keys: tuple[str, ...],
                    bulk_create_batch_size: int = 200,
                    kwargs_bulk_create: dict | None = None) -> None:
        """Insert many series in one all-or-nothing call; IntegrityError if any exists.

        ``kwargs_bulk_create={'ignore_conflicts': True}`` skips the series that exist."""
        if cls.ALLOW_CLIENT_SERVER_SYNC:  # type: ignore[attr-defined]
            raise ValueError(f"Trying to use set_many_ts with model {cls.__name__} while "
                             "ALLOW_CLIENT_SERVER_SYNC=True.")
        extra = dict(kwargs_bulk_create or {})
        ignore = bool(extra.pop("ignore_conflicts", False))
        if extra:
            raise ValueError(f"unsupported kwargs_bulk_create {sorted(extra)}")
        order = cls._key_order()
        store = cls._cs_store()
        batch: dict[tuple, pd.Series] = {}
        for ktuple, serie in mapping.items():
            attrs = dict(zip(keys, ktuple, strict=True))
            cls._ensure_all_attrs_specified(attrs)
            serie = cls._normalize_input(serie)
            if serie is None:
                continue
            if ignore and store.read(attrs, end=None) is not None:
                continue
            batch[tuple(attrs[k] for k in order)] = serie
        try:
            store.write_many(batch, mode="insert")
        except SeriesExistsError as exc:
            raise IntegrityError(str(exc)) from exc

    # -- reads -----------------------------------------------------------------------------
    @classmethod
    def _bound(cls, value: Any) -> Any:
        if isinstance(value, str):
            return pd.Timestamp(value, tz=cls.STORE_TZ)  # type: ignore[attr-defined]
        if value is None or pd.isna(value):
            return None
        return value

    @classmethod
    def get_ts(cls, attrs: dict, start: Any = None, end: Any = None,
               drop_bounds_na: bool = True) -> pd.Series | None:
        """The series (in STORE_TZ at STORE_FREQ) on ``[start, end]``, or None if absent.

        As in holcstore, a window inside the series that holds no value gives NaN over the
        window (not None); None means the series has no chunk there (or does not exist)."""
        cls._ensure_all_attrs_specified(attrs)
        store = cls._cs_store()
        # Store.read (the backend's decoded pieces, see DjangoModelBackend.read_pieces), with
        # the cached index and holcstore's answer for a window without a value
        key = store.schema.key(attrs)
        window = store.window(cls._bound(start), cls._bound(end))
        if window.empty:
            return None
        backend = cls._backend_of(store)
        pieces = backend.read_pieces(key, window.chunk_lo, window.chunk_hi)
        series = cls._assemble(store, pieces, window.lo, window.hi, drop_bounds_na)
        if series is None:
            series = cls._span_window(store, key, window.lo, window.hi)
        return series

    @classmethod
    def yield_many_ts(cls, filters: dict, start: Any = None, end: Any = None,
                      qs_iterator_chunk_size: int = 200, drop_bounds_na: bool = True
                      ) -> Iterator[tuple[pd.Series, dict]]:
        """Stream ``(serie, key_dict)`` for each series matching ``filters`` (key fields,
        with Django lookups such as ``version__in``), ordered by key.

        As in holcstore (and :meth:`get_ts`), a series whose window holds no value but meets
        its chunks is yielded as NaN over that part of the window; a series none of whose
        chunks meets the window is not yielded."""
        cls._check_attrs(filters)  # bad filters and bounds raise here, not at next()
        store = cls._cs_store()
        window = store.window(cls._bound(start), cls._bound(end))
        return cls._stream(store, filters, window, qs_iterator_chunk_size, drop_bounds_na)

    @classmethod
    def _stream(cls, store: Store, filters: dict, window: Window, chunk_size: int,
                drop_bounds_na: bool) -> Iterator[tuple[pd.Series, dict]]:
        """The series with a value in the window (``scan_pieces``), merged in key order with
        those whose span meets the window without a value there (NaN, as holcstore yields
        them; see :meth:`_nan_span`). The spans come from one grouped query up front."""
        if window.empty:
            return
        lo, hi, clo, chi = window.lo, window.hi, window.chunk_lo, window.chunk_hi
        names = cls._key_order()
        backend = cls._backend_of(store)
        spans = backend.chunk_spans(filters, clo, chi)
        # both lists follow the database's ORDER BY on the key fields, so a series' place
        # among the spans says which series without a value come before it
        position = {key: i for i, (key, _, _) in enumerate(spans)}
        done = 0

        def nan_until(stop: int) -> Iterator[tuple[pd.Series, dict]]:
            for key, first, last in spans[done:stop]:
                series = cls._nan_span(store, first, last, lo, hi)
                if series is not None:
                    yield series, dict(zip(names, key, strict=True))

        for key, pieces in backend.scan_pieces(filters, clo, chi, chunk_size=chunk_size):
            at = position.get(key)  # None: a series written since the spans were read
            if at is not None and at >= done:
                yield from nan_until(at)
                done = at + 1
            series = cls._assemble(store, pieces, lo, hi, drop_bounds_na)
            if series is None and at is not None:
                series = cls._nan_span(store, spans[at][1], spans[at][2], lo, hi)
            if series is not None:
                yield series, dict(zip(names, key, strict=True))
        yield from nan_until(len(spans))

    @classmethod
    def _max_of(cls, records: list[Any]) -> pd.Timestamp | None:
        store = cls._cs_store()
        best = None
        for r in records:
            last = store.grid.period(r.meta.chunk)[0] + r.meta.start + r.meta.length - 1
            best = last if best is None else max(best, last)
        if best is None:
            return None
        return store.grid.timestamp(int(store.grid.ns_of_positions(best)), store.time_unit)

    @classmethod
    def get_max_horodate(cls, filters: dict) -> pd.Timestamp | None:
        """The last timestamp holding a value among the series matching ``filters``."""
        cls._check_attrs(filters)
        backend = cls._cs_backend()
        qs = cls._default_manager.filter(**filters, is_deleted=False)  # type: ignore[attr-defined]
        top = qs.aggregate(m=models.Max("chunk_index"))["m"]
        while top is not None:
            records = [r for _, rs in backend.scan(filters, top, top) for r in rs]
            if records:
                return cls._max_of(records)
            top = qs.filter(chunk_index__lt=top).aggregate(m=models.Max("chunk_index"))["m"]
        return None

    @classmethod
    def get_many_max_horodate(cls, filters: dict, distinct_on: tuple[str, ...] = ("id",)
                              ) -> dict[tuple, pd.Timestamp]:
        """``{values of distinct_on: last timestamp}`` over the newest chunk of each group
        (holcstore's semantics; portable, without PostgreSQL's DISTINCT ON)."""
        cls._check_attrs(filters)
        backend = cls._cs_backend()
        names = cls._key_order()
        qs = cls._default_manager.filter(**filters, is_deleted=False).order_by(  # type: ignore[attr-defined]
            *distinct_on, "-chunk_index")
        out: dict[tuple, pd.Timestamp] = {}
        for obj in qs.iterator():
            group = tuple(getattr(obj, f) for f in distinct_on)
            if group in out:
                continue
            key = tuple(getattr(obj, n) for n in names)
            record = backend._record(key, obj.chunk_index, obj.start_ts, obj.dtype, obj.data,
                                     obj.updated_at, obj.row_version)
            if record is not None:
                out[group] = cls._max_of([record])
        return out

    # -- sync helpers (holcstore's) --------------------------------------------------------
    @classmethod
    def last_updated_at(cls, filters: dict | None = None) -> Any:
        """The newest ``updated_at``, or 2000-01-01 00:00 Europe/Paris for an empty table."""
        row = cls._default_manager.filter(**(filters or {})).order_by(  # type: ignore[attr-defined]
            "-updated_at").first()
        if row is None:
            return dt.datetime(2000, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
        return row.updated_at

    @classmethod
    def updates_queryset(cls, since: Any, filters: dict | None = None) -> models.QuerySet:
        """Chunks with ``updated_at >= since``, ordered by ``(updated_at, pk)``, as dicts."""
        return (cls._default_manager.filter(**(filters or {}), updated_at__gte=since)  # type: ignore[attr-defined]
                .order_by("updated_at", "pk")
                .values(*cls.get_model_keys(), "chunk_index", "dtype", "start_ts",
                        "updated_at", "is_deleted"))

    @classmethod
    def list_updates(cls, since: Any, filters: dict | None = None, limit: int | None = None,
                     offset: int | None = None) -> list[dict]:
        """:meth:`updates_queryset` as holcstore's list of dicts (``attrs``, ``chunk_index``,
        ``dtype``, ``start_ts``, ``updated_at``, ``is_deleted``)."""
        qs = cls.updates_queryset(since, filters)
        if offset:
            qs = qs[offset:]
        if limit is not None:
            qs = qs[:limit]
        keys = cls.get_model_keys()
        return [{"attrs": {k: row[k] for k in keys}, "chunk_index": row["chunk_index"],
                 "dtype": row["dtype"], "start_ts": row["start_ts"],
                 "updated_at": row["updated_at"], "is_deleted": row["is_deleted"]}
                for row in qs]

    @classmethod
    def export_chunks(cls, spec: list[dict]) -> list[tuple]:
        """``[(blob, attrs + chunk_index, meta)]`` for ``[{"attrs", "chunk_index"}]``: blobs
        as stored, never decoded."""
        out = []
        for item in spec:
            row = cls._default_manager.get(**item["attrs"], chunk_index=item["chunk_index"])  # type: ignore[attr-defined]
            attrs = {**item["attrs"], "chunk_index": row.chunk_index}
            meta = {"dtype": row.dtype, "start_ts": row.start_ts, "is_deleted": row.is_deleted,
                    "updated_at": row.updated_at}
            out.append((bytes(row.data), attrs, meta))
        return out

    @classmethod
    def import_chunks(cls, payload: list[tuple]) -> None:
        """Write what :meth:`export_chunks` returned, atomically (one bad item: nothing)."""
        if not payload:
            return
        from curvestore.adapters.django.rows import Row, RowRecord, to_ns

        names = cls._key_order()
        records = []
        now = pd.Timestamp.now(tz="UTC").value
        for blob, attrs, meta in payload:
            cls._ensure_all_attrs_specified(attrs, bonus_keys=["chunk_index"])
            updated = meta.get("updated_at")
            records.append(RowRecord.of(tuple(attrs[n] for n in names), int(attrs["chunk_index"]),
                                        Row(bytes(blob), meta.get("dtype", "float64"),
                                            to_ns(meta["start_ts"]),
                                            now if updated is None else to_ns(updated),
                                            bool(meta.get("is_deleted", False)))))
        # the rows are stored as they are (see RowRecord), in one transaction
        cls._cs_store().transact(sorted({r.key for r in records}),
                                 lambda tx: tx.put(records))

    @classmethod
    def _cs_tombstone(cls, qs: models.QuerySet) -> int:
        """Tombstone the live chunks ``qs`` matches in one transaction; their number
        (``delete(keep_tracking=True)``)."""
        names = cls._key_order()
        n = len(names)
        refs = list(qs.filter(is_deleted=False).values_list(*names, "chunk_index"))
        by_key: dict[SeriesKey, list[int]] = {}
        for row in refs:
            by_key.setdefault(tuple(row[:n]), []).append(row[n])
        if by_key:
            tombstones = [ChunkRecord(k, ChunkMeta(chunk=c, deleted=True))
                          for k, chunks in by_key.items() for c in chunks]
            cls._cs_store(qs.db).transact(sorted(by_key), lambda tx: tx.put(tombstones))
        return len(refs)
