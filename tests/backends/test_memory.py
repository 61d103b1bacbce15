"""The memory backend, the reference implementation, passes every shipped suite."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from curvestore.backends.memory import MemoryBackend
from curvestore.testing import (
    BackendConformance,
    ReplicationConformance,
    StatefulConformance,
    StoreSemantics,
)

_NAMES: list[str] = []


def _url() -> str:
    _NAMES.append(uuid.uuid4().hex)
    return f"memory://{_NAMES[-1]}"


class TestMemory(StoreSemantics, BackendConformance, StatefulConformance,
                 ReplicationConformance):
    shared_between_processes = False  # a memory store lives in one process

    @pytest.fixture(autouse=True)
    def _forget(self) -> Iterator[None]:
        yield
        while _NAMES:
            MemoryBackend.forget(_NAMES.pop())

    @pytest.fixture
    def backend_url_factory(self) -> Callable[[], str]:
        return _url
