"""The wire format of the HTTP sync protocol, shared by the server and the client.

A chunk batch (the body of ``POST /v1/chunks``) is the concatenation of chunk objects in the
framing of :mod:`curvestore.backends._layout`: ``PREFIX | header JSON | payload``, where the
prefix carries a magic, the header's length and the header's CRC-32, and the header carries the
series key and the chunk's :class:`~curvestore.core.records.ChunkMeta` (whose ``size`` is the
payload's length and ``checksum`` its CRC-32). Each object is therefore self-delimiting, and
the payload travels as stored: compressed, never base64-encoded nor re-encoded.

Guarantees of :class:`FrameReader`: every record it returns has a header that passed its CRC
and a payload of exactly ``meta.size`` bytes whose CRC-32 equals ``meta.checksum`` (tombstones
carry no payload); a stream that ends inside a record raises :class:`TruncatedStream`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from curvestore.backends._layout import PREFIX_SIZE, decode_header, encode_object, header_length
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError, SyncError

__all__ = [
    "CHUNKS_CONTENT_TYPE",
    "PROTOCOL_VERSION",
    "FrameReader",
    "TruncatedStream",
    "encode_record",
    "encode_records",
]

PROTOCOL_VERSION = 1
CHUNKS_CONTENT_TYPE = "application/octet-stream"
MAX_HEADER_BYTES = 1 << 20
"""A chunk header is a few hundred bytes; anything larger is refused before it is buffered."""


class TruncatedStream(SyncError):
    """A chunk stream ended inside a record (the connection broke mid-batch)."""


def encode_record(record: ChunkRecord) -> bytes:
    """The wire bytes of one record; IntegrityError if its payload contradicts its meta."""
    if len(record.payload) != record.meta.size:
        raise IntegrityError(f"chunk {record.meta.chunk} of {record.key}: payload is "
                             f"{len(record.payload)} bytes, its meta says {record.meta.size}")
    return encode_object(record)


def encode_records(records: Iterable[ChunkRecord]) -> bytes:
    """The wire bytes of ``records``, in order (concatenated chunk objects)."""
    return b"".join(encode_record(r) for r in records)


class FrameReader:
    """Incremental parser of a chunk stream: :meth:`feed` it bytes as they arrive.

    Memory stays bounded by one record plus one network read: complete records are handed out
    as soon as their last byte arrives.
    """

    def __init__(self, where: str = "chunk stream") -> None:
        self.where = where
        self._buf = bytearray()
        self._pending: tuple[SeriesKey, ChunkMeta, int] | None = None  # key, meta, body start
        self.records = 0
        self.bytes = 0

    def feed(self, data: bytes) -> Iterator[ChunkRecord]:
        """Add ``data`` and yield the records completed by it."""
        self._buf += data
        self.bytes += len(data)
        buf, pos = self._buf, 0
        try:
            while True:
                if self._pending is None:
                    if len(buf) - pos < PREFIX_SIZE:
                        break
                    length = header_length(bytes(buf[pos:pos + PREFIX_SIZE]), self.where)
                    if length > MAX_HEADER_BYTES:
                        raise IntegrityError(f"{self.where}: chunk header of {length} bytes "
                                             "is not plausible (corrupt stream)")
                    if len(buf) - pos < PREFIX_SIZE + length:
                        break
                    key, meta = decode_header(bytes(buf[pos:pos + PREFIX_SIZE + length]),
                                              self.where)
                    self._pending = (key, meta, pos + PREFIX_SIZE + length)
                key, meta, body = self._pending
                end = body + meta.size
                if len(buf) < end:
                    break
                payload = bytes(buf[body:end])
                if not meta.deleted and checksum(payload) != meta.checksum:
                    raise IntegrityError(f"{self.where}: chunk {meta.chunk} of {key} fails its "
                                         "checksum")
                self._pending = None
                pos = end
                self.records += 1
                yield ChunkRecord(key, meta, payload)
        finally:
            if pos:
                if self._pending is not None:
                    key, meta, body = self._pending
                    self._pending = (key, meta, body - pos)
                del buf[:pos]

    def close(self) -> None:
        """Declare the stream finished; :class:`TruncatedStream` if a record is incomplete."""
        if self._buf or self._pending is not None:
            raise TruncatedStream(f"{self.where} ended inside a record "
                                  f"({len(self._buf)} bytes left over)")
