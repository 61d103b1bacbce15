"""PostgreSQL helpers shared by the benchmarks: URLs for psycopg and Django, table sizes and the
server's facts. psycopg is imported only when a server is queried."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

PG_BYTES_HOW = ("pg_total_relation_size of the tables (heap + TOAST + indexes), no VACUUM")
# libpq parameters a postgresql:// URL may carry (curvestore's own options are dropped)
LIBPQ_URL_OPTIONS = frozenset({
    "application_name", "connect_timeout", "gssencmode", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "options", "passfile", "service", "sslcert",
    "sslcrl", "sslkey", "sslmode", "sslrootcert", "target_session_attrs", "tcp_user_timeout"})


def is_pg(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def pg_plain_url(url: str) -> str:
    """A postgresql:// URL without curvestore's options (libpq ones kept), for psycopg."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in LIBPQ_URL_OPTIONS])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def django_postgres(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a postgresql:// URL (libpq env fills what it omits)."""
    parts = urlsplit(url)
    options = {k: v for k, v in parse_qsl(parts.query) if k in LIBPQ_URL_OPTIONS}
    return {"ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE")
            or (None if "service" in options else os.environ.get("PGUSER", "postgres")),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": str(parts.port or ""), "OPTIONS": options,
            "CONN_MAX_AGE": None}


def pg_sizes(cursor: Any, tables: list[str], payload_column: str | None = None,
             schema: str = "public") -> dict[str, int]:
    """Sizes of ``tables`` (in ``schema``): total (heap + TOAST + indexes), and the parts."""
    total = heap = toast = indexes = payload = 0
    for i, table in enumerate(tables):
        name = f'"{schema}"."{table}"'
        cursor.execute(
            "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
            "coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), "
            "pg_indexes_size(c.oid) FROM pg_class c WHERE c.oid = to_regclass(%s)", [name])
        row = cursor.fetchone()
        if row is None:
            continue
        total += int(row[0])
        heap += int(row[1])
        toast += int(row[2])
        indexes += int(row[3])
        if payload_column and i == 0:
            cursor.execute(f'SELECT coalesce(sum(octet_length("{payload_column}")), 0) '
                           f"FROM {name}")
            payload = int(cursor.fetchone()[0])
    return {"total": total, "heap": heap, "toast": toast, "indexes": indexes,
            "payload": payload}


def pg_server_facts(url: str, started_here: bool) -> dict[str, str]:
    import psycopg

    with psycopg.connect(pg_plain_url(url), autocommit=True) as conn:
        settings = dict(conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
            "('server_version', 'shared_buffers', 'fsync', 'synchronous_commit', "
            "'default_toast_compression', 'wal_level')").fetchall())
    facts = {"PostgreSQL": settings.pop("server_version", "?"),
             "PostgreSQL server": ("started by the bench (initdb into a temp dir, 127.0.0.1, "
                                   "trust auth; durability defaults)" if started_here
                                   else "given by --url")}
    facts["PostgreSQL settings"] = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return facts
