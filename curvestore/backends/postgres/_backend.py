"""The PostgreSQL backend: ``postgresql://user@host:port/db?table=load_curves&schema=public``.

Guarantees and how they are met:

* **Atomic batches**: chunks known to be new are COPYed (binary) into the chunk table as
  they are put, inside the open transaction (the server ingests while the core encodes the
  next series); at commit, the other new chunks are COPYed straight into the chunk table,
  rewritten ones into a session temp table applied by one UPDATE, the change rows are
  COPYed into the change table, then one COMMIT: all or nothing, whatever kills the writer.
  No round trip per chunk.
* **Writers of one series serialise**: ``transaction(keys)`` takes transaction-scoped advisory
  locks on a hash of each series key, in sorted order (no deadlock), so writers exclude each
  other even before a series has rows; a transaction over more than ``_MAX_KEY_LOCKS`` series
  takes one store-wide exclusive lock instead (every transaction holds the store-wide lock in
  shared mode), which keeps PostgreSQL's lock table bounded. ``tx.read`` also row-locks the
  chunks it returns (``FOR UPDATE``), against writers that bypass curvestore.
* **Versions** are assigned in SQL: 1 on first write, the stored version + 1 afterwards.
* **Change feed**: see :meth:`PostgresBackend.changes`: every committed change exactly once,
  ordered by (writer's transaction id, sequence), never skipping a late commit.
* **Replication target**: ``tx.set_state`` upserts the replication cursor into
  ``<table>_sync_state`` inside the open transaction, so the cursor commits atomically with
  the imported chunks; ``fetch`` exports any number of chunks in one query.
* **Reads**: one query per single-series read; ``scan``/``list_metas`` stream through a
  server-side cursor in batches (bounded memory); meta queries never fetch payloads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from curvestore.backends.base import Backend, Transaction, stale_state
from curvestore.backends.postgres._connect import (
    LIBPQ_OPTIONS,
    ConnectionTarget,
    Pool,
    import_psycopg,
    translated,
)
from curvestore.backends.postgres._ddl import (
    CHUNK_MAX,
    CHUNK_MIN,
    COLUMN_PREFIX,
    LEGACY_PREFIX,
    MANIFEST_FIELD,
    META_COLUMNS,
    Names,
    ddl_statements,
)
from curvestore.core.config import KeySchema
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    StoreExistsError,
)

if TYPE_CHECKING:
    import psycopg

    from curvestore.backends.postgres._queries import Queries

__all__ = ["PostgresBackend"]

_MAX_KEY_LOCKS = 256
#: Commits of at most this many chunks, all of whose rows the transaction read, are sent as
#: plain statements in one pipeline rather than COPYs (see _write_small).
_SMALL_COMMIT = 16
_COPY_FLUSH_BYTES = 64 * 1024
_SCAN_BATCH = 64  # rows (chunks with payload) per server-side cursor fetch
_META_BATCH = 5000
_SEQ_MAX = 2**63 - 1


def _hash(text: str, size: int) -> int:
    """A stable signed hash (``size`` bytes) for advisory lock ids."""
    digest = hashlib.blake2b(text.encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big", signed=True)


def _column_prefix(settings: Any, backend: PostgresBackend) -> str:
    """The prefix of the backend's own columns recorded in a manifest row's
    ``MANIFEST_FIELD``; a row without the field is an older store's (unprefixed columns)."""
    if settings is None:
        return LEGACY_PREFIX
    prefix = settings.get("column_prefix") if isinstance(settings, dict) else None
    if prefix not in (COLUMN_PREFIX, LEGACY_PREFIX):
        raise ConfigurationError(
            f"{backend!r}: the manifest names column prefix {prefix!r}, which this curvestore "
            "does not know; upgrade curvestore")
    return str(prefix)


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


