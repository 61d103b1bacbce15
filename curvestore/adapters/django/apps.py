"""The Django app: ``INSTALLED_APPS += ["curvestore.adapters.django"]`` (label ``curvestore``)."""

from __future__ import annotations

from django.apps import AppConfig


class CurvestoreDjangoConfig(AppConfig):
    name = "curvestore.adapters.django"
    label = "curvestore"
    verbose_name = "curvestore"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from curvestore.adapters.django._plugin import ensure_registered

        ensure_registered()
