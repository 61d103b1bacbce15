"""The engine's on-object formats: log entries, catalog checkpoints and segment names.

Both entries and checkpoints are one *container*::

    MAGIC (8 bytes, b"CVENG01\\n")
    u32 little-endian: length of the header
    header: UTF-8 JSON object
    u64 little-endian: length of the rows block
    rows block: LZ4 block (size-prefixed) of the rows, a packed array of ROW records
    u32 little-endian: CRC-32 of every byte before it

An entry of a small commit (format 2 on) carries its payloads itself instead of a segment,
so the commit writes one object rather than two (half the syncs on files, one request less
on S3)::

    MAGIC_DATA (8 bytes, b"CVENG02\\n")
    u64 little-endian: length of the data
    data: the payloads, back to back (from byte INLINE_AT of the object on)
    then the container above from its header length on (u32, header, u64, rows block, CRC)

Its rows name the entry itself as their object, with offsets from the start of the object,
so readers fetch those payloads with the same ranged reads as a segment's.

A reader checks the magic, the lengths and the CRC before it trusts a byte, so a damaged or
truncated object is an :class:`~curvestore.errors.IntegrityError` naming it, never a wrong
answer. The rows are columns a reader folds with numpy, with no object per chunk.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import lz4.block
import numpy as np

from curvestore.core.records import checksum
from curvestore.errors import IntegrityError

__all__ = ["APPEND", "DELETED", "FORMAT", "MAGIC", "ROW", "Container", "catalog_key",
           "INLINE_AT", "MAGIC_DATA", "READABLE_FORMATS", "decode_container", "encode_container",
           "log_key", "segment_key", "segment_time", "seq_of", "sort_key"]

MAGIC = b"CVENG01\n"
MAGIC_DATA = b"CVENG02\n"
#: Engine format version, kept in the manifest under ``"engine"``: what a new store is in.
#: 2 added entries that carry their payloads; a store in format 1 is read and written on in
#: format 1 (no such entry), so older versions keep reading it; other formats are refused.
FORMAT = 2
READABLE_FORMATS = (1, 2)
#: Where an entry's own payloads start (after MAGIC_DATA and their length).
INLINE_AT = len(MAGIC_DATA) + 8

#: A row's flags: a tombstone, or a fragment extending its chunk's stored span.
DELETED = 1
APPEND = 2

#: One chunk (or fragment) per row. ``obj``, ``codec`` and ``dtype`` index the container's
#: ``objects``, ``codecs`` and ``dtypes`` lists; ``offset`` / ``size`` locate the payload in
#: the object; ``version`` is the sequence number of the commit that wrote the row's data.
ROW = np.dtype([
    ("sid", "<i8"), ("chunk", "<i8"), ("version", "<i8"), ("obj", "<i4"), ("codec", "<i2"),
    ("dtype", "<i2"), ("offset", "<i8"), ("size", "<i8"), ("start", "<i8"), ("length", "<i8"),
    ("count", "<i8"), ("checksum", "<i8"), ("updated_at", "<i8"), ("flags", "<i1"),
])

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SEQ_DIGITS = 20


def log_key(seq: int) -> str:
    return f"log/{seq:0{_SEQ_DIGITS}d}"


def catalog_key(seq: int) -> str:
    return f"catalog/{seq:0{_SEQ_DIGITS}d}"


def segment_key() -> str:
    """A new segment's key: its creation time (hex nanoseconds, so garbage collection can
    tell a commit in flight from an orphan without a listing's timestamps) and a random part."""
    return f"data/{time.time_ns():016x}-{uuid.uuid4().hex[:16]}.seg"


def segment_time(key: str) -> int | None:
    """The creation time in a segment key, None for a key that is not one."""
    name = key.rpartition("/")[2]
    stamp, dash, _rest = name.partition("-")
    if not dash or len(stamp) != 16 or not name.endswith(".seg"):
        return None
    try:
        return int(stamp, 16)
    except ValueError:
        return None


def seq_of(key: str) -> int | None:
    """The sequence number in a ``log/`` or ``catalog/`` key, None for anything else (a
    stray file is ignored rather than trusted)."""
    tail = key.rpartition("/")[2]
    if len(tail) != _SEQ_DIGITS or not tail.isdigit():
        return None
    return int(tail)


@dataclass
class Container:
    """A decoded entry or checkpoint: its JSON header and its rows."""

    header: dict[str, Any]
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=ROW))


def encode_container(header: dict[str, Any], rows: np.ndarray, data: bytes = b"") -> bytes:
    """The container of ``header`` and ``rows``, carrying ``data`` (an entry's own payloads,
    at :data:`INLINE_AT` on) when given."""
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    packed = np.ascontiguousarray(rows, dtype=ROW).tobytes()
    block = lz4.block.compress(packed, store_size=True) if packed else b""
    lead = (MAGIC_DATA, _U64.pack(len(data)), data) if data else (MAGIC,)
    body = b"".join((*lead, _U32.pack(len(head)), head, _U64.pack(len(block)), block))
    return body + _U32.pack(checksum(body))


def decode_container(data: bytes, name: str) -> Container:
    """Parse ``data`` read from object ``name`` (named in errors)."""
    def damaged(why: str) -> IntegrityError:
        return IntegrityError(f"engine object {name!r} is damaged ({why}); restore the store "
                              "from a replica or an archive")

    if len(data) < len(MAGIC) + 16 or not data.startswith((MAGIC, MAGIC_DATA)):
        raise damaged("not an engine log entry or checkpoint")
    body, (crc,) = data[:-4], _U32.unpack_from(data, len(data) - 4)
    if checksum(body) != crc:
        raise damaged("checksum mismatch")
    at = len(MAGIC)
    if body.startswith(MAGIC_DATA):
        (data_len,) = _U64.unpack_from(body, at)
        at = INLINE_AT + data_len
        if at + 12 > len(body):
            raise damaged("bad lengths")
    (head_len,) = _U32.unpack_from(body, at)
    at += 4
    try:
        header = json.loads(body[at:at + head_len])
    except ValueError as exc:
        raise damaged("unreadable header") from exc
    at += head_len
    (block_len,) = _U64.unpack_from(body, at)
    at += 8
    if at + block_len != len(body) or not isinstance(header, dict):
        raise damaged("bad lengths")
    if not block_len:
        return Container(header)
    try:
        packed = lz4.block.decompress(body[at:])
    except lz4.block.LZ4BlockError as exc:
        raise damaged("rows block does not decompress") from exc
    if len(packed) % ROW.itemsize:
        raise damaged("rows block has a partial row")
    return Container(header, np.frombuffer(packed, dtype=ROW).copy())


#: Offsets within an object sort below this bound (1 TiB) in :func:`sort_key`.
_OFFSET_BITS = 40


def sort_key(obj: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """One int64 per (object index, byte offset), sorting as the pair does: a single
    ``argsort`` of it is several times faster than ``lexsort`` of the pair. (Object indices
    number a catalog's objects, far below 2**23; an offset past 1 TiB is a corrupt row.)"""
    if len(offset) and (int(offset.max()) >> _OFFSET_BITS or int(offset.min()) < 0):
        raise IntegrityError("a row's offset is out of range (corrupt catalog)")
    return (obj.astype(np.int64) << _OFFSET_BITS) | offset.astype(np.int64)
