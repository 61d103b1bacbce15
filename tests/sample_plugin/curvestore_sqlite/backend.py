"""An SQLite backend: one database file holds the manifest, the chunks and the change log.

SQLite serialises writers (``BEGIN IMMEDIATE``), so a transaction's read-merge-write is
atomic across processes, a batch commits all-or-nothing, and the log's autoincrement sequence
is the commit order: the change feed's position. The core does the rest (read-only and key
checks, cursors, key filters of the feed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from curvestore.backends import (
    Backend,
    Change,
    ChunkMeta,
    ChunkRecord,
    FeedBatch,
    Position,
    SeriesKey,
    StoreURL,
    Transaction,
    bound_schema,
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


class _SQLiteTransaction(Transaction):
    """Runs inside ``BEGIN IMMEDIATE`` (SQLite's write lock) from begin to commit or abort."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self.backend = backend
        self.changes: list[Change] = []

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self.backend.read_chunks(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        db, now = self.backend.db, time.time_ns()
        for record in records:
            series = _series(record.key)
            row = db.execute("SELECT meta FROM chunks WHERE series = ? AND chunk = ?",
                             (series, record.chunk)).fetchone()
            meta = record.meta.committed((json.loads(row[0])["version"] if row else 0) + 1, now)
            db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?)",
                       (series, meta.chunk, json.dumps(meta.to_dict()), record.payload,
                        int(meta.deleted)))
            db.execute("INSERT INTO changes (series, chunk, version, deleted) VALUES (?,?,?,?)",
                       (series, meta.chunk, meta.version, int(meta.deleted)))
            self.changes.append(Change(record.key, meta.chunk, meta.version, meta.deleted))

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        if self.backend.get_state(name) != expected:  # under the write lock: compare, then set
            raise stale_state(name)
        self.backend.db.execute("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", (name, value))

    def commit(self) -> list[Change]:
        self._end("COMMIT")
        return self.changes

    def abort(self) -> None:
        self._end("ROLLBACK")

    def _end(self, statement: str) -> None:
        try:
            self.backend.db.execute(statement)
        finally:
            self.backend.lock.release()


class SQLiteBackend(Backend):
    schemes = ("sqlite",)

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.path = path
        self.lock = threading.RLock()  # one connection, shared by the store's threads
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> SQLiteBackend:
        url.reject_unknown_options(frozenset())
        if not url.netloc + url.path:
            raise ConfigurationError("sqlite URLs are sqlite:///absolute/path.db")
        return cls(url.netloc + url.path, read_only=read_only)

    def __repr__(self) -> str:
        return f"SQLiteBackend(path={self.path!r})"

    def _query(self, sql: str, *params: Any) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    def read_manifest(self) -> dict[str, Any] | None:
        rows = self._query("SELECT body FROM manifest")
        return json.loads(rows[0][0]) if rows else None

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        try:
            self._query("INSERT INTO manifest VALUES (1, ?)", json.dumps(manifest))
        except sqlite3.IntegrityError as exc:
            raise StoreExistsError(f"a store already exists in {self.path}") from exc

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        rows = self._query("SELECT meta, payload FROM chunks WHERE series = ? AND deleted = 0 "
                           "AND chunk BETWEEN ? AND ? ORDER BY chunk", _series(key),
                           -(2**62) if lo is None else lo, 2**62 if hi is None else hi)
        return [ChunkRecord(key, ChunkMeta.from_dict(json.loads(m)), p) for m, p in rows]

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        schema = bound_schema(self.schema)
        rows = self._query("SELECT DISTINCT series FROM chunks WHERE deleted = 0")
        return iter(sorted(k for k in (tuple(json.loads(r[0])) for r in rows)
                           if schema.matches(k, where)))

    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        self.lock.acquire()  # released by the transaction's commit or abort
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return _SQLiteTransaction(self)

    def get_state(self, name: str) -> str | None:
        rows = self._query("SELECT value FROM sync_state WHERE name = ?", name)
        return str(rows[0][0]) if rows else None

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        seq = 0 if after is None else after[0]
        if seq and not self._query("SELECT 1 FROM changes WHERE seq = ?", seq):
            raise unknown_position()  # every position issued names a logged change
        while rows := self._query("SELECT seq, series, chunk, version, deleted FROM changes "
                                  "WHERE seq > ? ORDER BY seq LIMIT ?", seq, limit + 1):
            for seq, series, chunk, version, deleted in rows:
                yield FeedBatch((seq,), (Change(tuple(json.loads(series)), chunk, version,
                                                bool(deleted)),))

    def close(self) -> None:
        if not self.closed:
            self.db.close()
        super().close()
