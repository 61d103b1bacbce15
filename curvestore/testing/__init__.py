"""Conformance suites every backend and codec must pass, shipped with the package.

A backend's test module subclasses the suites and provides a ``backend_url`` fixture::

    from curvestore.testing import BackendConformance, StoreSemantics

    class TestMyBackend(BackendConformance, StoreSemantics):
        @pytest.fixture
        def backend_url(self, tmp_path):
            return f"mine://{tmp_path}"

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures below are available
to third-party test suites without any conftest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curvestore.testing.backend import BackendConformance
    from curvestore.testing.codec import CodecConformance
    from curvestore.testing.objects import ObjectStoreConformance
    from curvestore.testing.replication import ReplicationConformance
    from curvestore.testing.stateful import StatefulConformance, StoreModelMachine
    from curvestore.testing.store import StoreSemantics

__all__ = [
    "BackendConformance",
    "CodecConformance",
    "ObjectStoreConformance",
    "ReplicationConformance",
    "StatefulConformance",
    "StoreModelMachine",
    "StoreSemantics",
]

# Loaded on first use: this module is a pytest plugin, imported by every pytest run, so it
# must not pull in pandas, numpy or hypothesis by itself.
_LAZY = {
    "BackendConformance": "curvestore.testing.backend",
    "CodecConformance": "curvestore.testing.codec",
    "ObjectStoreConformance": "curvestore.testing.objects",
    "ReplicationConformance": "curvestore.testing.replication",
    "StatefulConformance": "curvestore.testing.stateful",
    "StoreModelMachine": "curvestore.testing.stateful",
    "StoreSemantics": "curvestore.testing.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curvestore.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def pytest_configure(config: Any) -> None:
    """Register the ``slow`` marker the suites use, so ``--strict-markers`` runs accept it."""
    config.addinivalue_line("markers", "slow: long-running (kills processes, many iterations)")
