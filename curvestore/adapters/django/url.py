"""The ``django://app_label.Model`` entry point, importable before Django is configured.

The registry imports a backend's target to list or open it; the ORM backend's module defines
models, which Django refuses to import before ``django.setup()``. This thin class defers that
import until a URL is actually opened, and turns a missing configuration into a clear error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from curvestore.errors import BackendNotInstalledError, ConfigurationError

if TYPE_CHECKING:
    from curvestore.adapters.django.backend import DjangoModelBackend
    from curvestore.core.url import StoreURL

__all__ = ["DjangoURL"]


def _import_django() -> Any:
    try:
        import django
    except ImportError as exc:
        raise BackendNotInstalledError("backend 'django'", "django", str(exc)) from exc
    return django


class DjangoURL:
    """Opens ``django://app_label.Model[?using=alias]`` as a :class:`DjangoModelBackend`."""

    schemes = ("django",)

    @classmethod
    def check_available(cls) -> None:
        _import_django()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> DjangoModelBackend:
        django = _import_django()
        from django.conf import settings

        if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise ConfigurationError(
                "django:// URLs need Django settings: set DJANGO_SETTINGS_MODULE or call "
                "settings.configure() first"
            )
        from django.apps import apps

        if not apps.ready:  # the backend module defines models: Django must be set up first
            from django.core.exceptions import ImproperlyConfigured

            try:
                django.setup()
            except (ImportError, ImproperlyConfigured) as exc:
                where = os.environ.get("DJANGO_SETTINGS_MODULE")
                settings_named = f" (DJANGO_SETTINGS_MODULE={where})" if where else ""
                raise ConfigurationError(
                    f"cannot set up Django{settings_named}: {type(exc).__name__}: {exc}"
                ) from exc
        from curvestore.adapters.django.backend import DjangoModelBackend

        return DjangoModelBackend.from_url(url, read_only=read_only)
