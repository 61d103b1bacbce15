"""An SQLite backend: one database file holds the manifest, the chunks and the change log.

SQLite serialises writers (``BEGIN IMMEDIATE``), so a transaction's read-merge-write is
atomic across processes, a batch commits all-or-nothing, and the log's autoincrement sequence
is the commit order: a safe change-feed cursor.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from curvestore.backends import (
    Backend,
    Change,
    ChangePage,
    ChunkMeta,
    ChunkRecord,
    SeriesKey,
    StoreURL,
    Transaction,
    bound_schema,
    decode_cursor,
    encode_cursor,
    stale_state,
    unknown_position,
)
from curvestore.errors import ConfigurationError, StoreExistsError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    series TEXT NOT NULL, chunk INTEGER NOT NULL, meta TEXT NOT NULL, payload BLOB NOT NULL,
    deleted INTEGER NOT NULL, PRIMARY KEY (series, chunk));
CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, series TEXT NOT NULL, chunk INTEGER NOT NULL,
    version INTEGER NOT NULL, deleted INTEGER NOT NULL);
"""


def _series(key: SeriesKey) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _record(series: str, meta: str, payload: bytes) -> ChunkRecord:
    return ChunkRecord(tuple(json.loads(series)), ChunkMeta.from_dict(json.loads(meta)), payload)


class _SQLiteTransaction(Transaction):
    def __init__(self, backend: SQLiteBackend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.committed = []
        self.pending: list[Change] = []

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return [r.meta for r in self.backend.read_chunks(key)]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self.backend.read_chunks(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        db = self.backend.db
        now = time.time_ns()
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
            series = _series(record.key)
            row = db.execute("SELECT meta FROM chunks WHERE series = ? AND chunk = ?",
                             (series, record.chunk)).fetchone()
            version = (json.loads(row[0])["version"] if row else 0) + 1
            final = record.with_meta(version=version, updated_at=record.meta.updated_at or now)
            db.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?)",
                (series, record.chunk, json.dumps(final.meta.to_dict()), record.payload,
                 int(record.meta.deleted)),
            )
            db.execute("INSERT INTO changes (series, chunk, version, deleted) VALUES (?,?,?,?)",
                       (series, record.chunk, version, int(record.meta.deleted)))
            self.pending.append(Change(record.key, record.chunk, version, record.meta.deleted))


    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        # the transaction holds SQLite's write lock (BEGIN IMMEDIATE): compare, then set
        if self.backend.get_state(name) != expected:
            raise stale_state(name)
        self.backend.db.execute("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", (name, value))


class SQLiteBackend(Backend):
    schemes = ("sqlite",)

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> SQLiteBackend:
        url.reject_unknown_options(frozenset())
        path = url.netloc + url.path
        if not path:
            raise ConfigurationError("sqlite URLs are sqlite:///absolute/path.db")
        return cls(path, read_only=read_only)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={self.path!r})"

    def read_manifest(self) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute("SELECT body FROM manifest").fetchone()
        self._manifest = json.loads(row[0]) if row else None
        return self._manifest

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        self.check_writable()
        with self.lock:
            try:
                self.db.execute("INSERT INTO manifest VALUES (1, ?)", (json.dumps(manifest),))
            except sqlite3.IntegrityError as exc:
                raise StoreExistsError(f"a store already exists in {self.path}") from exc
        self._manifest = manifest

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        with self.lock:
            rows = self.db.execute(
                "SELECT series, meta, payload FROM chunks WHERE series = ? AND deleted = 0 "
                "AND chunk >= ? AND chunk <= ? ORDER BY chunk",
                (_series(key), -(2**62) if lo is None else lo, 2**62 if hi is None else hi),
            ).fetchall()
        return [_record(*row) for row in rows]

    def _keys(self, where: Mapping[str, Any]) -> list[SeriesKey]:
        schema = bound_schema(self.schema)  # RuntimeError if bind() was never called
        with self.lock:
            rows = self.db.execute(
                "SELECT DISTINCT series FROM chunks WHERE deleted = 0").fetchall()
        keys = (tuple(json.loads(r[0])) for r in rows)
        return sorted(k for k in keys if schema.matches(k, where))

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        for key in self._keys(where):
            records = self.read_chunks(key, lo, hi)
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, records in self.scan(where):
            yield key, [r.meta for r in records]

    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[Transaction]:
        self.check_writable()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            tx = _SQLiteTransaction(self, keys)
            try:
                yield tx
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            tx.committed = tx.pending

    def get_state(self, name: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM sync_state WHERE name = ?",
                                  (name,)).fetchone()
        return None if row is None else str(row[0])

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        schema = bound_schema(self.schema)
        store_id = (self._manifest or {}).get("store_id", "")
        seq = 0 if cursor is None else decode_cursor(cursor, store_id, 1)[0]
        items: list[Change] = []
        with self.lock:
            if seq and self.db.execute("SELECT 1 FROM changes WHERE seq = ?",
                                       (seq,)).fetchone() is None:
                raise unknown_position(str(cursor))  # a cursor names a logged change
            while len(items) < limit:
                rows = self.db.execute(
                    "SELECT seq, series, chunk, version, deleted FROM changes WHERE seq > ? "
                    "ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
                if not rows:
                    return ChangePage(items, encode_cursor(store_id, (seq,)), False)
                for row_seq, series, chunk, version, deleted in rows:
                    seq = row_seq
                    key = tuple(json.loads(series))
                    if schema.matches(key, where):
                        items.append(Change(key, chunk, version, bool(deleted)))
                        if len(items) >= limit:
                            break
            more = self.db.execute("SELECT 1 FROM changes WHERE seq > ? LIMIT 1",
                                   (seq,)).fetchone() is not None
        return ChangePage(items, encode_cursor(store_id, (seq,)), more)

    def close(self) -> None:
        if not self.closed:
            self.db.close()
        super().close()
