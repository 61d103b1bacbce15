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

The query of ``GET /v1/changes`` names the protocol's own parameters with the prefix reserved
for curvestore (``_cursor``, ``_limit``), so every other name is a key filter, whatever the
store's keys are called (``cursor`` and ``limit`` included). Servers of protocol version 1 knew
them as ``cursor`` and ``limit``: servers still accept those from old clients when the store has
no key of that name, and clients use them with version-1 servers (:func:`changes_query`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from curvestore.backends._layout import PREFIX_SIZE, decode_header, encode_object, header_length
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError, SyncError

__all__ = [
    "CHUNKS_CONTENT_TYPE",
    "CURSOR_PARAM",
    "LIMIT_PARAM",
    "PROTOCOL_VERSION",
    "FrameReader",
    "TruncatedStream",
    "changes_query",
    "encode_record",
    "encode_records",
    "protocol_parameter",
    "protocol_version",
    "split_changes_query",
]

#: 2: the change feed's own query parameters are ``_cursor`` and ``_limit``.
PROTOCOL_VERSION = 2
CURSOR_PARAM, LIMIT_PARAM = "_cursor", "_limit"
_V1_PARAMS = {CURSOR_PARAM: "cursor", LIMIT_PARAM: "limit"}
CHUNKS_CONTENT_TYPE = "application/octet-stream"
MAX_HEADER_BYTES = 1 << 20
"""A chunk header is a few hundred bytes; anything larger is refused before it is buffered."""


def protocol_version(manifest: Mapping[str, Any]) -> Any:
    """The protocol version a server's manifest announces (1 if it names none)."""
    protocol = manifest.get("protocol")
    return protocol.get("version", 1) if isinstance(protocol, dict) else 1


def changes_query(cursor: str | None, where: Mapping[str, Any], limit: int,
                  server_version: Any = PROTOCOL_VERSION) -> dict[str, str]:
    """The query parameters of ``GET /v1/changes`` for a server of ``server_version`` (the
    ``protocol.version`` of its manifest): key filters under their own names, cursor and limit
    under the reserved names, or under version 1's names (SyncError when a key filter has one
    of those names: a version-1 server cannot tell them apart)."""
    names = dict(_V1_PARAMS) if isinstance(server_version, int) and server_version < 2 \
        else {p: p for p in _V1_PARAMS}
    params = {name: str(value) for name, value in where.items()}
    clash = sorted(set(params) & set(names.values()))
    if clash:
        raise SyncError(f"cannot filter on key(s) {clash} over HTTP: the server (protocol "
                        f"version {server_version}) reads them as its own parameters")
    params[names[LIMIT_PARAM]] = str(int(limit))
    if cursor is not None:
        params[names[CURSOR_PARAM]] = cursor
    return params


def protocol_parameter(name: str, key_names: Sequence[str]) -> str | None:
    """``"cursor"`` or ``"limit"`` when query parameter ``name`` of ``GET /v1/changes`` is
    that protocol parameter (see :func:`split_changes_query`), None otherwise."""
    for param, old in _V1_PARAMS.items():
        if name == param or (name == old and old not in key_names):
            return old
    return None


def split_changes_query(params: Mapping[str, str], key_names: Sequence[str]
                        ) -> tuple[str | None, str | None, dict[str, str]]:
    """``(cursor, limit, key filters)`` of a ``GET /v1/changes`` query (single values).

    ``_cursor``/``_limit`` are the protocol's; ``cursor``/``limit`` are key filters when the
    store has keys of those names and version 1's cursor and limit otherwise (old clients).
    Raises SyncError when both spellings of one parameter are given."""
    rest = dict(params)
    found: list[str | None] = []
    for param, old in _V1_PARAMS.items():
        value = rest.pop(param, None)
        if old in rest and old not in key_names:
            if value is not None:
                raise SyncError(f"give {param} or {old}, not both")
            value = rest.pop(old)
        found.append(value)
    return found[0], found[1], rest


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
