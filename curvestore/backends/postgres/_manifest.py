"""Manifest and DDL of the PostgreSQL backend: the manifest row, creating (or checking) the
store's tables, and the replication target's sync-state table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._base import PgBackendBase
from curvestore.backends.postgres._connect import translated
from curvestore.backends.postgres._ddl import (
    COLUMN_PREFIX,
    LEGACY_PREFIX,
    MANIFEST_FIELD,
    META_COLUMNS,
    ddl_statements,
)
from curvestore.core.config import KeySchema
from curvestore.errors import ConfigurationError, IntegrityError, StoreExistsError

if TYPE_CHECKING:
    import psycopg


__all__ = ["PgManifest"]


def _has_fragments(settings: Any) -> bool:
    """Whether a manifest row's ``MANIFEST_FIELD`` says the store keeps appended days in a
    fragment table (stores created before it rewrite chunks on append)."""
    return isinstance(settings, dict) and settings.get("fragments") is True


def _column_prefix(settings: Any, backend: PgManifest) -> str:
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


class PgManifest(PgBackendBase):
    """The manifest row, the tables (created, or checked when a DBA created them) and the
    sync-state table of the replication cursors."""

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
        settings = manifest.pop(MANIFEST_FIELD, None)
        self._prefix = _column_prefix(settings, self)
        self._fragments = _has_fragments(settings)
        self._queries = None
        return manifest  # type: ignore[no-any-return]

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        """Create the missing tables and insert the manifest row, in one transaction.

        Tables created ahead of time by a DBA (see ``create_statements``) are kept, after
        checking their columns (those made by an older curvestore's statements, with
        unprefixed column names, too); an existing manifest row raises StoreExistsError.
        The prefix of the backend's own columns is recorded in the manifest row, and whether
        the store keeps appended days in a fragment table: it does when its chunk table is
        created here, or when a DBA created the fragment table with it; a chunk table made
        ahead of time without one (an older curvestore's statements) keeps rewriting chunks
        on append.
        """
        from psycopg import sql
        from psycopg.types.json import Jsonb

        keys = KeySchema.from_json(manifest["keys"])
        tables = {"chunks": self.names.table, "manifest": self.names.manifest,
                  "changes": self.names.changes, "sync_state": self.names.sync_state,
                  "fragments": self.names.fragments}
        with self.pool.connection() as conn, \
                translated(self.target, "creating the store"), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._store_lock])
            prefix = COLUMN_PREFIX
            fragments = True
            if self._regclass(conn, self.names.table) is not None:
                prefix = self._check_columns(conn, keys)
                fragments = self._regclass(conn, self.names.fragments) is not None
            if not fragments:
                del tables["fragments"]
            statements = ddl_statements(self.names, keys, prefix)
            for part, table in tables.items():
                if self._regclass(conn, table) is None:
                    for statement in statements[part]:
                        conn.execute(statement.encode())
            settings: dict[str, Any] = {"column_prefix": prefix}
            if fragments:
                settings["fragments"] = True
            stored = {**manifest, MANIFEST_FIELD: settings}
            inserted = conn.execute(
                sql.SQL("INSERT INTO {} (id, body) VALUES (1, %s) ON CONFLICT (id) "
                        "DO NOTHING").format(
                    sql.Identifier(self.names.schema, self.names.manifest)),
                [Jsonb(stored)]).rowcount
            if inserted != 1:
                raise StoreExistsError(f"a store already exists at {self!r}")
        self._prefix = prefix
        self._fragments = fragments
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

    # -- replication target ----------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        """The value saved under ``name`` by :meth:`PgTransaction.set_state`, or None
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
