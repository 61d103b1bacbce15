"""The FILE shard format (``CVF1``): the filesystem backend's ``series/.../<year>.cvs`` files.

Not the S3 backend's shard format (:mod:`curvestore.backends.s3._object_shard_format`,
``CVS1``), although both files end in ``.cvs``: the two backends share the key layout, the
manifest and the change-log idea, not the bytes of a shard. A file shard is lean because its
reads are local and its batches are logged: bare payloads, the metas only in the index, one
calendar year per file. An S3 shard frames every chunk on its own (so a ranged GET of one chunk
is verified alone) and records the writing transaction of each (so recovery finds a dead
writer's chunks). README "Design notes" gives the measurements behind the split. The magics
differ, so neither is ever read as the other.

One file per shard instead of one per chunk divides the number of files to create, list, open
and fsync by the shard size: 12 for month chunks, so a year of a series is one file. Creating
files is the dominant cost of a file store on ext4 (inode allocation after many deletions
shows up as milliseconds per file); the idea is zarr v3's sharding. A shard is rewritten whole
when one of its chunks changes, which costs at most the shard's size (a year of 15-min float64
is ~280 kB).

::

    payload_0 | payload_1 | ... | index JSON | TRAILER

``TRAILER`` packs the index length, the index's CRC-32 and the magic ``CVF1``. The index is
``{"key": [...], "grid": "<fingerprint>", "chunks": [[chunk, start, length, count, codec, dtype,
checksum, size, version, updated_at, deleted], ...]}`` in chunk order, each row a
:class:`ChunkMeta` in field order; ``grid`` fingerprints the store and grid the shard was
written for (store id, keys, freq, tz, chunking, dtype; absent in shards written before it
existed), so a shard read under another manifest, or found under another series' path or
year, is refused (:func:`check_index`). Payloads follow each other in the same order, so a
chunk's offset is the sum of the sizes before it. Tombstones stay in the index (size 0):
versions keep growing and the change feed can still name them. Payload CRC-32s are checked by
the core when a chunk is decoded, and by ``curvestore verify``.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import IntegrityError

__all__ = ["SHARD_SUFFIX", "ShardIndex", "check_index", "decode_records", "encode_shard",
           "grid_fingerprint", "parse_shard_name", "shard_chunks", "shard_name", "shard_of"]

MAGIC = b"CVF1"  # not the object shard format's CVS1: the formats differ
_TRAILER = struct.Struct("<II4s")  # index length, index CRC-32, magic
TRAILER_SIZE = _TRAILER.size
SHARD_SUFFIX = ".cvs"
TAIL_READ = 8192  # one read of the file's end holds the index of a full year of month chunks
_META_FIELDS = tuple(f.name for f in fields(ChunkMeta))
_CHUNKS_PER_SHARD = {"month": 12, "year": 1}


def shard_chunks(chunking: str) -> int:
    """Chunks per shard for a store's chunking: a calendar year of month chunks, or one
    year chunk (already ~280 kB of 15-min float64)."""
    return _CHUNKS_PER_SHARD.get(chunking, 1)


def shard_of(chunk: int, per_shard: int) -> int:
    return chunk // per_shard


def shard_name(shard: int) -> str:
    return f"{shard}{SHARD_SUFFIX}"


def parse_shard_name(name: str, where: str) -> int:
    """The shard number of a ``<n>.cvs`` file name; IntegrityError for anything else."""
    stem = name[: -len(SHARD_SUFFIX)]
    if not stem.lstrip("-").isdigit() or not stem.isascii():
        raise IntegrityError(f"{where}: unexpected file in a series directory (shards are "
                             "named <year>.cvs)")
    return int(stem)


def grid_fingerprint(manifest: Mapping[str, object]) -> str:
    """A short fingerprint of what a chunk's position means: the store and its grid."""
    fields_ = {name: manifest.get(name)
               for name in ("store_id", "keys", "freq", "tz", "chunking", "dtype")}
    text = json.dumps(fields_, sort_keys=True, separators=(",", ":")).encode()
    return f"{zlib.crc32(text):08x}"


