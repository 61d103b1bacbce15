"""The tests' database plumbing: the router that sends every model to the database the tests
currently run on (``settings.DATABASES``), and table cleanup.

The router's choice is a module-level value rather than a thread-local: the tests' worker
threads and the HTTP server's threads must see the same database as the test that started
them. Child processes start from ``CURVESTORE_TEST_DJANGO_DB``, which the test session sets for
each database.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "CURVESTORE_TEST_DJANGO_DB"

#: The alias every model reads from and writes to...
active: str = os.environ.get(ENV, "sqlite")
#: ...except these (``app_label.modelname`` → alias), for tests that use both databases.
pinned: dict[str, str] = {}


def activate(alias: str) -> None:
    """Send every model to ``alias`` (the caller sets :data:`ENV` for child processes)."""
    global active
    active = alias


def clear_tables(alias: str) -> None:
    """Empty every table of the test app and of the adapter on ``alias``, skipping models
    that tests define on the fly (they have no table)."""
    from django.apps import apps
    from django.db import connections

    existing = set(connections[alias].introspection.table_names())
    for model in [*apps.get_app_config("testapp").get_models(),
                  *apps.get_app_config("curvestore").get_models()]:
        if model._meta.db_table in existing:
            model._base_manager.using(alias).all()._raw_delete(alias)


def clear_store(label: str, alias: str) -> str:
    """Empty the chunk store of model ``label`` on ``alias``, manifest and feed included, so
    that a store can be created there again; returns its ``django://`` URL."""
    from django.apps import apps

    from curvestore.adapters.django.bookkeeping import ChunkChange, StoreManifest, SyncState

    model = apps.get_model(label)
    table = model._meta.db_table
    model._base_manager.using(alias).all()._raw_delete(alias)
    for bookkeeping in (StoreManifest, ChunkChange, SyncState):
        bookkeeping.objects.using(alias).filter(store=table)._raw_delete(alias)
    return f"django://{label}?using={alias}"


class ActiveDatabaseRouter:
    @staticmethod
    def _alias(model: type) -> str:
        return pinned.get(model._meta.label_lower, active)  # type: ignore[attr-defined]

    def db_for_read(self, model: type, **hints: Any) -> str:
        return self._alias(model)

    def db_for_write(self, model: type, **hints: Any) -> str:
        return self._alias(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db != "default"
