"""The log-structured engine passes every shipped suite, on local files and in memory."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from curvestore.engine.backend import EngineBackend
from curvestore.testing import (
    BackendConformance,
    ReplicationConformance,
    StatefulConformance,
    StoreSemantics,
)


class TestEngineFiles(StoreSemantics, BackendConformance, StatefulConformance,
                      ReplicationConformance):
    @pytest.fixture
    def backend_url_factory(self, tmp_path: Path) -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"file://{tmp_path}/engine-{next(counter)}"


class TestEngineMemory(StoreSemantics, BackendConformance, ReplicationConformance):
    shared_between_processes = False  # a memory store lives in one process
    _names: ClassVar[list[str]] = []

    @pytest.fixture(autouse=True)
    def _forget(self) -> Iterator[None]:
        yield
        while self._names:
            EngineBackend.forget(self._names.pop())

    @pytest.fixture
    def backend_url_factory(self) -> Callable[[], str]:
        def url() -> str:
            self._names.append(uuid.uuid4().hex)
            return f"engine+memory://{self._names[-1]}"

        return url
