"""``DjangoModelBackend``: a chunk-store model class as a curvestore :class:`Backend`.

One row of the model is one chunk: the key fields, ``chunk_index`` (``year`` or
``year * 12 + month - 1``, the same numbering as the core and holcstore), ``start_ts``,
``dtype``, ``data`` (see :mod:`.compat` for both blob formats), ``updated_at``, ``is_deleted``
(a tombstone) and ``row_version`` (the core's chunk version; NULL on rows holcstore wrote).

Writes run in ``transaction.atomic`` with ``select_for_update`` on the rows the core reads;
the commit then locks the store's manifest row, takes versions from its counter, writes the
chunk rows and appends the change feed. That lock is the last one taken and is held until
commit, so versions follow commit order on PostgreSQL too and a feed reader never skips a
late commit. Two writers creating the same new chunk meet on the unique constraint: the loser
gets :class:`ConflictError` and the core re-runs its read-merge-write.

holcstore rows are decoded on read and presented to the core as trimmed ``"none"``-codec
records (checksums computed on read: holcstore's format carries none).

On PostgreSQL with psycopg 3, the same rows, locks and commit order are implemented by
statements on Django's own connection instead of the ORM (see :mod:`._postgres`): binary
reads, binary COPY of new chunks while the core prepares the next series, and small commits
in one pipelined round trip.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from itertools import groupby
from typing import Any, TypeVar

import numpy as np
from django.db import IntegrityError as DjangoIntegrityError
from django.db import OperationalError, models, router, transaction

from curvestore.adapters.django import compat
from curvestore.adapters.django._postgres import NewChunks, Rel, dt_of, pg_paths
from curvestore.adapters.django.bookkeeping import ChunkChange, StoreManifest, SyncState
from curvestore.adapters.django.options import key_schema, model_config
from curvestore.adapters.django.rows import Row, to_datetime, to_ns
from curvestore.core import chunks as _chunks
from curvestore.core.backend import Backend, Transaction, stale_state
from curvestore.core.config import StoreConfig
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.grid import get_grid
from curvestore.core.records import (
    Change,
    ChangePage,
    ChunkMeta,
    ChunkRecord,
    SeriesKey,
    checksum,
)
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    StoreExistsError,
)
from curvestore.registry import get_codec

__all__ = ["DjangoModelBackend"]

T = TypeVar("T")

_FIELDS = ("chunk_index", "start_ts", "dtype", "data", "updated_at", "row_version")
_OR_BATCH = 200




def _ensure_django() -> None:
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()


class _DjangoTransaction(Transaction):
    def __init__(self, backend: DjangoModelBackend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.staged: dict[tuple[SeriesKey, int], Row] = {}
        self.states: dict[str, tuple[str, str | None]] = {}
        self.committed = []
        # What the reads saw: a chunk inside a read range without a row was merged as new,
        # and the row locks cannot cover a row that does not exist yet (see commit)
        self.read_ranges: dict[SeriesKey, list[tuple[int | None, int | None]]] = {}
        self.seen: set[tuple[SeriesKey, int]] = set()
        self.ids: dict[tuple[SeriesKey, int], int] = {}  # primary keys of the rows seen
        # PostgreSQL: new chunks COPYed as soon as they are put (see put), with their versions
        self.stream: NewChunks | None = None
        self.streamed: dict[tuple[SeriesKey, int], int] = {}
        self._fresh: list[tuple[SeriesKey, int]] = []  # put since the last streaming
        self.again: set[tuple[SeriesKey, int]] = set()  # streamed, then put again

    def _locked(self, key: SeriesKey, lo: int | None, hi: int | None) -> list[ChunkRecord]:
        b = self.backend
        if b._pg is not None:
            if self.stream is not None:
                self.stream.finish()  # the connection is needed for the read
            pg_rows = b._pg.read_locked(key, lo, hi)
            self.read_ranges.setdefault(key, []).append((lo, hi))
            self.ids.update(((key, row[2]), row[0]) for row in pg_rows)
            self.seen.update((key, row[2]) for row in pg_rows)
            live = [b._record(key, *row[2:]) for row in pg_rows if not row[1]]
            return [r for r in live if r is not None]
        qs = b._range(b._qs().select_for_update().filter(**b.key_dict(key)), lo, hi)
        rows = list(qs.order_by("chunk_index").values_list("is_deleted", *_FIELDS))
        self.read_ranges.setdefault(key, []).append((lo, hi))
        self.seen.update((key, row[1]) for row in rows)
        out = [b._record(key, *row[1:]) for row in rows if not row[0]]
        return [r for r in out if r is not None]

    def _read_as_absent(self, key: SeriesKey, chunk: int) -> bool:
        return (key, chunk) not in self.seen and any(
            (lo is None or lo <= chunk) and (hi is None or chunk <= hi)
            for lo, hi in self.read_ranges.get(key, ()))

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return [r.meta for r in self._locked(key, None, None)]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self._locked(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
            ref = (record.key, record.chunk)
            self.staged[ref] = self.backend._row(record, now)
            if ref in self.streamed:
                self.again.add(ref)
            else:
                self._fresh.append(ref)
        if self.backend._pg is not None:
            self._stream_new()

    def _stream_new(self) -> None:
        """COPY the chunks just put that the reads found absent, right away, so that the
        server stores them while the core prepares the next series (write_many).

        Only once every series of the transaction has been read (and locked): the core
        takes no row lock after that, so holding the manifest lock early (streaming does,
        for the versions) adds no lock-order inversion with another writer. (A later read
        would end the COPY first; a deadlock PostgreSQL then detected would be retried as a
        conflict.) A chunk put again after being streamed is rewritten at commit, keeping its
        version."""
        fresh, self._fresh = self._fresh, []
        if not self.keys <= self.read_ranges.keys():
            return
        b = self.backend
        for ref in fresh:
            if not self._read_as_absent(*ref):
                continue
            if self.stream is None:
                self.stream = b._pg.open_stream(b.table, b._manifest_json())  # type: ignore[union-attr]
            elif not self.stream.open:
                return  # ended for a read: the rest waits for the commit
            version = self.stream.base + len(self.streamed) + 1
            row = self.staged[ref]
            self.stream.write((*ref[0], ref[1], dt_of(row.start_ns), row.dtype,
                               dt_of(row.updated_ns), row.deleted, row.data, version))
            self.streamed[ref] = version

    def abort(self, exc: BaseException) -> None:
        if self.stream is not None:
            self.stream.abort(exc)

    def put_rows(self, rows: Iterable[tuple[SeriesKey, int, Row]]) -> None:
        """Stage rows already in the table's format (holcstore's ``import_chunks``)."""
        for key, chunk, row in rows:
            if key not in self.keys:
                raise ValueError(f"series {key} is not part of this transaction")
            self.staged[(key, chunk)] = row
            if (key, chunk) in self.streamed:
                self.again.add((key, chunk))

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.states[name] = (value, expected)

    def commit(self) -> list[Change]:
        if not self.staged and not self.states:
            return []
        b = self.backend
        if b._pg is not None and self.staged:
            return self._commit_pg()
        manifest = b._lock_manifest()
        version = manifest.last_version
        existing = b._existing_ids(sorted(self.staged))
        # Commits serialise on the manifest lock, so this sees every chunk committed before:
        # one created since this transaction read its range without it must not be
        # overwritten by a merge that never saw its values (the core re-runs the merge)
        raced = [ref for ref in existing if self._read_as_absent(*ref)]
        if raced:
            raise ConflictError(f"a concurrent writer created chunk(s) {raced[:3]}")
        to_create, to_update, changes, log = [], [], [], []
        for (key, chunk), row in sorted(self.staged.items()):
            version += 1
            obj = b.model(**b.key_dict(key), chunk_index=chunk, data=row.data, dtype=row.dtype,
                          start_ts=to_datetime(row.start_ns),
                          updated_at=to_datetime(row.updated_ns), is_deleted=row.deleted,
                          row_version=version)
            pk = existing.get((key, chunk))
            if pk is None:
                to_create.append(obj)
            else:
                obj.pk = pk
                to_update.append(obj)
            changes.append(Change(key, chunk, version, row.deleted))
            log.append(ChunkChange(store=b.table, version=version, key=json.dumps(list(key)),
                                   chunk=chunk, deleted=row.deleted))
        manager = b.model._base_manager.db_manager(b.using)
        if to_create:
            manager.bulk_create(to_create, batch_size=500)
        if to_update:
            manager.bulk_update(to_update, ["data", "dtype", "start_ts", "updated_at",
                                            "is_deleted", "row_version"], batch_size=500)
        ChunkChange.objects.using(b.using).bulk_create(log, batch_size=1000)
        if version != manifest.last_version:
            manifest.last_version = version
            manifest.save(using=b.using, update_fields=["last_version"])
        self._save_states()
        return changes

    def _save_states(self) -> None:
        """Compare-and-set each state; called with the manifest row locked, so commits into
        this store are serialised and the comparison sees every earlier one."""
        b = self.backend
        for name, (value, expected) in self.states.items():
            if b.get_state(name) != expected:
                raise stale_state(name)
            SyncState.objects.using(b.using).update_or_create(
                store=b.table, name=name, defaults={"value": value})

    def _commit_pg(self) -> list[Change]:
        """``commit`` on PostgreSQL: the same rows and locks in a few statements.

        The manifest row (created if a flush removed it) is locked by the statement that
        takes the versions. A chunk the transaction read as absent is INSERTed, so one
        created since by a concurrent writer fails on the unique constraint (ConflictError:
        the core re-runs the merge) instead of being overwritten; chunks the reads did not
        cover are looked up in one query."""
        b = self.backend
        pg = b._pg
        assert pg is not None
        changes: list[Change] = []
        log: list[tuple] = []
        one_trip = False

        def logged(ref: tuple[SeriesKey, int], version: int, row: Row) -> None:
            changes.append(Change(ref[0], ref[1], version, row.deleted))
            log.append((b.table, version, json.dumps(list(ref[0])), ref[1], row.deleted))

        if self.stream is not None:
            self.stream.finish()  # a concurrent writer's duplicate chunk fails here
            for ref, version in sorted(self.streamed.items(), key=lambda item: item[1]):
                logged(ref, version, self.staged[ref])
            items = sorted((ref, row) for ref, row in self.staged.items()
                           if ref not in self.streamed)
            version = self.stream.base + len(self.streamed)
        else:
            items = sorted(self.staged.items())
            manifest = b._manifest_json()
            # a small commit takes its versions in the pipeline of its writes (Rel)
            one_trip = pg.small(len(items), len(items))
            version = 0 if one_trip else pg.begin_commit(b.table, len(items),
                                                         manifest) - len(items)
        # streamed chunks put again since (rewritten, keeping their versions), then the rest
        again = sorted(self.again)
        unknown = [ref for ref, _ in items
                   if ref not in self.ids and not self._read_as_absent(*ref)] + again
        existing = {**self.ids, **(b._existing_ids(unknown) if unknown else {})}
        inserts, updates = [], []
        for ref in again:
            row = self.staged[ref]
            updates.append((existing[ref], dt_of(row.start_ns), row.dtype, dt_of(row.updated_ns),
                            row.deleted, row.data, self.streamed[ref]))
        for i, ((key, chunk), row) in enumerate(items):
            version += 1
            if one_trip:
                version = Rel(len(items) - i - 1)
            start, updated = dt_of(row.start_ns), dt_of(row.updated_ns)
            pk = existing.get((key, chunk))
            if pk is None:
                inserts.append((*key, chunk, start, row.dtype, updated, row.deleted, row.data,
                                version))
            else:
                updates.append((pk, start, row.dtype, updated, row.deleted, row.data, version))
            logged((key, chunk), version, row)
        if one_trip:
            top = pg.write(inserts, updates, log, begin=(len(items), manifest))
            assert top is not None
            changes = [Change(c.key, c.chunk, top - c.version, c.deleted) for c in changes]
        else:
            pg.write(inserts, updates, log, top=version if self.stream is not None else None)
        self._save_states()
        return changes


class DjangoModelBackend(Backend):
    """The rows of a ``TimeseriesChunkStore`` subclass (``django://app_label.Model``)."""

    schemes = ("django",)

    def __init__(self, model: type[models.Model], *, using: str | None = None,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.model = model
        self.using = using or router.db_for_write(model)
        self.table = model._meta.db_table
        self.model_config = model_config(model)
        self.names = key_schema(model).names
        self.framed = bool(getattr(model, "CURVESTORE_FORMAT", False))
        cfg = self.model_config
        self.grid = get_grid(cfg.freq_ns, cfg.tz, cfg.chunking)
        self.freq_ns = cfg.freq_ns
        self._pg = pg_paths(model, self.using, self.names)  # None: the ORM paths

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> DjangoModelBackend:
        """``django://app_label.ModelName[?using=alias]``; sets Django up if needed
        (``DJANGO_SETTINGS_MODULE``)."""
        url.reject_unknown_options(frozenset({"using"}))
        label = (url.netloc + url.path).strip("/")
        _ensure_django()
        from django.apps import apps

        from curvestore.adapters.django.api import ChunkStoreAPI

        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as exc:
            raise ConfigurationError(f"django://{label}: no such model ({exc})") from exc
        if not issubclass(model, ChunkStoreAPI):
            raise ConfigurationError(f"django://{label} is not a TimeseriesChunkStore")
        return cls(model, using=url.options.get("using"), read_only=read_only)

    def __repr__(self) -> str:
        return f"DjangoModelBackend({self.model._meta.label}, using={self.using!r})"

    # -- helpers ---------------------------------------------------------------------------
    def key_dict(self, key: SeriesKey) -> dict[str, Any]:
        return dict(zip(self.names, key, strict=True))

    def _qs(self) -> models.QuerySet:
        return self.model._base_manager.using(self.using)

    @staticmethod
    def _range(qs: models.QuerySet, lo: int | None, hi: int | None) -> models.QuerySet:
        if lo is not None:
            qs = qs.filter(chunk_index__gte=lo)
        if hi is not None:
            qs = qs.filter(chunk_index__lte=hi)
        return qs

    def _record(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str, data: Any,
                updated_at: Any, version: int | None) -> ChunkRecord | None:
        """A row as the core sees it; None for a live row without any value."""
        data = bytes(data)
        updated = to_ns(updated_at)
        if compat.is_framed(data):
            f = compat.unpack_frame(data)
            meta = ChunkMeta(chunk=chunk, start=f.start, length=f.length, count=f.count,
                             codec=f.codec, dtype=dtype or "float64", checksum=f.checksum,
                             size=len(f.payload), version=version or 0, updated_at=updated)
            return ChunkRecord(key, meta, f.payload)
        placed = self._holc_values(key, chunk, start_ts, dtype, data)
        if placed is None:
            return None
        start, values = placed
        valid = ~np.isnan(values)
        if not valid.any():
            return None
        first = int(valid.argmax())
        last = len(values) - int(valid[::-1].argmax())
        payload = np.ascontiguousarray(values[first:last], dtype="<f8").tobytes()
        meta = ChunkMeta(chunk=chunk, start=start + first, length=last - first,
                         count=int(valid.sum()), codec="none", dtype="float64",
                         checksum=checksum(payload), size=len(payload),
                         version=version or 0, updated_at=updated)
        return ChunkRecord(key, meta, payload)

    def _piece(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str, data: Any
               ) -> _chunks.Piece | None:
        """A row's values on the grid (None without any value): ``_record`` then the core's
        decode, except that a holcstore row's values are used as they are, NaN included
        (assembling places them on the grid and trims the NaN bounds the same way)."""
        data = bytes(data)
        if compat.is_framed(data):
            record = self._record(key, chunk, start_ts, dtype, data, 0, None)
            return None if record is None else _chunks.decode(record, get_codec)
        placed = self._holc_values(key, chunk, start_ts, dtype, data)
        if placed is None or np.isnan(placed[1]).all():
            return None
        return _chunks.Piece(chunk, *placed)

    def _holc_values(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str,
                     data: bytes) -> tuple[int, np.ndarray] | None:
        """A holcstore row's values cut to its chunk's period, with the offset of the first
        in the period; None when none falls inside it. IntegrityError off the grid."""
        values = compat.holc_decode(data, dtype)
        _, period_len = self.grid.period(chunk)
        offset_ns = to_ns(start_ts) - self.grid.period_start_ns(chunk)
        if offset_ns % self.freq_ns:
            raise IntegrityError(f"chunk {chunk} of {key}: start_ts {start_ts} is not on the "
                                 f"store's {self.model_config.freq} grid")
        offset = offset_ns // self.freq_ns
        a, b = max(0, -offset), min(len(values), period_len - offset)
        return None if b <= a else (offset + a, values[a:b])

    def _row(self, record: ChunkRecord, now: int) -> Row:
        """A core record in the table's format (holcstore's unless ``CURVESTORE_FORMAT``)."""
        meta = record.meta
        period_ns = self.grid.period_start_ns(meta.chunk)
        updated = meta.updated_at or now
        if meta.deleted:
            return Row(compat.HOLC_EMPTY, "float64", period_ns, updated, True)
        if self.framed:
            data = compat.pack_frame(meta.codec, meta.start, meta.length, meta.count,
                                     meta.checksum, record.payload)
            return Row(data, meta.dtype, period_ns + meta.start * self.freq_ns, updated, False)
        values = get_codec(meta.codec).decode(record.payload, dtype=np.dtype(meta.dtype),
                                              length=meta.length)
        _, period_len = self.grid.period(meta.chunk)
        full = np.full(period_len, np.nan)
        full[meta.start:meta.start + meta.length] = values
        return Row(compat.holc_encode(full), "float64", period_ns, updated, False)

    def _keys_q(self, keys: Iterable[SeriesKey]) -> models.Q:
        q = models.Q()
        for key in keys:
            q |= models.Q(**self.key_dict(key))
        return q

    def _existing_ids(self, refs: list[tuple[SeriesKey, int]]) -> dict[tuple[SeriesKey, int], int]:
        keys = sorted({k for k, _ in refs})
        chunks = sorted({c for _, c in refs})
        out: dict[tuple[SeriesKey, int], int] = {}
        n = len(self.names)
        for i in range(0, len(keys), _OR_BATCH):
            qs = self._qs().filter(self._keys_q(keys[i:i + _OR_BATCH]), chunk_index__in=chunks)
            for row in qs.values_list(*self.names, "chunk_index", "pk"):
                out[(tuple(row[:n]), row[n])] = row[n + 1]
        return out

    def _manifest_json(self) -> str:
        """The manifest recorded if a commit finds none (a new store id each time)."""
        return json.dumps({**self.model_config.manifest(), "store_id": uuid.uuid4().hex})

    def _manifest_row(self) -> StoreManifest | None:
        return StoreManifest.objects.using(self.using).filter(store=self.table).first()

    def _lock_manifest(self) -> StoreManifest:
        rows = StoreManifest.objects.using(self.using).select_for_update()
        row = rows.filter(store=self.table).first()
        if row is None:  # created lazily (the ORM API), e.g. after a test flush
            # a concurrent writer may create it first: then its row is the one to lock
            with suppress(DjangoIntegrityError), transaction.atomic(using=self.using):
                self._insert_manifest(model_config(self.model, uuid.uuid4().hex).manifest())
            row = rows.get(store=self.table)
        return row

    def _insert_manifest(self, manifest: dict[str, Any]) -> None:
        StoreManifest.objects.using(self.using).create(
            store=self.table, manifest=json.dumps(manifest), last_version=0)

    # -- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        row = self._manifest_row()
        return None if row is None else json.loads(row.manifest)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        """Record the store; its keys and grid must be the model's (ConfigMismatchError)."""
        self.check_writable()
        wanted = StoreConfig.from_manifest(manifest)
        mine = self.model_config
        differences = {name: (getattr(mine, name), getattr(wanted, name))
                       for name in ("keys", "freq", "tz", "chunking", "dtype")
                       if getattr(mine, name) != getattr(wanted, name)}
        if differences:
            raise ConfigMismatchError(differences)
        try:
            with transaction.atomic(using=self.using):
                if self._manifest_row() is not None:
                    raise StoreExistsError(f"a store already exists at {self!r}")
                self._insert_manifest(manifest)
        except DjangoIntegrityError as exc:
            raise StoreExistsError(f"a store already exists at {self!r}") from exc

    # -- reads -----------------------------------------------------------------------------
    def _rows(self, key: SeriesKey, lo: int | None, hi: int | None) -> list[tuple]:
        """Live rows of one series, ``_FIELDS`` by chunk."""
        if self._pg is not None:
            return self._pg.read(key, lo, hi)
        qs = self._range(self._qs().filter(**self.key_dict(key), is_deleted=False), lo, hi)
        return list(qs.order_by("chunk_index").values_list(*_FIELDS))

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        out = [self._record(key, *row) for row in self._rows(key, lo, hi)]
        return [r for r in out if r is not None]

    def read_pieces(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[_chunks.Piece]:
        """What ``read_chunks`` + the core's decode give, without turning holcstore rows
        into checksummed records first (the adapter's ``get_ts``)."""
        return self._pieces(key, self._rows(key, lo, hi))

    def _pieces(self, key: SeriesKey, rows: Iterable[tuple]) -> list[_chunks.Piece]:
        rows = list(rows)
        whole = self._whole_periods(rows)
        if whole is not None:
            return [whole]
        out = [self._piece(key, *row[:4]) for row in rows]
        return [p for p in out if p is not None]

    def _whole_periods(self, rows: list[tuple]) -> _chunks.Piece | None:
        """The common case in one piece: holcstore rows of consecutive chunks, each the
        float64 buffer of its whole period, the first and last with a value. The piece then
        spans several periods (the grid is contiguous), which assembling handles; this saves
        the per-chunk work of ``_piece``. None when any row is otherwise."""
        if len(rows) < 2:
            return None
        grid = self.grid
        first = rows[0][0]
        raw = []
        for i, (chunk, start_ts, dtype, data, *_rest) in enumerate(rows):
            if (chunk != first + i or dtype != "float64" or compat.is_framed(data)
                    or to_ns(start_ts) != grid.period_start_ns(chunk)):
                return None
            values = compat.holc_raw(data)
            if len(values) != grid.period(chunk)[1] * 8:
                return None
            raw.append(values)
        # writable, so the result is assembled from it without a copy
        joined = np.frombuffer(bytearray().join(raw), dtype=np.float64)
        head, tail = len(raw[0]) // 8, len(raw[-1]) // 8
        if np.isnan(joined[:head]).all() or np.isnan(joined[-tail:]).all():
            return None  # an empty edge chunk is skipped: let _piece say which
        return _chunks.Piece(first, 0, joined)

    def _scan(self, where: Mapping[str, Any], lo: int | None, hi: int | None, chunk_size: int,
              decode: Callable[[SeriesKey, list[tuple]], list[T]]
              ) -> Iterator[tuple[SeriesKey, list[T]]]:
        """``(key, decode(key, rows))`` of the matching series with a value, by key; rows are
        ``_FIELDS`` by chunk."""
        n = len(self.names)
        qs = self._range(self._qs().filter(**where, is_deleted=False), lo, hi)

        def series_of(rows: Iterable[tuple]) -> Iterator[tuple[SeriesKey, list[T]]]:
            for key, group in groupby(rows, lambda r: r[:n]):
                items = decode(key, [row[n:] for row in group])
                if items:
                    yield key, items

        if self._pg is not None:
            yield from self._pg.scan(qs, self.names, _FIELDS, self._keys_q, chunk_size,
                                     lambda rows: list(series_of(rows)))
        else:
            yield from series_of(qs.order_by(*self.names, "chunk_index").values_list(
                *self.names, *_FIELDS).iterator(chunk_size=chunk_size))

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None,
             chunk_size: int = 200) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        """Stream matching series; ``where`` may also hold Django lookups (``n__in``...)."""
        def records(key: SeriesKey, rows: list[tuple]) -> list[ChunkRecord]:
            return [r for r in (self._record(key, *row) for row in rows) if r is not None]

        return self._scan(where, lo, hi, chunk_size, records)

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None, chunk_size: int = 200
                    ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
        """``scan`` as decoded pieces (see ``read_pieces``)."""
        return self._scan(where, lo, hi, chunk_size, self._pieces)

    def chunk_spans(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None) -> list[tuple[SeriesKey, int, int]]:
        """``(key, first chunk, last chunk)`` of the live rows of each matching series whose
        span meets chunks ``[lo, hi]``, by key in ``scan``'s order: one grouped query."""
        qs = self._qs().filter(**where, is_deleted=False)
        n = len(self.names)
        if not n:  # a model without key fields holds one series
            span = qs.aggregate(first=models.Min("chunk_index"), last=models.Max("chunk_index"))
            rows = [] if span["first"] is None else [(span["first"], span["last"])]
        else:
            grouped = qs.order_by().values(*self.names).annotate(
                cvs_first=models.Min("chunk_index"), cvs_last=models.Max("chunk_index"))
            if hi is not None:
                grouped = grouped.filter(cvs_first__lte=hi)
            if lo is not None:
                grouped = grouped.filter(cvs_last__gte=lo)
            rows = list(grouped.order_by(*self.names).values_list(
                *self.names, "cvs_first", "cvs_last"))
        return [(tuple(r[:n]), r[n], r[n + 1]) for r in rows
                if (hi is None or r[n] <= hi) and (lo is None or r[n + 1] >= lo)]

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, records in self.scan(where):
            yield key, [r.meta for r in records]

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        return (key for key, _ in self.list_metas(where))

    # -- writes ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[_DjangoTransaction]:
        self.check_writable()
        tx = _DjangoTransaction(self, keys)
        try:
            with transaction.atomic(using=self.using):
                try:
                    yield tx
                    tx.committed = tx.commit()
                except BaseException as exc:
                    tx.abort(exc)  # an open COPY is cancelled before the rollback
                    raise
        except DjangoIntegrityError as exc:
            raise ConflictError(f"a concurrent writer created the same chunk: {exc}") from exc
        except OperationalError as exc:
            if "deadlock" in str(exc).lower() or "locked" in str(exc).lower():
                raise ConflictError(f"lost a lock race: {exc}") from exc
            raise

    def get_state(self, name: str) -> str | None:
        row = SyncState.objects.using(self.using).filter(store=self.table, name=name).first()
        return None if row is None else row.value

    def tombstone_queryset(self, qs: models.QuerySet) -> int:
        """Tombstone the live chunks a queryset matches (``delete(keep_tracking=True)``)."""
        n = len(self.names)
        refs = list(qs.filter(is_deleted=False).values_list(*self.names, "chunk_index"))
        if not refs:
            return 0
        by_key: dict[SeriesKey, list[int]] = {}
        for row in refs:
            by_key.setdefault(tuple(row[:n]), []).append(row[n])
        with self.transaction(sorted(by_key)) as tx:
            tx.put([ChunkRecord(k, ChunkMeta(chunk=c, deleted=True))
                    for k, chunks in by_key.items() for c in chunks])
        return len(refs)

    # -- change feed -----------------------------------------------------------------------
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        manifest = self.read_manifest() or {}
        store_id = str(manifest.get("store_id", ""))
        position = 0 if cursor is None else decode_cursor(cursor, store_id, 1)[0]
        assert self.schema is not None
        log = ChunkChange.objects.using(self.using).filter(store=self.table).order_by("version")
        if position and not log.filter(version=position).exists():
            raise unknown_position(str(cursor))  # a cursor names a logged version
        batch = max(limit, 500)
        items: list[Change] = []
        last, has_more = position, False
        while True:
            rows = list(log.filter(version__gt=last)[:batch].values_list(
                "version", "key", "chunk", "deleted"))
            for version, key_json, chunk, deleted in rows:
                if len(items) >= limit:
                    has_more = True
                    break
                last = version
                key = tuple(json.loads(key_json))
                if self.schema.matches(key, where):
                    items.append(Change(key, chunk, version, deleted))
            if has_more or len(rows) < batch:
                break
        return ChangePage(items, encode_cursor(store_id, (last,)), has_more)
