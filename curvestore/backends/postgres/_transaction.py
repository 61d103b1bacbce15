"""The transaction and commit path of the PostgreSQL backend.

A transaction borrows one pooled connection and opens a database transaction on it at begin:
it takes the series' advisory locks, reads (row-locking what it returns), streams new chunks
into the chunk table with a binary COPY as they are put, and at commit writes the staged
chunks and their change rows in bulk (or, for a few chunks whose rows it read, in one
pipelined round trip); the COMMIT that follows makes the batch all or nothing. Commit and
abort both hand the connection back to the pool, whatever happens.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._base import lock_id
from curvestore.backends.postgres._connect import translated
from curvestore.backends.postgres._ddl import CHUNK_MAX, CHUNK_MIN
from curvestore.core.backend import Transaction, stale_state
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import ConflictError

if TYPE_CHECKING:
    import psycopg

    from curvestore.backends.postgres._backend import PostgresBackend

__all__ = ["PgTransaction"]

_MAX_KEY_LOCKS = 256
#: Commits of at most this many chunks, all of whose rows the transaction read, are sent as
#: plain statements in one pipeline rather than COPYs (see _write_small).
_SMALL_COMMIT = 16
_COPY_FLUSH_BYTES = 64 * 1024
_DOING = "writing"


class _Aborted(Exception):
    """Ends a streaming COPY with an error (the server discards its rows) on abort."""


def _copy_writer(cursor: psycopg.Cursor[Any]) -> Any:
    """psycopg's queued COPY writer: a thread sends the rows while the caller encodes the next
    series (the GIL is released while it waits on the socket), so the client's encoding and
    the server's ingest overlap. Buffers of 64 KB bound what can be queued to 64 MB (psycopg
    queues at most 1,024 buffers)."""
    from psycopg.copy import QueuedLibpqWriter

    return QueuedLibpqWriter(cursor, flush_threshold=_COPY_FLUSH_BYTES)


@functools.cache
def _pipelines_supported() -> bool:
    from psycopg import Pipeline

    return bool(Pipeline.is_supported())  # libpq 14 or later


def _copy_rows(cur: psycopg.Cursor[Any], statement: Any, types: list[str],
               rows: Iterator[tuple[Any, ...]]) -> None:
    with cur.copy(statement, writer=_copy_writer(cur)) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


class PgTransaction(Transaction):
    """Reads on the transaction's connection; puts staged until commit.

    Reads fetch tombstones too (filtered out before returning), so that the commit knows,
    for the chunk ranges read, which rows exist without asking again. Made by
    :meth:`begin`; the connection is held (and the database transaction open) until
    :meth:`commit` or :meth:`abort`.
    """

    def __init__(self, backend: PostgresBackend, conn: psycopg.Connection[Any],
                 keys: Sequence[SeriesKey], release: contextlib.ExitStack) -> None:
        self.backend = backend
        self.conn = conn
        self.order = list(dict.fromkeys(keys))
        self.keys = set(self.order)
        self.staged: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        self.metas: dict[SeriesKey, list[ChunkMeta]] | None = None
        # ranges read: (lo, hi, {chunk: version of its row}); the rows are locked
        self.seen: dict[SeriesKey, list[tuple[int, int, dict[int, int]]]] = {}
        # exiting it ends the database transaction, then returns the connection to the pool
        self._release = release
        # new chunks are COPYed into the table as soon as they are put (while the core
        # encodes the next series, the server ingests the previous one); the COPY is
        # finished before any other statement runs on the connection
        self.streamed: dict[tuple[SeriesKey, int], bool] = {}  # slot -> deleted
        self._copy_cm: Any = None
        self._copy: Any = None
        self._cursor: Any = None

    @classmethod
    def begin(cls, backend: PostgresBackend, keys: Sequence[SeriesKey]) -> PgTransaction:
        """Borrow a connection, open a database transaction on it and take the series'
        locks; on any failure the connection goes back to the pool, nothing held."""
        release = contextlib.ExitStack()
        try:
            with translated(backend.target, _DOING):
                conn = release.enter_context(backend.pool.connection())
                state = backend.pool.state.setdefault(id(conn), set())
                for name, statement in cls.session_tables(backend):
                    if name not in state:
                        conn.execute(statement)  # autocommit: stays for the session
                        state.add(name)
                release.enter_context(conn.transaction())
                tx = cls(backend, conn, keys, release)
                tx.lock()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                release.__exit__(type(exc), exc, exc.__traceback__)  # ROLLBACK, give back
            raise
        return tx

    @classmethod
    def session_tables(cls, backend: PostgresBackend) -> list[tuple[str, Any]]:
        """The session's temporary tables this kind of transaction needs, as (name, CREATE
        statement): created once per pooled connection, outside any transaction."""
        return [("stage", backend.queries.create_stage)]

    def commit(self) -> list[Change]:
        """Write what was staged (:meth:`write`, through the backend's ``_write`` step),
        then COMMIT; the connection is returned to the pool either way."""
        try:
            with translated(self.backend.target, _DOING):
                changes = self.backend._write(self.conn, self)
        except BaseException:
            self.abort()
            raise
        with translated(self.backend.target, _DOING):
            self._release.close()  # COMMIT, then the connection goes back to the pool
        return changes

    def abort(self) -> None:
        """Roll back everything written or streamed and return the connection (a
        connection that cannot roll back is closed by the pool instead); never raises."""
        from psycopg import Rollback

        with contextlib.suppress(Exception):
            self.finish_copy(_Aborted("the curvestore transaction was aborted"))
        with contextlib.suppress(Exception):
            self._release.__exit__(Rollback, Rollback(), None)

    def finish_copy(self, exc: BaseException | None = None) -> None:
        """End the streaming COPY, if one is open (aborting it when ``exc`` is given)."""
        if self._copy_cm is None:
            return
        cm, cursor = self._copy_cm, self._cursor
        self._copy_cm = self._copy = self._cursor = None
        try:
            if exc is None:
                cm.__exit__(None, None, None)
            else:
                cm.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            cursor.close()

    def _stream(self, record: ChunkRecord, now: int) -> None:
        if self._copy is None:
            q = self.backend.queries
            self._cursor = self.conn.cursor(binary=True)
            self._copy_cm = self._cursor.copy(q.copy_chunks, writer=_copy_writer(self._cursor))
            self._copy = self._copy_cm.__enter__()
            self._copy.set_types(q.copy_types)
        self._copy.write_row(self.backend.queries.copy_row(record, now))

    def _saw(self, key: SeriesKey, lo: int | None, hi: int | None,
             chunks: dict[int, int]) -> None:
        self.seen.setdefault(key, []).append(
            (CHUNK_MIN if lo is None else lo, CHUNK_MAX if hi is None else hi, chunks))

    def exists(self, key: SeriesKey, chunk: int) -> bool | None:
        """Whether a row (live or tombstone) exists for the slot, or None if not known."""
        for lo, hi, chunks in self.seen.get(key, ()):
            if lo <= chunk <= hi:
                return chunk in chunks
        return None

    def version(self, key: SeriesKey, chunk: int) -> int:
        """The version of the slot's row as read (it is locked, so current); LookupError
        when the transaction did not read that row."""
        for lo, hi, chunks in self.seen.get(key, ()):
            if lo <= chunk <= hi and chunk in chunks:
                return chunks[chunk]
        raise LookupError(f"chunk {chunk} of {key} was not read in this transaction")

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        """Metas of ``key``; on first call, those of every series of the transaction are
        fetched in one query (they cannot change: the series are locked)."""
        with translated(self.backend.target, _DOING):
            return self._live_metas(key)

    def _live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        q = self.backend.queries
        if key not in self.keys:
            self.finish_copy()
            return [r.meta for r in self.backend._read(self.conn, q.read, key, None, None)]
        if self.metas is None:
            self.finish_copy()
            self.metas = {}
            chunks: dict[SeriesKey, dict[int, int]] = {k: {} for k in self.order}
            with self.conn.cursor(binary=True) as cur:
                cur.execute(q.metas_of_keys, q.key_arrays(self.order))
                for row in cur:
                    meta = q.meta(row)
                    series = tuple(row[: q.nk])
                    chunks[series][meta.chunk] = meta.version
                    if not meta.deleted:
                        self.metas.setdefault(series, []).append(meta)
            for series, found in chunks.items():
                self._saw(series, None, None, found)
        return list(self.metas.get(key, []))

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        q = self.backend.queries
        with translated(self.backend.target, _DOING):
            self.finish_copy()
            records = self.backend._read(self.conn, q.read_for_update, key, lo, hi)
        self._saw(key, lo, hi, {r.chunk: r.meta.version for r in records})
        return [r for r in records if not r.meta.deleted]

    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        with translated(self.backend.target, _DOING):
            for record in records:
                slot = (record.key, record.chunk)
                if slot not in self.staged and slot not in self.streamed and \
                        self.exists(*slot) is False:
                    self._stream(record, now)  # known to have no row: INSERT right away
                    self.streamed[slot] = record.meta.deleted
                else:
                    self.staged[slot] = record

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        """Compare-and-set ``name`` in the sync-state table now, inside this open
        transaction: it commits (or rolls back) together with the staged chunks, and holds
        the row until then, so a concurrent setter waits and then finds the value moved."""
        with translated(self.backend.target, _DOING):
            self.finish_copy()
            self.backend._ensure_state_table()
            queries = self.backend.queries
            if expected is None:
                done = self.conn.execute(queries.insert_state, [name, value]).rowcount
            else:
                done = self.conn.execute(queries.update_state,
                                         [value, name, expected]).rowcount
        if done != 1:
            raise stale_state(name)

    # -- locks and commit ------------------------------------------------------------------
    def lock(self) -> None:
        """Take the series' advisory locks (transaction-scoped), in sorted order so that
        writers never deadlock; over ``_MAX_KEY_LOCKS`` series, the store-wide lock in
        exclusive mode instead (every transaction holds it in shared mode)."""
        conn, keys, backend = self.conn, self.order, self.backend
        if len(keys) > _MAX_KEY_LOCKS:
            conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [backend._store_lock])
            return
        hashes = sorted({lock_id(json.dumps([backend.names.qualified, *k]), 4) for k in keys})
        from psycopg import Pipeline

        # the store-wide lock first, then the series locks in order; one round trip
        with conn.pipeline() if Pipeline.is_supported() else contextlib.nullcontext():
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s::bigint)",
                         [backend._store_lock])
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(%s::int4, h)) FROM "
                "(SELECT unnest(%s::int4[]) AS h ORDER BY 1) AS s",
                [backend._store_lock32, hashes])

    def write(self) -> list[Change]:
        """Write the staged chunks and their change rows in bulk (the COMMIT follows).

        Chunks known to have no row were already COPYed into the table by ``put`` (the
        COPY is ended here). For the other staged chunks, which already have a row is known
        from the transaction's reads, or else asked in one query; new chunks are COPYed
        straight into the table (version 1), existing ones are COPYed into the session's
        stage table and applied by one UPDATE (version + 1); the change rows, in (key, chunk)
        order, are COPYed last. Round trips do not depend on the number of chunks.
        """
        conn = self.conn
        self.finish_copy()
        if not self.staged and not self.streamed:
            return []
        q = self.backend.queries
        now = time.time_ns()
        slots = sorted(self.staged)
        nk = q.nk
        known = {slot: True if slot in self.streamed else self.exists(*slot) for slot in slots}
        if not self.streamed and len(slots) <= _SMALL_COMMIT and None not in known.values() \
                and _pipelines_supported():
            return self._write_small(slots, known, now)
        with conn.cursor(binary=True) as cur:
            existing = {slot for slot, found in known.items() if found}
            unknown = [slot for slot, found in known.items() if found is None]
            if unknown:
                cur.execute(q.existing, q.slot_arrays(unknown))
                existing.update((tuple(r[:nk]), r[nk]) for r in cur)
            versions = {slot: 1 for slot in slots if slot not in existing}
            if versions:
                _copy_rows(cur, q.copy_chunks, q.copy_types,
                           (q.copy_row(self.staged[s], now) for s in slots if s in versions))
            if existing:
                _copy_rows(cur, q.copy_stage, q.copy_types,
                           (q.copy_row(self.staged[s], now) for s in slots if s in existing))
                cur.execute(q.update_from_stage)
                versions.update({(tuple(r[:nk]), r[nk]): r[nk + 1] for r in cur})
            deleted = {slot: r.meta.deleted for slot, r in self.staged.items()}
            for slot, gone in self.streamed.items():
                versions.setdefault(slot, 1)  # a streamed slot put again was UPDATEd above
                deleted.setdefault(slot, gone)
            changes = [Change(key, chunk, versions[(key, chunk)], deleted[(key, chunk)])
                       for key, chunk in sorted(deleted)]
            _copy_rows(cur, q.copy_changes, q.change_types,
                       ((*c.key, c.chunk, c.version, c.deleted) for c in changes))
        self.staged.clear()
        self.streamed.clear()
        return changes

    def _write_small(self, slots: list[tuple[SeriesKey, int]], known: dict[Any, bool | None],
                     now: int) -> list[Change]:
        """A few chunks whose rows the transaction read (locked, versions known): INSERTs,
        one UPDATE per existing row and the change rows, in ONE pipeline (one round trip)
        instead of three COPYs and an UPDATE (about six round trips): a 1-week update's
        commit."""
        conn, q = self.conn, self.backend.queries
        inserts, updates, changes = [], [], []
        for slot in slots:
            record = self.staged[slot]
            if known[slot]:
                version = self.version(*slot) + 1
                updates.append(q.update_params(record, now, version))
            else:
                version = 1
                inserts.append(q.copy_row(record, now))
            changes.append(Change(slot[0], slot[1], version, record.meta.deleted))
        with conn.cursor(binary=True) as cur, conn.cursor(binary=True) as rewrite:
            with conn.pipeline():
                if inserts:
                    cur.executemany(q.insert_chunk, inserts)
                if updates:
                    if q.drop_fragments is not None:
                        cur.executemany(q.drop_fragments, [u[-q.nk - 1:] for u in updates])
                    rewrite.executemany(q.update_chunk, updates, returning=True)
                cur.executemany(q.insert_change, [(*c.key, c.chunk, c.version, c.deleted)
                                                  for c in changes])
            rewritten = 0
            while updates:
                rewritten += len(rewrite.fetchall())
                if not rewrite.nextset():
                    break
        if rewritten != len(updates):  # cannot happen while the rows stay locked
            raise ConflictError(f"{len(updates) - rewritten} chunk row(s) vanished during "
                                "the commit; nothing was written")
        self.staged.clear()
        return changes
