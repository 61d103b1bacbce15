"""The state the parts of :class:`~curvestore.backends.postgres.PostgresBackend` share:
the connection pool, the table names, the store's statements (built from its key schema and
column prefix) and the advisory lock ids.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._connect import ConnectionTarget, Pool
from curvestore.backends.postgres._ddl import COLUMN_PREFIX, Names
from curvestore.core.backend import Backend
from curvestore.core.config import KeySchema

if TYPE_CHECKING:
    import psycopg

    from curvestore.backends.postgres._queries import Queries

__all__ = ["PgBackendBase", "lock_id"]


def lock_id(text: str, size: int) -> int:
    """A stable signed hash (``size`` bytes) for advisory lock ids."""
    digest = hashlib.blake2b(text.encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgBackendBase(Backend):
    """What every part of the PostgreSQL backend shares: the connection pool, the table
    names, the store's statements and its lock ids."""

    def __init__(self, target: ConnectionTarget, names: Names, *,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.target = target
        self.names = names
        self.pool = Pool(target)
        self._queries: Queries | None = None
        self._store_lock = lock_id(f"curvestore:{names.qualified}", 8)
        self._store_lock32 = lock_id(f"curvestore:{names.qualified}", 4)
        self._ddl_lock = lock_id(f"curvestore-ddl:{names.qualified}", 8)
        self._has_state_table = False
        self._prefix = COLUMN_PREFIX  # of the backend's own columns; set from the manifest
        #: whether appended days go to the fragment table (set from the manifest)
        self._fragments = False

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
            self._queries = Queries(self.names, self.schema, self._prefix, self._fragments)
        return self._queries

    def bind(self, schema: KeySchema) -> None:
        super().bind(schema)
        self._queries = None

    def _regclass(self, conn: psycopg.Connection[Any], table: str) -> Any:
        row = conn.execute("SELECT to_regclass(%s)",
                           [f'"{self.names.schema}"."{table}"']).fetchone()
        return None if row is None else row[0]
