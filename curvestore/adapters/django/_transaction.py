"""The Django backend's transaction and commit path.

:meth:`DjangoModelBackend.begin <curvestore.adapters.django.backend.DjangoModelBackend.begin>`
enters a ``transaction.atomic`` block that the transaction's ``commit`` or ``abort`` leaves.
Inside it, reads lock the rows they return; the commit then locks the store's manifest row
(the last lock taken, held until COMMIT), takes versions from its counter, writes the chunk
rows and appends the change feed; through the ORM, or on PostgreSQL through the statements of
:mod:`._postgres` (binary COPY of new chunks as they are put, small commits in one pipelined
round trip). Database errors that mean a concurrent writer won (a duplicate chunk, a
deadlock, a lock timeout) are raised as :class:`ConflictError`, so the core runs the
read-merge-write again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import IntegrityError as DjangoIntegrityError
from django.db import OperationalError, transaction

from curvestore.adapters.django._base import FIELDS
from curvestore.adapters.django._postgres import NewChunks, Rel, dt_of
from curvestore.adapters.django.bookkeeping import ChunkChange, SyncState
from curvestore.adapters.django.rows import Row, RowRecord, to_datetime
from curvestore.core.backend import Transaction, stale_state
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import ConflictError

if TYPE_CHECKING:
    from django.db.transaction import Atomic

    from curvestore.adapters.django._postgres import PgPaths
    from curvestore.adapters.django.backend import DjangoModelBackend

__all__ = ["DjangoTransaction", "lost_races"]


@contextmanager
def lost_races() -> Iterator[None]:
    """Database errors that mean another writer got there first, as :class:`ConflictError`:
    a chunk it created meanwhile (unique constraint), a deadlock PostgreSQL broke, a lock
    SQLite waited for in vain. Nothing of the transaction was kept: the core re-runs it."""
    try:
        yield
    except DjangoIntegrityError as exc:
        raise ConflictError(f"a concurrent writer created the same chunk: {exc}") from exc
    except OperationalError as exc:
        text = str(exc).lower()
        if "deadlock" in text or "locked" in text:
            raise ConflictError(f"lost a lock race: {exc}") from exc
        raise


class DjangoTransaction(Transaction):
    """Reads lock the rows they return (``select_for_update``); puts are staged (and, on
    PostgreSQL, new chunks streamed); ``commit`` writes them under the manifest lock.

    Runs in the ``atomic`` block the backend entered (``atomic``, left by ``commit`` or
    ``abort``), on the thread that began it: Django's connections belong to a thread."""

    def __init__(self, backend: DjangoModelBackend, keys: Sequence[SeriesKey],
                 atomic: Atomic) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.atomic = atomic
        self.ended = False
        self.staged: dict[tuple[SeriesKey, int], Row] = {}
        self.states: dict[str, tuple[str, str | None]] = {}
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
        rows = list(qs.order_by("chunk_index").values_list("is_deleted", *FIELDS))
        self.read_ranges.setdefault(key, []).append((lo, hi))
        self.seen.update((key, row[1]) for row in rows)
        out = [b._record(key, *row[1:]) for row in rows if not row[0]]
        return [r for r in out if r is not None]

    def _read_as_absent(self, key: SeriesKey, chunk: int) -> bool:
        return (key, chunk) not in self.seen and any(
            (lo is None or lo <= chunk) and (hi is None or chunk <= hi)
            for lo, hi in self.read_ranges.get(key, ()))

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        with lost_races():
            return [r.meta for r in self._locked(key, None, None)]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        with lost_races():
            return self._locked(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        """Stage records; a :class:`~curvestore.adapters.django.rows.RowRecord` is staged as
        the row it carries (holcstore's ``import_chunks``), any other record is encoded."""
        now = time.time_ns()
        for record in records:
            ref = (record.key, record.chunk)
            self.staged[ref] = record.row if isinstance(record, RowRecord) \
                else self.backend._row(record, now)
            if ref in self.streamed:
                self.again.add(ref)
            else:
                self._fresh.append(ref)
        if self.backend._pg is not None:
            with lost_races():
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

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.states[name] = (value, expected)

    def commit(self) -> list[Change]:
        """Write what was staged and leave the atomic block (COMMIT, or RELEASE SAVEPOINT
        inside an enclosing block); on any error, roll back and raise."""
        if self.ended:
            raise RuntimeError("this transaction was already committed or aborted")
        try:
            with lost_races():
                changes = self._write() if self.staged or self.states else []
        except BaseException:
            self.abort()
            raise
        self.ended = True
        with lost_races():  # Django rolls back itself when COMMIT fails
            self.atomic.__exit__(None, None, None)
        return changes

    def abort(self) -> None:
        """Cancel a COPY in progress and roll the atomic block back."""
        if self.ended:
            return
        self.ended = True
        try:
            if self.stream is not None:
                self.stream.abort()
        finally:
            transaction.set_rollback(True, using=self.backend.using)
            self.atomic.__exit__(None, None, None)

    def _write(self) -> list[Change]:
        b = self.backend
        if b._pg is not None and self.staged:
            return self._commit_pg(b._pg)
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

    def _commit_pg(self, pg: PgPaths) -> list[Change]:
        """``commit`` on PostgreSQL: the same rows and locks in a few statements.

        The manifest row (created if a flush removed it) is locked by the statement that
        takes the versions. A chunk the transaction read as absent is INSERTed, so one
        created since by a concurrent writer fails on the unique constraint (ConflictError:
        the core re-runs the merge) instead of being overwritten; chunks the reads did not
        cover are looked up in one query."""
        b = self.backend
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
            if top is None:  # write returns the raised counter whenever begin= is given
                raise RuntimeError("a one-trip commit did not return the store's version")
            changes = [Change(c.key, c.chunk, top - c.version, c.deleted) for c in changes]
        else:
            pg.write(inserts, updates, log, top=version if self.stream is not None else None)
        self._save_states()
        return changes
