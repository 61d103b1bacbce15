"""The shipped conformance suites on the ORM backend (``django://app_label.Model?using=alias``),
on each database of the run (``conftest.py``).

Each test gets empty tables; the URL factory hands out the two models of a format in turn
(a test needs at most two locations), except for the stateful suite, which empties its one
model for each example. The multi-process tests run too: child processes open
the same URLs, finding the ``django`` scheme through its entry point and the settings, the
database and the alias through the environment the session sets up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import testdb

from curvestore.testing import (
    BackendConformance,
    ReplicationConformance,
    StatefulConformance,
    StoreSemantics,
)
from curvestore.testing.store import PLAIN_NAME_KEYS

#: A model's key fields are the store's keys: ``id`` and ``data`` are holcstore's own fields.
MODEL_PLAIN_NAME_KEYS = {n: t for n, t in PLAIN_NAME_KEYS.items() if n not in ("id", "data")}


@pytest.fixture(autouse=True)
def children_find_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children started as ``python -c`` import the settings (DJANGO_SETTINGS_MODULE) from
    this directory; multiprocessing's children get the parent's ``sys.path`` anyway."""
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p))


def _factory(models: tuple[str, ...], database: str) -> Callable[[], str]:
    it = iter(models)
    return lambda: f"django://testapp.{next(it)}?using={database}"


class TestDjangoFramed(StoreSemantics, BackendConformance, ReplicationConformance):
    """Curvestore framing: payloads, codecs and checksums are kept as the core made them."""

    plain_name_keys = MODEL_PLAIN_NAME_KEYS

    @pytest.fixture
    def backend_url_factory(self, database: str) -> Callable[[], str]:
        return _factory(("FramedConformanceA", "FramedConformanceB"), database)

    @pytest.fixture
    def plain_name_url(self, database: str) -> str:
        return f"django://testapp.PlainNameFramed?using={database}"

    @pytest.fixture
    def single_key_url(self, database: str) -> str:
        return f"django://testapp.SingleKeyFramed?using={database}"


class TestDjangoOrmPaths(StoreSemantics, BackendConformance):
    """A model with a UUID primary key, which the adapter's PostgreSQL paths do not take:
    the ORM paths on PostgreSQL too. Races between writers are proved here by the threads
    test; the multi-process tests are left to ``TestDjangoFramed`` (its SQLite run takes the
    ORM paths), to keep the suite's time down."""

    plain_name_keys = MODEL_PLAIN_NAME_KEYS

    def require_processes(self) -> None:
        pytest.skip("multi-process tests: see TestDjangoFramed")

    @pytest.fixture
    def backend_url_factory(self, database: str) -> Callable[[], str]:
        return _factory(("UuidConformanceA", "UuidConformanceB"), database)

    @pytest.fixture
    def plain_name_url(self, database: str) -> str:
        return f"django://testapp.PlainNameUuid?using={database}"

    @pytest.fixture
    def single_key_url(self, database: str) -> str:
        return f"django://testapp.SingleKeyUuid?using={database}"


class TestDjangoHolcstoreFormat(StoreSemantics):
    """holcstore's blob format: same semantics (chunks are re-encoded, so codec ids and
    payload bytes are not kept, which the codec test checks)."""

    plain_name_keys = MODEL_PLAIN_NAME_KEYS

    @pytest.fixture
    def backend_url_factory(self, database: str) -> Callable[[], str]:
        return _factory(("HolcConformanceA", "HolcConformanceB"), database)

    @pytest.fixture
    def plain_name_url(self, database: str) -> str:
        return f"django://testapp.PlainNameHolc?using={database}"

    @pytest.fixture
    def single_key_url(self, database: str) -> str:
        return f"django://testapp.SingleKeyHolc?using={database}"

    def test_codec_change_keeps_old_chunks_readable(self) -> None:  # type: ignore[override]
        pytest.skip("holcstore's format has no codec id: every chunk is an LZ4 frame")


class TestDjangoStateful(StatefulConformance):
    """Random operation sequences against a pandas model, in both blob formats; every
    Hypothesis example starts from the model's table emptied, manifest included."""

    @pytest.fixture(params=["StatefulFramed", "StatefulHolc"])
    def backend_url_factory(self, request: pytest.FixtureRequest, database: str
                            ) -> Callable[[], str]:
        return lambda: testdb.clear_store(f"testapp.{request.param}", database)
