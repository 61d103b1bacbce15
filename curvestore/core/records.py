"""Plain, frozen records exchanged between the core and the backends.

Backends move these and never see pandas: a series is named by a :data:`SeriesKey` (key values
in the store's declared key order), and a chunk is the span of one calendar period of one
series, encoded by a codec. Offsets and lengths count grid points from the period's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Change",
    "ChangePage",
    "ChunkMeta",
    "ChunkRecord",
    "FeedBatch",
    "Position",
    "SeriesKey",
    "checksum",
]

SeriesKey = tuple[Any, ...]
"""Key values in the order the store declares its key attributes (``int`` or ``str``)."""

Position = tuple[int, ...]
"""A place in a backend's change feed: ``Backend.feed_arity`` integers in ``[0, 2**63)``, their
meaning the backend's; all zeros is the start. The core wraps positions in cursors."""


try:  # ISA-L computes the same CRC-32 as zlib, about 20x faster on payload-sized buffers
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - platforms without isal wheels
    from zlib import crc32 as _crc32


def checksum(payload: bytes | memoryview) -> int:
    """CRC-32 (zlib's polynomial) of a payload, as stored in :attr:`ChunkMeta.checksum`."""
    return _crc32(payload)


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """What is known about a chunk without decoding it.

    ``start`` and ``length`` give the stored span in grid points from the period start: the
    span runs from the first to the last valid (non-NaN) point, so a partial period costs
    little. ``count`` is the number of valid points. ``version`` is assigned by the backend
    when the chunk is committed and grows strictly with every write of the same chunk;
    ``size`` is the payload's length in bytes and ``checksum`` its CRC-32;
    ``updated_at`` is the commit time in nanoseconds since the epoch (UTC).
    """

    chunk: int
    start: int = 0
    length: int = 0
    count: int = 0
    codec: str = "none"
    dtype: str = "float64"
    checksum: int = 0
    size: int = 0
    version: int = 0
    updated_at: int = 0
    deleted: bool = False

    def committed(self, version: int, updated_at: int) -> ChunkMeta:
        """This meta as committed at ``version``; ``updated_at`` unless it already has one
        (replicated chunks keep their origin's time). Faster than ``dataclasses.replace``,
        which a bulk commit would call once per chunk."""
        return ChunkMeta(self.chunk, self.start, self.length, self.count, self.codec, self.dtype,
                         self.checksum, self.size, version, self.updated_at or updated_at,
                         self.deleted)

    def as_tombstone(self) -> ChunkMeta:
        return ChunkMeta(chunk=self.chunk, version=self.version, deleted=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "start": self.start,
            "length": self.length,
            "count": self.count,
            "codec": self.codec,
            "dtype": self.dtype,
            "checksum": self.checksum,
            "size": self.size,
            "version": self.version,
            "updated_at": self.updated_at,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkMeta:
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk with its payload (``b""`` for a tombstone)."""

    key: SeriesKey
    meta: ChunkMeta
    payload: bytes = b""

    @property
    def chunk(self) -> int:
        return self.meta.chunk

    def with_meta(self, **changes: Any) -> ChunkRecord:
        return ChunkRecord(self.key, replace(self.meta, **changes), self.payload)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: chunk ``chunk`` of series ``key`` was written (or
    tombstoned when ``deleted``) at ``version``."""

    key: SeriesKey
    chunk: int
    version: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class ChangePage:
    """A page of the change feed. ``cursor`` is opaque: pass it back to get what follows."""

    items: list[Change] = field(default_factory=list)
    cursor: str = ""
    has_more: bool = False


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Changes a backend's feed returns together, and the feed ``position`` right after them:
    pages of the change feed are cut between batches. A batch may hold no change (it then
    only moves the position, e.g. past changes a backend filtered out itself)."""

    position: Position
    changes: Sequence[Change] = ()
