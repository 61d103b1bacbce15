"""Connections of the PostgreSQL backend: URL -> libpq conninfo, a tiny pool, error mapping.

Whatever the URL leaves out (host, port, user, password, database) is filled by libpq from
its environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSERVICE, ~/.pgpass ...):
the conninfo string is handed to psycopg untouched. The password is kept only inside that
string; reprs and error messages are built from the other parts, and any driver message that
quotes the password is scrubbed before it is raised.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from curvestore.core.url import StoreURL
from curvestore.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    ConflictError,
    CurvestoreError,
    InvalidKeyError,
    ReadOnlyError,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["ConnectionTarget", "Pool", "PostgresConnectionError", "PostgresError",
           "import_psycopg", "translate"]

# libpq connection parameters that may be given as URL options (passed through to libpq).
LIBPQ_OPTIONS = frozenset({
    "application_name", "connect_timeout", "gssencmode", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "options", "passfile", "service",
    "sslcert", "sslcrl", "sslkey", "sslmode", "sslrootcert", "target_session_attrs",
    "tcp_user_timeout",
})
_DEFAULT_CONNECT_TIMEOUT = "10"
_MAX_IDLE = 4


class PostgresError(CurvestoreError):
    """A PostgreSQL operation failed (the server's message, without credentials)."""


class PostgresConnectionError(PostgresError, ConnectionError):
    """The server cannot be reached, refused the login, or dropped the connection."""


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise BackendNotInstalledError("backend 'postgresql'", "postgres", str(exc)) from exc
    return psycopg


@dataclass(frozen=True)
class ConnectionTarget:
    """Where to connect: shown parts for messages, the full conninfo kept private."""

    host: str | None
    port: int | None
    user: str | None
    dbname: str | None
    conninfo: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_url(cls, url: StoreURL, options: dict[str, str]) -> ConnectionTarget:
        from psycopg.conninfo import make_conninfo

        host = unquote(url.hostname) if url.hostname else None
        user = unquote(url.username) if url.username else None
        password = unquote(url.password) if url.password is not None else None
        dbname = unquote(url.path.lstrip("/")) or None
        params: dict[str, Any] = {"host": host, "port": url.port, "user": user,
                                  "password": password, "dbname": dbname, **options}
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            params["connect_timeout"] = _DEFAULT_CONNECT_TIMEOUT
        conninfo = make_conninfo("", **{k: v for k, v in params.items() if v is not None})
        secrets = tuple(s for s in (password, url.password) if s)
        return cls(host, url.port, user, dbname, conninfo, secrets)

    def describe(self) -> str:
        where = f"{self.host or '(PGHOST)'}:{self.port or '(PGPORT)'}"
        return f"{where}/{self.dbname or '(PGDATABASE)'} as {self.user or '(PGUSER)'}"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def translate(exc: BaseException, target: ConnectionTarget, doing: str) -> BaseException:
    """The curvestore error for a psycopg error (the caller raises it ``from`` the cause
    only when the cause's text holds no secret: see :func:`raise_translated`)."""
    import psycopg
    from psycopg import errors as pe

    message = target.scrub(str(exc).strip())
    if isinstance(exc, pe.SerializationFailure | pe.DeadlockDetected | pe.LockNotAvailable
                  | pe.UniqueViolation):  # a writer that bypassed the locks won a race
        return ConflictError(f"{doing}: {message}")
    if isinstance(exc, pe.NumericValueOutOfRange):
        return InvalidKeyError(f"{doing}: a value does not fit its column: {message}")
    if isinstance(exc, pe.ReadOnlySqlTransaction):
        return ReadOnlyError(f"{doing}: {message}")
    if isinstance(exc, pe.InsufficientPrivilege):
        return PostgresError(f"{doing}: permission denied on {target.describe()}: {message}")
    if isinstance(exc, psycopg.OperationalError | pe.AdminShutdown):
        return PostgresConnectionError(
            f"{doing}: PostgreSQL at {target.describe()} is unavailable: {message}")
    if isinstance(exc, psycopg.ProgrammingError) and "connection option" in message:
        return ConfigurationError(f"{doing}: {message}")
    return PostgresError(f"{doing}: {message}")


@contextlib.contextmanager
def translated(target: ConnectionTarget, doing: str) -> Iterator[None]:
    """Turn psycopg errors raised inside the block into curvestore errors, without secrets."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        error = translate(exc, target, doing)
        if any(s in str(exc) for s in target.secrets):
            raise error from None
        raise error from exc


class Pool:
    """Connections reused across calls: each call borrows one for its duration, so threads
    do not share a connection and a streaming read does not block writes of the same backend.
    At most ``_MAX_IDLE`` idle connections are kept; broken ones are dropped."""

    def __init__(self, target: ConnectionTarget) -> None:
        self.target = target
        self.idle: list[psycopg.Connection[Any]] = []
        self.lock = threading.Lock()
        self.closed = False
        self.state: dict[int, set[str]] = {}  # id(conn) -> per-session objects created

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = import_psycopg()
        with translated(self.target, "connecting"):
            conn = psycopg.connect(self.target.conninfo, autocommit=True)
            # JIT compiles any plan whose estimated cost is high, as the bulk statements'
            # over session tables (no statistics) and lateral joins are: measured 0.4 s of
            # compiling for a 10,000-series statement that runs in 0.1 s without it
            conn.execute("SET jit = off")
            return conn  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self.closed:
            raise PostgresError("this PostgreSQL backend is closed")
        with self.lock:
            conn = self.idle.pop() if self.idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        finally:
            healthy = not conn.closed and not conn.broken and \
                conn.info.transaction_status == conn.info.transaction_status.IDLE
            with self.lock:
                if healthy and not self.closed and len(self.idle) < _MAX_IDLE:
                    self.idle.append(conn)
                    conn = None
            if conn is not None:
                self.state.pop(id(conn), None)
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        for conn in idle:
            self.state.pop(id(conn), None)
            with contextlib.suppress(Exception):
                conn.close()
