"""The in-process object store: the shipped conformance suite (its process tests skip: a
memory store lives in one process)."""

from __future__ import annotations

import pickle

import pytest

from curvestore.objects import MemoryObjectStore, ObjectStore
from curvestore.testing.objects import ObjectStoreConformance


class TestMemoryObjects(ObjectStoreConformance):
    shared_between_processes = False

    @pytest.fixture
    def object_store(self) -> ObjectStore:
        return MemoryObjectStore("test")


def test_memory_store_refuses_to_pickle() -> None:
    """A copy in another process would silently diverge: pickling is refused."""
    with pytest.raises(TypeError, match="cannot be sent to another process"):
        pickle.dumps(MemoryObjectStore())
