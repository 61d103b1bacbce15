"""The shipped conformance suites on the ORM backend (``django://app_label.Model``).

Each test gets empty tables; the URL factory hands out the two models of a format in turn
(a test needs at most two locations). The multi-process tests are skipped: child processes
cannot resolve the ``django`` scheme until it is registered through an entry point.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from curvestore.testing import BackendConformance, ReplicationConformance, StoreSemantics


def _factory(models: tuple[str, ...]) -> Callable[[], str]:
    it = iter(models)
    return lambda: f"django://testapp.{next(it)}"


class TestDjangoFramed(StoreSemantics, BackendConformance, ReplicationConformance):
    """Curvestore framing: payloads, codecs and checksums are kept as the core made them."""

    shared_between_processes = False

    @pytest.fixture
    def backend_url_factory(self) -> Callable[[], str]:
        return _factory(("FramedConformanceA", "FramedConformanceB"))


class TestDjangoHolcstoreFormat(StoreSemantics):
    """holcstore's blob format: same semantics (chunks are re-encoded, so codec ids and
    payload bytes are not kept, which the codec test checks)."""

    @pytest.fixture
    def backend_url_factory(self) -> Callable[[], str]:
        return _factory(("HolcConformanceA", "HolcConformanceB"))

    def test_codec_change_keeps_old_chunks_readable(self) -> None:  # type: ignore[override]
        pytest.skip("holcstore's format has no codec id: every chunk is an LZ4 frame")
