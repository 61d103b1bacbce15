"""Django settings for the adapter's tests: SQLite in a temporary file by default,
PostgreSQL when ``CURVESTORE_TEST_POSTGRES_URL`` is set (django-model-utils style)."""

from __future__ import annotations

import os
import tempfile
from urllib.parse import unquote, urlparse

SECRET_KEY = "curvestore-tests"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["curvestore.adapters.django", "testapp"]


def _database() -> dict:
    url = os.environ.get("CURVESTORE_TEST_POSTGRES_URL")
    if url:
        parts = urlparse(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    path = os.environ.get("CURVESTORE_TEST_SQLITE")
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="curvestore-django-"), "db.sqlite3")
        os.environ["CURVESTORE_TEST_SQLITE"] = path  # child processes share the file
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "TEST": {"NAME": path},
        # IMMEDIATE: writers take the lock up front, so threads wait instead of failing
        "OPTIONS": {"timeout": 60, "transaction_mode": "IMMEDIATE"},
    }


DATABASES = {"default": _database()}
