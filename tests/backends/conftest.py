"""PostgreSQL fixtures: one throw-away server per test session, one fresh table per test.

Without ``CURVESTORE_TEST_POSTGRES_URL``, the server is started by
:func:`curvestore.testing.postgres_server.postgres_server`. When it cannot start (or psycopg is
missing), the PostgreSQL tests are skipped with the reason, except under CI (``CI=true``),
where that is an error: CI must never pass without having run them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from curvestore.testing.postgres_server import PostgresUnavailable, postgres_server
from curvestore.testing.services import service_unavailable


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server (without a table option)."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        service_unavailable("PostgreSQL", f'psycopg is not installed ({exc}); '
                                          'pip install "curvestore[postgres]"')
    try:
        with postgres_server() as url:
            yield url
    except (PostgresUnavailable, OSError) as exc:
        service_unavailable("PostgreSQL", str(exc))


def _with(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


@pytest.fixture
def pg_table_url(postgres_url: str) -> Callable[[], str]:
    """A factory of URLs naming fresh, unique tables on the session's server."""
    return lambda: _with(postgres_url, f"table=t_{uuid.uuid4().hex[:20]}")
