"""The filesystem backend passes every shipped suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from curvestore.testing import (
    BackendConformance,
    ReplicationConformance,
    StatefulConformance,
    StoreSemantics,
)


class TestFilesystem(StoreSemantics, BackendConformance, StatefulConformance,
                     ReplicationConformance):
    @pytest.fixture
    def backend_url_factory(self, tmp_path: Path) -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"file-shards://{tmp_path}/store-{next(counter)}"


class TestFilesystemWithoutFsync(StoreSemantics):
    """The fsync=false mode changes only durability, never semantics."""

    @pytest.fixture
    def backend_url_factory(self, tmp_path: Path) -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"file-shards://{tmp_path}/nofsync-{next(counter)}?fsync=false"