@dataclass(frozen=True, slots=True)
class ShardIndex:
    """A shard's series key and chunk metas, with each payload's offset in the file."""

    key: SeriesKey
    metas: tuple[ChunkMeta, ...]
    offsets: tuple[int, ...]
    grid: str | None = None

    def find(self, chunk: int) -> int | None:
        for i, meta in enumerate(self.metas):
            if meta.chunk == chunk:
                return i
        return None


def encode_shard(key: SeriesKey, records: Iterable[ChunkRecord], grid: str) -> bytes:
    """The bytes of a shard holding ``records`` (one per chunk, any order)."""
    ordered = sorted(records, key=lambda r: r.meta.chunk)
    rows = [[getattr(r.meta, name) for name in _META_FIELDS] for r in ordered]
    index = json.dumps({"key": list(key), "grid": grid, "chunks": rows},
                       separators=(",", ":")).encode()
    return b"".join([*(r.payload for r in ordered), index,
                     _TRAILER.pack(len(index), zlib.crc32(index), MAGIC)])


def index_span(tail: bytes, file_size: int, where: str) -> tuple[int, int]:
    """(offset, length) of the index in a file of ``file_size`` bytes ending with ``tail``."""
    if len(tail) < TRAILER_SIZE:
        raise IntegrityError(f"{where}: truncated shard")
    length, _crc, magic = _TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a curvestore shard")
    start = file_size - TRAILER_SIZE - length
    if start < 0:
        raise IntegrityError(f"{where}: shard index overruns the file")
    return start, int(length)


def decode_index(tail: bytes, file_size: int, where: str) -> ShardIndex:
    """Parse the index from the last bytes of a shard (``tail`` must hold the whole index;
    see :func:`index_span`)."""
    start, length = index_span(tail, file_size, where)
    _length, crc, _magic = _TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    end = len(tail) - TRAILER_SIZE
    raw = tail[end - length:end]
    if len(raw) != length or zlib.crc32(raw) != crc:
        raise IntegrityError(f"{where}: shard index fails its checksum")
    try:
        parsed = json.loads(raw)
        metas = tuple(ChunkMeta(*row) for row in parsed["chunks"])
        key = tuple(parsed["key"])
        grid = parsed.get("grid")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{where}: unreadable shard index: {exc}") from exc
    offsets, position = [], 0
    for meta in metas:
        offsets.append(position)
        position += meta.size
    if position != start:
        raise IntegrityError(f"{where}: shard payloads are {start} bytes, index says {position}")
    return ShardIndex(key, metas, tuple(offsets), grid)


def check_index(index: ShardIndex, where: str, key: SeriesKey, shard: int, per_shard: int,
                grid: str) -> None:
    """Refuse a shard that is not the one its path names: another series' (copied or moved),
    another year's, or one written for another store or grid (IntegrityError)."""
    if index.key != key:
        raise IntegrityError(f"{where}: shard holds series {list(index.key)}, but its path is "
                             f"that of {list(key)}")
    if index.grid is not None and index.grid != grid:
        raise IntegrityError(f"{where}: shard was written for another store or grid "
                             f"(fingerprint {index.grid}; the manifest gives {grid})")
    for meta in index.metas:
        if meta.chunk // per_shard != shard:
            raise IntegrityError(f"{where}: chunk {meta.chunk} does not belong in shard {shard}")


def decode_records(data: bytes, where: str, chunks: Mapping[int, object] | range | None = None
                   ) -> tuple[ShardIndex, list[ChunkRecord]]:
    """The index and the records of a whole shard, optionally only chunks in ``chunks``."""
    index = decode_index(data, len(data), where)
    view = memoryview(data)
    records = [
        ChunkRecord(index.key, meta, bytes(view[offset:offset + meta.size]))
        for meta, offset in zip(index.metas, index.offsets, strict=True)
        if chunks is None or meta.chunk in chunks
    ]
    return index, records

