"""The sample third-party distribution in tests/sample_plugin (pip-installed by CI) is found
through its entry point alone and passes the shipped conformance suites."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import curvestore
from curvestore.registry import get_codec, get_registry
from curvestore.testing import (
    BackendConformance,
    CodecConformance,
    ReplicationConformance,
    StoreSemantics,
)

if "sqlite" not in get_registry().backends:
    if os.environ.get("CI"):
        raise RuntimeError("the sample plugin is not installed: pip install ./tests/sample_plugin")
    pytest.skip("pip install ./tests/sample_plugin to run these", allow_module_level=True)


class TestSampleSQLiteBackend(StoreSemantics, BackendConformance, ReplicationConformance):
    @pytest.fixture
    def backend_url_factory(self, tmp_path: Path) -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"sqlite://{tmp_path}/store-{next(counter)}.db"


class TestSampleZlibCodec(CodecConformance):
    golden_dir = Path(__file__).parent / "sample_plugin" / "fixtures"
    codec_factory = staticmethod(lambda: get_codec("zlib"))


def test_store_uses_the_plugin_codec(tmp_path: Path) -> None:
    store = curvestore.create_store(f"sqlite://{tmp_path}/c.db", keys=["k"], freq="1h",
                                    tz="UTC", codec="zlib")
    import pandas as pd

    index = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    store.write({"k": "a"}, pd.Series([1.0, 2.0, 3.0], index=index))
    assert [r.meta.codec for r in store.backend.read_chunks(("a",))] == ["zlib"]
    assert store.read({"k": "a"}).tolist() == [1.0, 2.0, 3.0]
