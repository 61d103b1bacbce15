"""In-process backend: ``memory://name`` (shared by name within a process) or ``memory://``
(a fresh, private store). The reference implementation for the conformance suites."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from curvestore.core.backend import Backend, Transaction, bound_schema, stale_state
from curvestore.core.cursor import unknown_position
from curvestore.core.records import (
    Change,
    ChunkRecord,
    FeedBatch,
    Position,
    SeriesKey,
)
from curvestore.core.url import StoreURL
from curvestore.errors import ConfigurationError, StoreExistsError

__all__ = ["MemoryBackend"]


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.manifest: dict[str, Any] | None = None
        self.series: dict[SeriesKey, dict[int, ChunkRecord]] = {}
        self.log: list[Change] = []
        self.states: dict[str, str] = {}


_NAMED: dict[str, _State] = {}
_NAMED_LOCK = threading.Lock()


class _MemoryTransaction(Transaction):
    """Holds the store's lock from begin to commit or abort: transactions run one at a time."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.staged: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        self.states: dict[str, tuple[str, str | None]] = {}

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self.backend.read_chunks(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        for record in records:
            self.staged[(record.key, record.chunk)] = record

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.states[name] = (value, expected)

    def commit(self) -> list[Change]:
        state = self.backend.state
        try:
            for name, (_value, expected) in self.states.items():
                if state.states.get(name) != expected:
                    raise stale_state(name)
            state.states.update({name: value for name, (value, _) in self.states.items()})
            now = time.time_ns()
            changes = []
            for (key, chunk), record in sorted(self.staged.items()):
                version = len(state.log) + 1
                committed = ChunkRecord(key, record.meta.committed(version, now), record.payload)
                state.series.setdefault(key, {})[chunk] = committed
                change = Change(key, chunk, version, record.meta.deleted)
                state.log.append(change)
                changes.append(change)
            return changes
        finally:
            state.lock.release()

    def abort(self) -> None:
        self.backend.state.lock.release()


class MemoryBackend(Backend):
    """Chunks in a dict, guarded by one lock; nothing survives the process."""

    schemes = ("memory",)

    def __init__(self, name: str = "", *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.name = name
        if name:
            with _NAMED_LOCK:
                self.state = _NAMED.setdefault(name, _State())
        else:
            self.state = _State()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> MemoryBackend:
        url.reject_unknown_options(frozenset())
        name = (url.netloc + url.path).strip("/")
        if "/" in name:
            raise ConfigurationError("memory:// URLs take a single name: memory://name")
        return cls(name, read_only=read_only)

    @staticmethod
    def forget(name: str) -> None:
        """Drop a named in-memory store."""
        with _NAMED_LOCK:
            _NAMED.pop(name, None)

    def __repr__(self) -> str:
        return f"MemoryBackend(name={self.name!r})"

    def read_manifest(self) -> dict[str, Any] | None:
        with self.state.lock:
            return None if self.state.manifest is None else dict(self.state.manifest)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        with self.state.lock:
            if self.state.manifest is not None:
                raise StoreExistsError(f"a store already exists at {self!r}")
            self.state.manifest = dict(manifest)

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        with self.state.lock:
            chunks = self.state.series.get(key, {})
            return [
                r for c, r in sorted(chunks.items())
                if not r.meta.deleted and (lo is None or c >= lo) and (hi is None or c <= hi)
            ]

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        schema = bound_schema(self.schema)
        with self.state.lock:
            live = [k for k, chunks in self.state.series.items()
                    if any(not r.meta.deleted for r in chunks.values())]
        return iter(sorted(k for k in live if schema.matches(k, where)))

    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        self.state.lock.acquire()
        return _MemoryTransaction(self)

    def get_state(self, name: str) -> str | None:
        with self.state.lock:
            return self.state.states.get(name)

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        position = 0 if after is None else after[0]
        with self.state.lock:
            if position > len(self.state.log):
                raise unknown_position()
        while True:  # a slice at a time: the caller stops once its page is full
            with self.state.lock:
                log = self.state.log[position:position + limit + 1]
            if not log:
                return
            for change in log:
                position += 1
                yield FeedBatch((position,), (change,))
