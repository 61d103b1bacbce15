"""Key paths and the chunk object framing shared by the backends and the HTTP wire format.

Series live under Hive-style key prefixes, ``series/<k1>=<v1>/<k2>=<v2>/``, in the filesystem
and object-storage backends. A chunk object is ``PREFIX | header JSON | payload``: ``PREFIX``
packs a magic, the header length and a CRC-32 of the header; the header holds the series key
and the chunk's :class:`ChunkMeta` (including the payload's own CRC-32, verified by the core on
decode).
Key values are percent-encoded in paths, so any string is a safe path component.
"""

from __future__ import annotations

import json
import struct
from typing import Any
from urllib.parse import quote, unquote

from curvestore.core.config import KeySchema
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError, InvalidKeyError

__all__ = [
    "CHUNK_SUFFIX",
    "decode_header",
    "decode_object",
    "encode_object",
    "frame",
    "header_crc",
    "parse_component",
    "series_parts",
]

MAGIC = b"CVC1"
_PREFIX = struct.Struct("<4sII")  # magic, header length, header CRC-32
PREFIX_SIZE = _PREFIX.size
CHUNK_SUFFIX = ".cvc"
_MAX_COMPONENT = 255


def encode_component(name: str, value: Any) -> str:
    text = str(value) if isinstance(value, int) else quote(value, safe="-_~@+,")
    if text in ("", ".", ".."):
        text = "%" + text.encode().hex() if text else "%"
    part = f"{name}={text}"
    if len(part.encode()) > _MAX_COMPONENT:
        raise InvalidKeyError(f"key value for {name!r} is too long to store ({len(part)} bytes "
                              "encoded; at most 255)", value)
    return part


def parse_component(part: str, name: str, kind: str) -> Any:
    prefix = name + "="
    if not part.startswith(prefix):
        raise IntegrityError(f"unexpected directory {part!r} where {name}=... was expected")
    text = part[len(prefix):]
    if kind == "int":
        if not text.lstrip("-").isdigit() or not text.isascii():
            raise IntegrityError(f"unexpected directory {part!r}: {name} holds integers")
        return int(text)
    if text == "%":
        return ""
    if text in ("%2e", "%2e2e"):
        return bytes.fromhex(text[1:]).decode()
    return unquote(text)


def series_parts(schema: KeySchema, key: SeriesKey) -> list[str]:
    return [encode_component(n, v) for n, v in zip(schema.names, key, strict=True)]


def chunk_name(chunk: int) -> str:
    return f"{chunk}{CHUNK_SUFFIX}"


def _header(key: SeriesKey, meta: ChunkMeta) -> bytes:
    return json.dumps({"key": list(key), **meta.to_dict()}, separators=(",", ":")).encode()


def header_crc(key: SeriesKey, meta: ChunkMeta) -> int:
    """The CRC-32 of the header a chunk object of ``key`` with ``meta`` has (the encoding is
    deterministic), for checking a chunk against an index without parsing its header."""
    return checksum(_header(key, meta))


def encode_object(record: ChunkRecord) -> bytes:
    header = _header(record.key, record.meta)
    return _PREFIX.pack(MAGIC, len(header), checksum(header)) + header + record.payload


def header_length(prefix: bytes, where: str) -> int:
    if len(prefix) < PREFIX_SIZE:
        raise IntegrityError(f"{where}: truncated chunk object")
    magic, length, _crc = _PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a curvestore chunk object")
    return int(length)


def frame(data: bytes, start: int, end: int, where: str) -> tuple[int, int, int]:
    """Locate the chunk object ``data[start:end]`` without parsing its header:
    ``(header CRC-32 as stored, header offset, payload offset)``. Checks the magic, that the
    header lies within the object and that it matches its stored CRC-32."""
    if end - start < PREFIX_SIZE:
        raise IntegrityError(f"{where}: truncated chunk object")
    magic, length, crc = _PREFIX.unpack_from(data, start)
    header = start + PREFIX_SIZE
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a curvestore chunk object")
    if header + length > end or checksum(memoryview(data)[header:header + length]) != crc:
        raise IntegrityError(f"{where}: chunk header fails its checksum")
    return int(crc), header, header + int(length)


def decode_header(data: bytes, where: str) -> tuple[SeriesKey, ChunkMeta]:
    length = header_length(data, where)
    _magic, _length, crc = _PREFIX.unpack_from(data)
    header = data[PREFIX_SIZE:PREFIX_SIZE + length]
    if len(header) != length or checksum(header) != crc:
        raise IntegrityError(f"{where}: chunk header fails its checksum")
    fields = json.loads(header)
    return tuple(fields.pop("key")), ChunkMeta.from_dict(fields)


def decode_object(data: bytes, where: str) -> ChunkRecord:
    key, meta = decode_header(data, where)
    payload = data[PREFIX_SIZE + header_length(data, where):]
    if len(payload) != meta.size:
        raise IntegrityError(f"{where}: payload is {len(payload)} bytes, header says {meta.size}")
    return ChunkRecord(key, meta, payload)
