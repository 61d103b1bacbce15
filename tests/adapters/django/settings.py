"""Django settings for the adapter's tests: two databases, SQLite and PostgreSQL.

The whole suite runs once per database (``conftest.py``): :mod:`testdb` sends every model to
the database of the current run. ``default`` is deliberately left unconfigured (Django's dummy
backend), so code that ignores the router or a store's ``using`` alias fails loudly instead of
quietly touching the other database.

* ``sqlite``: a file in a temporary directory, kept in ``CURVESTORE_TEST_SQLITE`` so that child
  processes open the same file.
* ``postgresql``: the database named by ``CURVESTORE_TEST_DJANGO_POSTGRES`` (a
  ``postgresql://`` URL). The test session sets it once it has a server (the throw-away one of
  :mod:`curvestore.testing.postgres_server`, or ``CURVESTORE_TEST_POSTGRES_URL``) and created a
  database on it; child processes inherit it. Absent when psycopg is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

from curvestore.testing.postgres_server import django_database

SECRET_KEY = "curvestore-tests"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["curvestore.adapters.django", "testapp"]
DATABASE_ROUTERS = ["testdb.ActiveDatabaseRouter"]

#: Environment variables shared with child processes.
SQLITE_ENV = "CURVESTORE_TEST_SQLITE"
POSTGRES_ENV = "CURVESTORE_TEST_DJANGO_POSTGRES"


def sqlite_database() -> dict[str, Any]:
    path = os.environ.get(SQLITE_ENV)
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="curvestore-django-"), "db.sqlite3")
        os.environ[SQLITE_ENV] = path  # child processes share the file
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "TEST": {"NAME": path},
        # IMMEDIATE: writers take the lock up front, so threads wait instead of failing
        "OPTIONS": {"timeout": 60, "transaction_mode": "IMMEDIATE"},
    }


def postgres_database(url: str | None) -> dict[str, Any]:
    """The settings of a ``postgresql://user:password@host:port/name`` URL (None: Django's
    dummy backend until the test session fills them in, before the first connection, so
    that management commands run outside the tests skip the alias)."""
    if not url:
        return {"ENGINE": "django.db.backends.dummy"}
    return django_database(url)


DATABASES: dict[str, dict[str, Any]] = {"default": {}, "sqlite": sqlite_database()}
if importlib.util.find_spec("psycopg") is not None:
    DATABASES["postgresql"] = postgres_database(os.environ.get(POSTGRES_ENV))
