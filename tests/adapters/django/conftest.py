"""Configures Django for the adapter tests (see settings.py) and provides a migrated database.

The database is set up once per session with the migrations (``migrate``), and every test
starts from empty tables. Tests reach the database directly (threads included), so the
session unblocks pytest-django's database guard instead of marking each test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()


def clear_tables() -> None:
    """Empty every table of the test app, skipping models that tests define on the fly
    (they have no table)."""
    from django.apps import apps
    from django.db import connection

    existing = set(connection.introspection.table_names())
    for model in [*apps.get_app_config("testapp").get_models(),
                  *apps.get_app_config("curvestore").get_models()]:
        if model._meta.db_table in existing:
            model._base_manager.all()._raw_delete(model._base_manager.db)


@pytest.fixture(scope="session", autouse=True)
def django_database(django_db_blocker: object) -> Iterator[None]:
    from django.core.management import call_command

    from curvestore.adapters.django._plugin import ensure_registered

    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        call_command("migrate", verbosity=0, interactive=False)
        ensure_registered()
        yield


@pytest.fixture(autouse=True)
def empty_tables(django_database: None) -> Iterator[None]:
    clear_tables()
    yield
