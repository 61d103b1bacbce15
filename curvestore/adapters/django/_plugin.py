"""Registers the ``django://app_label.Model`` backend scheme (a curvestore plugin module)."""

from __future__ import annotations

from curvestore.hookspecs import hookimpl
from curvestore.registry import Registrar

PLUGIN_NAME = "curvestore_django"


@hookimpl
def register_backends(register: Registrar) -> None:
    register.backend(("django",), "curvestore.adapters.django.url:DjangoURL",
                     extra="django")


def ensure_registered() -> None:
    """Register this module with the plugin manager once, then rebuild the registry.

    An entry point in the ``curvestore`` group would make the scheme known without Django
    being set up (child processes); until then the app registers it in ``ready()``.
    """
    import sys

    from curvestore.plugins import get_plugin_manager
    from curvestore.registry import get_registry, reset_registry

    pm = get_plugin_manager()
    module = sys.modules[__name__]
    if pm.is_registered(module) or "django" in get_registry().backends:
        return
    pm.register(module, name=PLUGIN_NAME)
    reset_registry()
