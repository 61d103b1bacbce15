"""The local-file object store: the shipped conformance suite plus what only files must prove
(temp-file sweeping, directory handling, the on-disk layout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from curvestore.objects import FileObjectStore, ObjectStore
from curvestore.testing.objects import ObjectStoreConformance


class TestFileObjects(ObjectStoreConformance):
    nested_keys = False
    @pytest.fixture
    def object_store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        with FileObjectStore(tmp_path / "objects") as store:
            yield store


class TestFileObjectsNoFsync(ObjectStoreConformance):
    """``fsync=False`` changes durability only: every concurrency guarantee holds."""

    nested_keys = False

    @pytest.fixture
    def object_store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        with FileObjectStore(tmp_path / "objects", fsync=False) as store:
            yield store
