"""Django settings for holcstore's own test suite (see ``run.py``).

``HOLCSTORE_SUITE_TARGET`` chooses what the suite runs against:

* ``holcstore``: holcstore's own app (``hostore``), for the baseline;
* ``adapter``: curvestore's Django app; ``hostore.*`` store modules are aliased to the adapter
  (``aliases.py``), and holcstore's test package stands in as the app labelled ``hostore``
  that its models without an explicit ``app_label`` belong to (it has no migrations: like
  holcstore's own tests, each test creates the tables it lacks).

``HOLCSTORE_SUITE_DATABASE_URL`` (a ``postgresql://`` URL) selects PostgreSQL; without it the
suite runs on SQLite, as holcstore's own settings do (an in-memory test database).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.apps import AppConfig

from curvestore.testing.postgres_server import django_database

TARGET = os.environ.get("HOLCSTORE_SUITE_TARGET", "adapter")
if TARGET not in ("holcstore", "adapter"):
    raise RuntimeError(f"HOLCSTORE_SUITE_TARGET must be 'holcstore' or 'adapter', not {TARGET!r}")


class HostoreTestsConfig(AppConfig):
    """holcstore's test package as the ``hostore`` app (adapter runs only)."""

    name = "hostore.tests"
    label = "hostore"
    default_auto_field = "django.db.models.BigAutoField"


SECRET_KEY = "curvestore-holcstore-suite"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "suite_urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    *(["hostore"] if TARGET == "holcstore" else
      ["curvestore.adapters.django", "suite_settings.HostoreTestsConfig"]),
]
MIGRATION_MODULES = {"hostore": None} if TARGET == "adapter" else {}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]


def _database() -> dict[str, Any]:
    url = os.environ.get("HOLCSTORE_SUITE_DATABASE_URL")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(tempfile.gettempdir(), "holcstore-suite.sqlite3")}
    return {
        **django_database(url),
        # run.py drops it (WITH FORCE: Django's own DROP fails while a closed session ends)
        "TEST": {"NAME": os.environ["HOLCSTORE_SUITE_TEST_DATABASE"]},
    }


DATABASES = {"default": _database()}
