"""PostgreSQL backend (psycopg 3, the ``[postgres]`` extra, imported lazily).

``postgresql://user@host:port/db?table=load_curves&schema=public`` (or ``postgres://``);
libpq's environment (PGHOST, PGUSER, PGPASSWORD, PGSERVICE, ~/.pgpass ...) fills what the URL
omits. Importing this package never needs psycopg; opening a store does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._ddl import create_statements, upgrade_statements

if TYPE_CHECKING:
    from curvestore.backends.postgres._backend import PostgresBackend
    from curvestore.backends.postgres._connect import PostgresConnectionError, PostgresError

__all__ = ["PostgresBackend", "PostgresConnectionError", "PostgresError", "create_statements",
           "upgrade_statements"]


def __getattr__(name: str) -> Any:
    if name == "PostgresBackend":
        from curvestore.backends.postgres._backend import PostgresBackend

        return PostgresBackend
    if name in ("PostgresError", "PostgresConnectionError"):
        from curvestore.backends.postgres import _connect

        return getattr(_connect, name)
    raise AttributeError(name)