class _PgTransaction(Transaction):
    """Reads on the transaction's connection; puts staged until commit.

    Reads fetch tombstones too (filtered out before returning), so that the commit knows,
    for the chunk ranges read, which rows exist without asking again.
    """

    def __init__(self, backend: PostgresBackend, conn: psycopg.Connection[Any],
                 keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.conn = conn
        self.order = list(dict.fromkeys(keys))
        self.keys = set(self.order)
        self.staged: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        self.metas: dict[SeriesKey, list[ChunkMeta]] | None = None
        # ranges read: (lo, hi, {chunk: version of its row}); the rows are locked
        self.seen: dict[SeriesKey, list[tuple[int, int, dict[int, int]]]] = {}
        self.committed = []
        # new chunks are COPYed into the table as soon as they are put (while the core
        # encodes the next series, the server ingests the previous one); the COPY is
        # finished before any other statement runs on the connection
        self.streamed: dict[tuple[SeriesKey, int], bool] = {}  # slot -> deleted
        self._copy_cm: Any = None
        self._copy: Any = None
        self._cursor: Any = None

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
        self.finish_copy()
        records = self.backend._read(self.conn, q.read_for_update, key, lo, hi)
        self._saw(key, lo, hi, {r.chunk: r.meta.version for r in records})
        return [r for r in records if not r.meta.deleted]

    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
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
        self.finish_copy()
        self.backend._ensure_state_table()
        queries = self.backend.queries
        if expected is None:
            done = self.conn.execute(queries.insert_state, [name, value]).rowcount
        else:
            done = self.conn.execute(queries.update_state, [value, name, expected]).rowcount
        if done != 1:
            raise stale_state(name)


class PostgresBackend(Backend):
    """Chunks as rows of a PostgreSQL table; see the module docstring for the guarantees."""

    schemes = ("postgresql", "postgres")

    @classmethod
    def check_available(cls) -> None:
        import_psycopg()

    def __init__(self, target: ConnectionTarget, names: Names, *,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.target = target
        self.names = names
        self.pool = Pool(target)
        self.store_id = ""
        self._queries: Queries | None = None
        self._store_lock = _hash(f"curvestore:{names.qualified}", 8)
        self._store_lock32 = _hash(f"curvestore:{names.qualified}", 4)
        self._ddl_lock = _hash(f"curvestore-ddl:{names.qualified}", 8)
        self._has_state_table = False
        self._prefix = COLUMN_PREFIX  # of the backend's own columns; set from the manifest

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> PostgresBackend:
        """Options: ``table`` (default ``load_curves``), ``schema`` (default ``public``) and
        libpq connection parameters (``sslmode``, ``connect_timeout``, ``service`` ...)."""
        import_psycopg()
        url.reject_unknown_options(frozenset({"table", "schema"}) | LIBPQ_OPTIONS)
        names = Names(url.options.get("schema", "public"), url.options.get("table", "load_curves"))
        libpq = {k: v for k, v in url.options.items() if k in LIBPQ_OPTIONS}
        return cls(ConnectionTarget.from_url(url, libpq), names, read_only=read_only)

    def __repr__(self) -> str:
        t = self.target
        return (f"PostgresBackend(host={t.host!r}, port={t.port!r}, db={t.dbname!r}, "
                f"table={self.names.qualified!r})")

    @property
    def queries(self) -> Queries:
        """The store's statements, built on first use from its key schema and column prefix
        (both known once the manifest is read or created)."""
        if self._queries is None:
            from curvestore.backends.postgres._queries import Queries

            if self.schema is None:
                raise RuntimeError("bind() was not called: the key schema is unknown")
            self._queries = Queries(self.names, self.schema, self._prefix)
        return self._queries

    def bind(self, schema: KeySchema) -> None:
        super().bind(schema)
        self._queries = None

    # -- manifest --------------------------------------------------------------------------
    def _regclass(self, conn: psycopg.Connection[Any], table: str) -> Any:
        row = conn.execute("SELECT to_regclass(%s)",
                           [f'"{self.names.schema}"."{table}"']).fetchone()
        return None if row is None else row[0]

    def read_manifest(self) -> dict[str, Any] | None:
        from psycopg import sql

        with self.pool.connection() as conn, translated(self.target, "reading the manifest"):
            if self._regclass(conn, self.names.manifest) is None:
                return None
            row = conn.execute(sql.SQL("SELECT body FROM {} WHERE id = 1").format(
                sql.Identifier(self.names.schema, self.names.manifest))).fetchone()
        if row is None:
            return None
        manifest = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        if not isinstance(manifest, dict):
            raise IntegrityError(f"{self!r}: the manifest row is not a JSON object")
        self.store_id = str(manifest.get("store_id", ""))
        self._prefix = _column_prefix(manifest.pop(MANIFEST_FIELD, None), self)
        return manifest  # type: ignore[no-any-return]

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        """Create the missing tables and insert the manifest row, in one transaction.

        Tables created ahead of time by a DBA (see ``create_statements``) are kept, after
        checking their columns (those made by an older curvestore's statements, with
        unprefixed column names, too); an existing manifest row raises StoreExistsError.
        The prefix of the backend's own columns is recorded in the manifest row.
        """
        from psycopg import sql
        from psycopg.types.json import Jsonb

        self.check_writable()
        keys = KeySchema.from_json(manifest["keys"])
        tables = {"chunks": self.names.table, "manifest": self.names.manifest,
                  "changes": self.names.changes, "sync_state": self.names.sync_state}
        with self.pool.connection() as conn, \
                translated(self.target, "creating the store"), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._store_lock])
            prefix = COLUMN_PREFIX
            if self._regclass(conn, self.names.table) is not None:
                prefix = self._check_columns(conn, keys)
            statements = ddl_statements(self.names, keys, prefix)
            for part, table in tables.items():
                if self._regclass(conn, table) is None:
                    for statement in statements[part]:
                        conn.execute(statement.encode())
            stored = {**manifest, MANIFEST_FIELD: {"column_prefix": prefix}}
            inserted = conn.execute(
                sql.SQL("INSERT INTO {} (id, body) VALUES (1, %s) ON CONFLICT (id) "
                        "DO NOTHING").format(
                    sql.Identifier(self.names.schema, self.names.manifest)),
                [Jsonb(stored)]).rowcount
            if inserted != 1:
                raise StoreExistsError(f"a store already exists at {self!r}")
        self.store_id = str(manifest.get("store_id", ""))
        self._prefix = prefix
        self._queries = None  # bound before the manifest was created: rebuilt with the prefix

    def _check_columns(self, conn: psycopg.Connection[Any], keys: KeySchema) -> str:
        """The column prefix of a chunk table created ahead of time (the current one, or the
        unprefixed names of an older curvestore's statements); ConfigurationError if its
        columns do not fit the store."""
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            [f'"{self.names.schema}"."{self.names.table}"']).fetchall()
        have = dict(rows)
        legacy = "chunk_index" in have and COLUMN_PREFIX + "chunk_index" not in have
        prefix = LEGACY_PREFIX if legacy else COLUMN_PREFIX
        want = {n: ("text" if t == "str" else "bigint")
                for n, t in zip(keys.names, keys.types, strict=True)}
        want.update({prefix + n: t for n, t in META_COLUMNS})
        want[prefix + "payload"] = "bytea"
        wrong = {n: (have.get(n), t) for n, t in want.items() if have.get(n) != t}
        if wrong:
            detail = ", ".join(f"{n} is {h or 'missing'} (want {t})" for n, (h, t) in wrong.items())
            raise ConfigurationError(
                f"table {self.names.qualified} exists but does not fit this store: {detail}")
        return prefix

    # -- reads -----------------------------------------------------------------------------
    def _read(self, conn: psycopg.Connection[Any], query: Any, key: SeriesKey,
              lo: int | None, hi: int | None) -> list[ChunkRecord]:
        q = self.queries
        with conn.cursor(binary=True) as cur:
            cur.execute(query, [*key, CHUNK_MIN if lo is None else lo,
                                CHUNK_MAX if hi is None else hi])
            return [q.record(row) for row in cur]

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        with self.pool.connection() as conn, translated(self.target, "reading"):
            return self._read(conn, self.queries.read, key, lo, hi)

    def _stream(self, query: Any, params: list[Any], batch: int) -> Iterator[tuple[Any, ...]]:
        """Rows of ``query`` through a server-side cursor, ``batch`` rows per round trip.

        After the first batch, a helper thread fetches the next batch while the caller
        decodes the current one (at most two batches wait in memory), so the server's
        work overlaps the client's."""
        with self.pool.connection() as conn, translated(self.target, "reading"), \
                conn.transaction(), conn.cursor("curvestore_scan", binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchmany(batch)
            if len(rows) < batch:
                yield from rows
                return
            ready: queue.Queue[Any] = queue.Queue(maxsize=1)
            stop = threading.Event()

            def fetch() -> None:
                try:
                    while not stop.is_set():
                        got = cur.fetchmany(batch)
                        ready.put(got)
                        if len(got) < batch:
                            return
                except BaseException as exc:  # handed to the reading thread
                    ready.put(exc)

            worker = threading.Thread(target=fetch, name="curvestore-pg-prefetch",
                                      daemon=True)
            worker.start()
            try:
                while True:
                    yield from rows
                    if len(rows) < batch:
                        return
                    item = ready.get()
                    if isinstance(item, BaseException):
                        raise item
                    rows = item
            finally:
                stop.set()
                while worker.is_alive():  # unblock a pending put, then let it end
                    with contextlib.suppress(queue.Empty):
                        ready.get(timeout=0.05)
                worker.join()

    def _grouped(self, rows: Iterator[tuple[Any, ...]], convert: Any
                 ) -> Iterator[tuple[SeriesKey, list[Any]]]:
        nk = self.queries.nk
        current: SeriesKey | None = None
        items: list[Any] = []
        for row in rows:
            key = tuple(row[:nk])
            if key != current:
                if items:
                    yield current, items  # type: ignore[misc]
                current, items = key, []
            items.append(convert(row))
        if items:
            yield current, items  # type: ignore[misc]

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        query, params = self.queries.scan(where, lo, hi)
        yield from self._grouped(self._stream(query, params, _SCAN_BATCH), self.queries.record)

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        query, params = self.queries.metas(where)
        yield from self._grouped(self._stream(query, params, _META_BATCH), self.queries.meta)

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        query, params = self.queries.series(where)
        for row in self._stream(query, params, _META_BATCH):
            yield tuple(row)

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        """The current rows of the named chunks in ONE query (a join against unnest()ed
        arrays of the key columns and chunk indexes), in the order of ``refs``: live
        records, stored tombstone rows as they are, and a tombstone record for a chunk that
        has no row at all."""
        if not refs:
            return []
        q = self.queries
        slots = list(dict.fromkeys(refs))
        with self.pool.connection() as conn, translated(self.target, "fetching chunks"), \
                conn.cursor(binary=True) as cur:
            cur.execute(q.fetch, q.slot_arrays(slots))
            found = {(r.key, r.chunk): r for r in map(q.record, cur)}
        out = []
        for key, chunk in refs:
            record = found.get((key, chunk))
            if record is None:
                record = ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True))
            elif record.meta.deleted and record.payload:
                record = ChunkRecord(key, record.meta)
            out.append(record)
        return out

    # -- replication target ----------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        """The value saved under ``name`` by :meth:`_PgTransaction.set_state`, or None
        (also when the store predates the sync-state table)."""
        with self.pool.connection() as conn, translated(self.target, "reading sync state"):
            if not self._has_state_table:
                if self._regclass(conn, self.names.sync_state) is None:
                    return None
                self._has_state_table = True
            row = conn.execute(self.queries.get_state, [name]).fetchone()
        return None if row is None else str(row[0])

    def _ensure_state_table(self) -> None:
        """Create the sync-state table of a store made before it existed (once, in its own
        short transaction on another connection, under a DDL lock of its own)."""
        if self._has_state_table:
            return
        with self.pool.connection() as conn, \
                translated(self.target, "creating the sync-state table"):
            if self._regclass(conn, self.names.sync_state) is None:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._ddl_lock])
                    if self._regclass(conn, self.names.sync_state) is None:
                        for statement in ddl_statements(self.names, self.queries.keys,
                                                        self._prefix)["sync_state"]:
                            conn.execute(statement.encode())
        self._has_state_table = True

    # -- writes ----------------------------------------------------------------------------
    def _lock(self, conn: psycopg.Connection[Any], keys: list[SeriesKey]) -> None:
        if len(keys) > _MAX_KEY_LOCKS:
            conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", [self._store_lock])
            return
        hashes = sorted({_hash(json.dumps([self.names.qualified, *k]), 4) for k in keys})
        from psycopg import Pipeline

        # the store-wide lock first, then the series locks in order; one round trip
        with conn.pipeline() if Pipeline.is_supported() else contextlib.nullcontext():
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s::bigint)", [self._store_lock])
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(%s::int4, h)) FROM "
                "(SELECT unnest(%s::int4[]) AS h ORDER BY 1) AS s",
                [self._store_lock32, hashes])

    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[Transaction]:
        """Lock ``keys``, yield a transaction, and commit its puts in bulk on a clean exit
        (an exception rolls everything back)."""
        self.check_writable()
        q = self.queries
        with self.pool.connection() as conn, translated(self.target, "writing"):
            state = self.pool.state.setdefault(id(conn), set())
            if "stage" not in state:
                conn.execute(q.create_stage)  # autocommit: survives this transaction
                state.add("stage")
            with conn.transaction():
                tx = _PgTransaction(self, conn, keys)
                self._lock(conn, tx.order)
                try:
                    yield tx
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        tx.finish_copy(exc)
                    raise
                changes = self._write(conn, tx)
        tx.committed = changes

    def _write(self, conn: psycopg.Connection[Any], tx: _PgTransaction) -> list[Change]:
        """Write the staged chunks and their change rows in bulk (the COMMIT follows).

        Chunks known to have no row were already COPYed into the table by ``put`` (the
        COPY is ended here). For the other staged chunks, which already have a row is known
        from the transaction's reads, or else asked in one query; new chunks are COPYed
        straight into the table (version 1), existing ones are COPYed into the session's
        stage table and applied by one UPDATE (version + 1); the change rows, in (key, chunk)
        order, are COPYed last. Round trips do not depend on the number of chunks.
        """
        tx.finish_copy()
        if not tx.staged and not tx.streamed:
            return []
        q = self.queries
        now = time.time_ns()
        slots = sorted(tx.staged)
        nk = q.nk
        known = {slot: True if slot in tx.streamed else tx.exists(*slot) for slot in slots}
        if not tx.streamed and len(slots) <= _SMALL_COMMIT and None not in known.values() \
                and _pipelines_supported():
            return self._write_small(conn, tx, slots, known, now)
        with conn.cursor(binary=True) as cur:
            existing = {slot for slot, found in known.items() if found}
            unknown = [slot for slot, found in known.items() if found is None]
            if unknown:
                cur.execute(q.existing, q.slot_arrays(unknown))
                existing.update((tuple(r[:nk]), r[nk]) for r in cur)
            versions = {slot: 1 for slot in slots if slot not in existing}
            if versions:
                self._copy(cur, q.copy_chunks, q.copy_types,
                           (q.copy_row(tx.staged[s], now) for s in slots if s in versions))
            if existing:
                self._copy(cur, q.copy_stage, q.copy_types,
                           (q.copy_row(tx.staged[s], now) for s in slots if s in existing))
                cur.execute(q.update_from_stage)
                versions.update({(tuple(r[:nk]), r[nk]): r[nk + 1] for r in cur})
            deleted = {slot: r.meta.deleted for slot, r in tx.staged.items()}
            for slot, gone in tx.streamed.items():
                versions.setdefault(slot, 1)  # a streamed slot put again was UPDATEd above
                deleted.setdefault(slot, gone)
            changes = [Change(key, chunk, versions[(key, chunk)], deleted[(key, chunk)])
                       for key, chunk in sorted(deleted)]
            self._copy(cur, q.copy_changes, q.change_types,
                       ((*c.key, c.chunk, c.version, c.deleted) for c in changes))
        tx.staged.clear()
        tx.streamed.clear()
        return changes

    def _write_small(self, conn: psycopg.Connection[Any], tx: _PgTransaction,
                     slots: list[tuple[SeriesKey, int]], known: dict[Any, bool | None],
                     now: int) -> list[Change]:
        """A few chunks whose rows the transaction read (locked, versions known): INSERTs,
        one UPDATE per existing row and the change rows, in ONE pipeline (one round trip)
        instead of three COPYs and an UPDATE (about six round trips): a 1-week update's
        commit."""
        q = self.queries
        inserts, updates, changes = [], [], []
        for slot in slots:
            record = tx.staged[slot]
            if known[slot]:
                version = tx.version(*slot) + 1
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
        tx.staged.clear()
        return changes

    @staticmethod
    def _copy(cur: psycopg.Cursor[Any], statement: Any, types: list[str],
              rows: Iterator[tuple[Any, ...]]) -> None:
        with cur.copy(statement, writer=_copy_writer(cur)) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    # -- change feed -----------------------------------------------------------------------
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Changes after ``cursor``, ordered by (transaction id, sequence).

        A change row is returned only once its writer's transaction id is below the xmin of
        the reading statement's snapshot: every transaction older than that has finished, and
        every later one gets a larger id, so no row can ever appear at or before a position
        already returned. Changes of a transaction that is still open (or that started
        before one that is) wait until it ends; they are then returned in their place, never
        skipped. The cursor is (txid, seq); a page that exhausts the visible rows advances it
        to the watermark, so filtered feeds do not re-scan what they already passed.
        ``has_more`` counts only changes below the watermark.
        """
        position = (0, 0) if cursor is None else decode_cursor(cursor, self.store_id, 2)
        txid, seq = position
        q = self.queries
        query, params = q.feed(where, txid, seq, limit + 1)
        with self.pool.connection() as conn, translated(self.target, "reading changes"), \
                conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        xmin = int(rows[0][0])
        if txid >= xmin:
            # every cursor issued stands below a snapshot's xmin, and xmin never goes back
            raise unknown_position(str(cursor))
        rows = [r for r in rows if r[1] is not None]
        nk = q.nk
        items = [Change(tuple(r[3:3 + nk]), r[3 + nk], r[4 + nk], r[5 + nk])
                 for r in rows[:limit]]
        if len(rows) > limit:
            last = rows[limit - 1]
            return ChangePage(items, encode_cursor(self.store_id, (last[1], last[2])), True)
        end = max((txid, seq), (xmin - 1, _SEQ_MAX))
        return ChangePage(items, encode_cursor(self.store_id, end), False)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections (idempotent; borrowed ones close when returned)."""
        self.pool.close()
        super().close()
