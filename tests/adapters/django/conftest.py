"""Configures Django for the adapter tests (see settings.py) and runs every test on two
databases: PostgreSQL, then SQLite.

``database`` is a session fixture parametrised by the database alias, used by every test of
this directory, so pytest runs the whole directory once per database (PostgreSQL first: its
server stops when pytest moves on to SQLite, instead of idling until the session ends).

For PostgreSQL it starts the throw-away server of :mod:`curvestore.testing.postgres_server`
(or uses ``CURVESTORE_TEST_POSTGRES_URL``), creates a fresh database on it, points the
``postgresql`` alias at it, and drops it afterwards. A server that cannot start skips the
PostgreSQL run, except under CI (``CI=true``), where every PostgreSQL test fails. Each
database is migrated once (``migrate``), and every test starts from empty tables. Tests reach
the database directly (threads included), so the session unblocks pytest-django's database
guard instead of marking each test.

Child processes (the multi-process conformance tests) open the same databases: they inherit
``DJANGO_SETTINGS_MODULE``, the SQLite file, the PostgreSQL database's URL and the active alias
through the environment (and this directory on ``PYTHONPATH``, see the conformance tests).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.importorskip("django")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

import settings as test_settings  # noqa: E402
import testdb  # noqa: E402

from curvestore.testing.postgres_server import PostgresUnavailable, postgres_server  # noqa: E402
from curvestore.testing.services import service_unavailable  # noqa: E402

DATABASES = ("postgresql", "sqlite")


@contextmanager
def _postgres_database(env: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, set as the ``postgresql`` alias;
    dropped on exit."""
    from django.conf import settings
    from django.db import connections

    if "postgresql" not in settings.DATABASES:
        service_unavailable("PostgreSQL",
                            'psycopg is not installed; pip install "curvestore[postgres]"')
    import psycopg
    from psycopg import sql

    with ExitStack() as stack:
        try:
            server_url = stack.enter_context(postgres_server())
        except (PostgresUnavailable, OSError) as exc:
            service_unavailable("PostgreSQL", str(exc))
        # a database of its own: the migrations' table names are fixed, and a server given
        # by CURVESTORE_TEST_POSTGRES_URL may hold other things (or another test run)
        name = f"curvestore_django_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = urlparse(server_url)._replace(path=f"/{name}", query="").geturl()
            env.setenv(test_settings.POSTGRES_ENV, url)
            # the alias was a dummy at import; Django reads this same dict whenever it opens
            # a connection (its own test runner edits it the same way to rename databases)
            settings.DATABASES["postgresql"].update(test_settings.postgres_database(url))
            if connections["postgresql"].vendor != "postgresql":
                raise RuntimeError("the postgresql alias was opened before it was configured")
            yield url
        finally:
            connections["postgresql"].close()
            with psycopg.connect(server_url, autocommit=True) as admin:
                # FORCE: connections left open by finished worker threads
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(name)))


@pytest.fixture(scope="session", params=DATABASES, autouse=True)
def database(request: pytest.FixtureRequest, django_db_blocker: object) -> Iterator[str]:
    """The alias every model of this run uses (``sqlite`` or ``postgresql``), migrated."""
    from django.core.management import call_command
    from django.db import connections

    from curvestore.adapters.django._plugin import ensure_registered

    alias = request.param
    with pytest.MonkeyPatch.context() as env, ExitStack() as stack:
        env.setenv(testdb.ENV, alias)
        if alias == "postgresql":
            stack.enter_context(_postgres_database(env))
        stack.enter_context(django_db_blocker.unblock())  # type: ignore[attr-defined]
        testdb.activate(alias)
        call_command("migrate", database=alias, verbosity=0, interactive=False)
        ensure_registered()
        try:
            yield alias
        finally:
            connections[alias].close()


@pytest.fixture(autouse=True)
def empty_tables(database: str) -> Iterator[None]:
    testdb.clear_tables(database)
    yield
