"""A hot store and a cold (archive) store read as one: ``tiered://?hot=URL&cold=URL``.

The nested URLs are percent-encoded (:func:`tiered_url` builds one). Reads merge both tiers
chunk by chunk, the hot tier winning where both hold a chunk, so a series spanning recent data
in PostgreSQL or on disk and archived years in object storage reads as one. Writes go to the
hot tier; a tombstone (delete, or a replace that drops a period) is also applied to the cold
tier so archived data cannot resurface. The change feed and replication state are the hot
tier's. Both tiers must have been created with the same keys and grid.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from curvestore.core.backend import Backend, Transaction
from curvestore.core.capabilities import KeepsState
from curvestore.core.config import KeySchema
from curvestore.core.records import (
    Change,
    ChunkMeta,
    ChunkRecord,
    FeedBatch,
    Position,
    SeriesKey,
)
from curvestore.core.url import StoreURL
from curvestore.errors import ConfigurationError

__all__ = ["TieredBackend", "tiered_url"]

_Entry = TypeVar("_Entry", ChunkRecord, ChunkMeta)  # what a scan or a meta listing yields


def tiered_url(hot: str, cold: str) -> str:
    """``tiered://?hot=...&cold=...`` with both URLs percent-encoded."""
    return f"tiered://?hot={quote(hot, safe='')}&cold={quote(cold, safe='')}"


def _merge(hot: list[ChunkRecord], cold: list[ChunkRecord]) -> list[ChunkRecord]:
    by_chunk = {r.chunk: r for r in cold}
    by_chunk.update((r.chunk, r) for r in hot)
    return [by_chunk[c] for c in sorted(by_chunk)]


class _TieredTransaction(Transaction):
    def __init__(self, hot: Transaction, cold: Transaction) -> None:
        self.hot, self.cold = hot, cold

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        hot = {m.chunk: m for m in self.hot.live_metas(key)}
        cold = {m.chunk: m for m in self.cold.live_metas(key)}
        return [{**cold, **hot}[c] for c in sorted({*hot, *cold})]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return _merge(self.hot.read(key, lo, hi), self.cold.read(key, lo, hi))

    def put(self, records: Sequence[ChunkRecord]) -> None:
        self.hot.put(records)
        doomed = [r for r in records if r.meta.deleted]
        if doomed:
            live = {(r.key, m.chunk) for r in doomed for m in self.cold.live_metas(r.key)}
            self.cold.put([r for r in doomed if (r.key, r.chunk) in live])

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        set_state = getattr(self.hot, "set_state", None)
        if set_state is None:
            raise ConfigurationError("the hot tier keeps no state")
        set_state(name, value, expected=expected)

    def commit(self) -> list[Change]:
        # the cold tier only receives tombstones: committing it first means a failure leaves
        # at worst archived chunks deleted that the hot tier still shadows, never archived
        # data resurfacing under a hot tombstone
        try:
            self.cold.commit()
        except BaseException:
            self.hot.abort()
            raise
        return self.hot.commit()

    def abort(self) -> None:
        try:
            self.cold.abort()
        finally:
            self.hot.abort()


class TieredBackend(Backend):
    """Reads merge ``hot`` and ``cold`` (hot wins); writes go to ``hot``."""

    schemes = ("tiered",)

    def __init__(self, hot: Backend, cold: Backend, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.hot, self.cold = hot, cold
        self.feed_arity = hot.feed_arity  # the feed is the hot tier's

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> TieredBackend:
        from curvestore.opening import open_store

        url.reject_unknown_options(frozenset({"hot", "cold"}))
        if "hot" not in url.options or "cold" not in url.options:
            raise ConfigurationError("tiered URLs need hot= and cold= store URLs "
                                     "(percent-encoded; see curvestore.tiered_url)")
        hot = open_store(url.options["hot"], read_only=read_only)
        cold = open_store(url.options["cold"], read_only=read_only)
        if hot.config.manifest() | {"store_id": "", "codec": ""} != \
                cold.config.manifest() | {"store_id": "", "codec": ""}:
            raise ConfigurationError("the hot and cold stores differ in keys or grid")
        return cls(hot.backend, cold.backend, read_only=read_only)

    def __repr__(self) -> str:
        return f"TieredBackend(hot={self.hot!r}, cold={self.cold!r})"

    def read_manifest(self) -> dict[str, Any] | None:
        return self.hot.read_manifest()

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        raise ConfigurationError("a tiered store is opened over two existing stores; create "
                                 "the hot and cold stores first")

    def bind(self, schema: KeySchema) -> None:
        super().bind(schema)
        self.hot.bind(schema)
        self.cold.bind(schema)

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return _merge(self.hot.read_chunks(key, lo, hi), self.cold.read_chunks(key, lo, hi))

    @staticmethod
    def _join(hot: Iterator[tuple[SeriesKey, list[_Entry]]],
              cold: Iterator[tuple[SeriesKey, list[_Entry]]],
              combine: Callable[[list[_Entry], list[_Entry]], list[_Entry]]
              ) -> Iterator[tuple[SeriesKey, list[_Entry]]]:
        """Merge two key-ordered streams, combining the entries of a key present in both."""
        tagged = heapq.merge(((k, 0, v) for k, v in hot), ((k, 1, v) for k, v in cold),
                             key=lambda t: (t[0], t[1]))
        pending: tuple[SeriesKey, list[_Entry], list[_Entry]] | None = None
        for key, tier, value in tagged:
            if pending is not None and pending[0] != key:
                yield pending[0], combine(pending[1], pending[2])
                pending = None
            if pending is None:
                pending = (key, [], [])
            (pending[1] if tier == 0 else pending[2]).extend(value)
        if pending is not None:
            yield pending[0], combine(pending[1], pending[2])

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        yield from self._join(self.hot.scan(where, lo, hi), self.cold.scan(where, lo, hi), _merge)

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        def combine(hot: list[ChunkMeta], cold: list[ChunkMeta]) -> list[ChunkMeta]:
            by_chunk = {m.chunk: m for m in cold} | {m.chunk: m for m in hot}
            return [by_chunk[c] for c in sorted(by_chunk)]

        yield from self._join(self.hot.list_metas(where), self.cold.list_metas(where), combine)

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        keys = heapq.merge(self.hot.list_series(where), self.cold.list_series(where))
        last: SeriesKey | None = None
        for key in keys:
            if key != last:
                yield key
            last = key

    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        hot = self.hot.begin(keys)
        try:
            cold = self.cold.begin(keys)
        except BaseException:
            hot.abort()
            raise
        return _TieredTransaction(hot, cold)

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        return self.hot.feed(after, where, limit)

    def get_state(self, name: str) -> str | None:
        if not isinstance(self.hot, KeepsState):
            raise ConfigurationError(f"the hot tier {self.hot!r} keeps no state")
        return self.hot.get_state(name)

    def close(self) -> None:
        self.hot.close()
        self.cold.close()
        super().close()
