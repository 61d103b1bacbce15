"""The S3 backend's optimistic transaction: it reads whole shards (remembering their ETag)
or finds them absent, and stages its puts for the commit (:mod:`._commit`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from curvestore.backends.s3._base import ShardId, Slot
from curvestore.backends.s3._object_shard_format import Shard
from curvestore.backends.s3._reader import _DIRECT_SHARDS, Listed, _within
from curvestore.core.backend import Transaction
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey

if TYPE_CHECKING:
    from curvestore.backends.s3._commit import S3Commit

__all__ = ["S3Transaction"]


class S3Transaction(Transaction):
    """Optimistic: remembers the shards it read whole (with their ETag) or found absent, and
    commits each touched shard with one conditional PUT. It holds nothing on the service
    until :meth:`commit`, so :meth:`abort` only forgets what was staged."""

    def __init__(self, backend: S3Commit, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.order = list(dict.fromkeys(keys))
        #: shard -> the shard as read (whole), or None when known absent
        self.shards: dict[ShardId, Shard | None] = {}
        #: series -> its shard objects, from one listing (shared by the transaction's keys)
        self.listed: dict[SeriesKey, dict[int, Listed]] = {}
        self.staged: dict[Slot, ChunkRecord] = {}
        self.states: dict[str, tuple[str, str | None]] = {}
        self.txid = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def _listing(self, key: SeriesKey) -> dict[int, Listed]:
        if key not in self.listed:
            # the first listing covers every key of the transaction: write_many(mode="insert")
            # then costs one LIST for all its series, not one each
            wanted = [k for k in self.order if k not in self.listed] or [key]
            if key not in wanted:
                wanted.append(key)
            for k, objects in self.backend.reader.list_many(wanted).items():
                self.listed[k] = {o[0]: o for o in objects}
        return self.listed[key]

    def _load(self, key: SeriesKey, lo: int | None, hi: int | None) -> list[Shard]:
        """The series' shards holding chunks ``lo..hi``, read whole once per transaction."""
        reader = self.backend.reader
        first, last = reader.numbers(lo, hi)
        span = None if first is None or last is None else range(first, last + 1)
        listed = None
        if span is None or len(self.order) > 1 or len(span) > _DIRECT_SHARDS:
            listed = self._listing(key)
        if span is not None:
            numbers = list(span)
        else:
            numbers = [n for n in sorted(listed or ()) if _within(n, first, last)]
        todo: list[Listed] = []
        for number in numbers:
            if (key, number) in self.shards:
                continue
            if listed is not None and number not in listed:
                self.shards[(key, number)] = None
                continue
            todo.append(listed[number] if listed is not None
                        else (number, reader.shard_key(key, number), None))
        if todo:
            for (number, _k, _e), shard in zip(todo, reader.fetch_listed(key, todo, False),
                                               strict=True):
                self.shards[(key, number)] = shard
        found = (self.shards[(key, n)] for n in numbers)
        return [s for s in found if s is not None]

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return [m for shard in self._load(key, None, None) for m in shard.metas()
                if not m.deleted]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        if lo is not None and hi is not None and hi < lo:
            return []
        return [r for shard in self._load(key, lo, hi) for r in shard.records(lo, hi)]

    def put(self, records: Sequence[ChunkRecord]) -> None:
        for record in records:
            self.staged[(record.key, record.chunk)] = record

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.states[name] = (value, expected)

    def commit(self) -> list[Change]:
        """The commit protocol of :mod:`._commit`: StaleStateError (nothing written) when a
        ``set_state``'s expected value was overtaken, ConflictError when a shard or state
        changed since it was read (a multi-shard batch may keep the shards it had already
        overwritten, logged: see the package docstring)."""
        return self.backend._commit(self)

    def abort(self) -> None:
        self.staged.clear()
        self.states.clear()
