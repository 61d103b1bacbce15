"""The OBJECT shard format (``CVS1``): the S3 backend's ``series/.../<n>.cvs`` objects.

Not the filesystem backend's shard format (:mod:`curvestore.backends._file_shard_format`,
``CVF1``), although both end in ``.cvs``: the two backends share the key layout, the manifest
and the change-log idea, not the bytes of a shard. On S3, time and cost go by request, so an
object shard holds about 2**17 points (:func:`default_shard_size`) and frames every chunk on
its own, so a ranged GET of a few chunks is verified without the rest of the object, and its
index names the transaction that wrote each chunk, so the recovery of a dead writer's commit
finds its chunks. A file shard needs neither (local reads, logged batches) and stays leaner.
README "Design notes" gives the measurements behind the split; the magics differ, so neither
is ever read as the other.

::

    CVC1 chunk object | CVC1 chunk object | ... | index JSON | trailer

Each chunk is stored exactly as the shared layout encodes a chunk object
(:func:`curvestore.backends._layout.encode_object`: magic, header length, header CRC-32, header
JSON naming the series and the chunk's meta, payload), tombstones included (empty payload).
The index lists, for every chunk of the shard, its byte span in the object, the id of the
transaction that last wrote it (for the recovery of interrupted commits), the CRC-32 of the
header the chunk must have (its encoding is deterministic) and its full
:class:`~curvestore.core.records.ChunkMeta`, so the metas of a shard are known from its tail
alone, and a chunk read through the index is checked by comparing CRCs instead of parsing
its header again (indexes written before the header CRC was recorded are read by parsing
the header). The trailer is ``<index length u32><index CRC-32 u32>CVS1``.

Shard ``n`` of a series holds chunks ``n * size`` to ``(n + 1) * size - 1`` (floor division,
so with monthly chunks and ``size=12`` a shard is a calendar year).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from curvestore.backends import _layout as layout
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import IntegrityError

__all__ = ["SHARD_SUFFIX", "TAIL_GUESS", "Entry", "Shard", "default_shard_size", "encode_shard",
           "index_length"]

SHARD_MAGIC = b"CVS1"
SHARD_SUFFIX = ".cvs"
_TRAILER = struct.Struct("<II4s")  # index length, index CRC-32, magic
TRAILER_SIZE = _TRAILER.size
#: Bytes read from a shard's end when only its index is needed (a 36-chunk index is ~5 KB).
TAIL_GUESS = 16384
_META_FIELDS = tuple(ChunkMeta.__slots__)  # type: ignore[attr-defined]
_SPAN_FIELDS = ("@offset", "@bytes", "@txid", "@hcrc")  # apart from ChunkMeta's own fields
_FIELDS = [*_SPAN_FIELDS, *_META_FIELDS]
_INDEX_VERSION = 1
#: Points per shard the default size aims at: 2**17 float64 are 1 MiB before compression,
#: large enough for request overhead to stop dominating, small enough to rewrite on an update.
_TARGET_POINTS = 2**17
_MONTH_SIZES = (1, 2, 3, 4, 6, 12, 24, 36, 48, 60, 120)
_YEAR_SIZES = (1, 2, 3, 4, 5, 10)


def default_shard_size(chunking: str, freq_ns: int) -> int:
    """Chunks per shard for a store: the largest 'round' count of chunks whose periods hold
    at most about 2**17 points (month chunks of 15-min data: 36, i.e. 3 calendar years)."""
    days = 31 if chunking == "month" else 366
    per_chunk = days * 86_400 * 10**9 / max(freq_ns, 1)
    want = max(1, int(_TARGET_POINTS // per_chunk))
    choices = _MONTH_SIZES if chunking == "month" else _YEAR_SIZES
    return max(c for c in choices if c <= want)


class Entry:
    """One chunk of a shard: its meta, where its object lies, the txid that wrote it and the
    CRC-32 of its header (None in indexes that predate it)."""

    __slots__ = ("header_crc", "length", "meta", "offset", "txid")

    def __init__(self, meta: ChunkMeta, offset: int, length: int, txid: str,
                 header_crc: int | None) -> None:
        self.meta, self.offset, self.length, self.txid = meta, offset, length, txid
        self.header_crc = header_crc


class Shard:
    """A shard as read: its index, ETag, and the whole object when it was read whole."""

    __slots__ = ("base", "data", "entries", "etag", "key", "number", "where")

    def __init__(self, key: SeriesKey, number: int, entries: dict[int, Entry], etag: str,
                 where: str, data: bytes | None = None, base: int = 0) -> None:
        self.key, self.number, self.entries = key, number, entries
        #: ``data`` holds the object's bytes from offset ``base`` on (all of it, or the span
        #: of the chunks a ranged read asked for)
        self.etag, self.where, self.data, self.base = etag, where, data, base

    def index_only(self) -> Shard:
        return Shard(self.key, self.number, self.entries, self.etag, self.where)

    def metas(self) -> list[ChunkMeta]:
        return [self.entries[c].meta for c in sorted(self.entries)]

    def raw(self, chunk: int) -> bytes:
        """The chunk's object bytes, verbatim (to copy it into a rewritten shard)."""
        entry = self.entries[chunk]
        start = entry.offset - self.base
        if self.data is None or start < 0 or start + entry.length > len(self.data):
            raise ValueError(f"{self.where}: chunk {chunk} was not read")
        return self.data[start:start + entry.length]

    def record(self, chunk: int) -> ChunkRecord:
        """The chunk, with its framing checked (magic, header CRC-32, payload length) and
        its header checked against the index (by CRC, or by parsing it in older shards)."""
        where = f"{self.where} chunk {chunk}"
        entry = self.entries[chunk]
        if entry.header_crc is None:
            record = layout.decode_object(self.raw(chunk), where)
            if tuple(record.key) != tuple(self.key):
                raise IntegrityError(f"{where}: holds series {record.key}, not {self.key}")
            if record.meta != entry.meta:
                raise IntegrityError(f"{where}: chunk header and shard index disagree")
            return record
        start = entry.offset - self.base
        end = start + entry.length
        if self.data is None or start < 0 or end > len(self.data):
            raise ValueError(f"{self.where}: chunk {chunk} was not read")
        crc, _header, payload = layout.frame(self.data, start, end, where)
        if crc != entry.header_crc:
            raise IntegrityError(f"{where}: chunk header and shard index disagree (the "
                                 "object holds another series' or another version's chunk)")
        if end - payload != entry.meta.size:
            raise IntegrityError(f"{where}: payload is {end - payload} bytes, the index says "
                                 f"{entry.meta.size}")
        return ChunkRecord(self.key, entry.meta, self.data[payload:end])

    def records(self, lo: int | None, hi: int | None, live_only: bool = True
                ) -> list[ChunkRecord]:
        out = []
        for chunk in sorted(self.entries):
            if (lo is not None and chunk < lo) or (hi is not None and chunk > hi):
                continue
            if live_only and self.entries[chunk].meta.deleted:
                continue
            out.append(self.record(chunk))
        return out


def encode_shard(key: SeriesKey, number: int, parts: list[tuple[ChunkMeta, bytes, str]]
                 ) -> tuple[bytes, dict[int, Entry]]:
    """The object for ``parts`` (meta, chunk object bytes, txid), sorted by chunk, and its
    index."""
    pieces: list[bytes] = []
    rows: list[list[Any]] = []
    entries: dict[int, Entry] = {}
    offset = 0
    for meta, blob, txid in sorted(parts, key=lambda p: p[0].chunk):
        pieces.append(blob)
        header_crc = layout.header_crc(key, meta)  # what the chunk's header must be
        rows.append([offset, len(blob), txid, header_crc,
                     *(getattr(meta, f) for f in _META_FIELDS)])
        entries[meta.chunk] = Entry(meta, offset, len(blob), txid, header_crc)
        offset += len(blob)
    index = json.dumps({"v": _INDEX_VERSION, "key": list(key), "shard": number,
                        "fields": _FIELDS, "chunks": rows},
                       separators=(",", ":")).encode()
    pieces.append(index)
    pieces.append(_TRAILER.pack(len(index), zlib.crc32(index), SHARD_MAGIC))
    return b"".join(pieces), entries


def index_length(tail: bytes, where: str) -> int:
    """Bytes at the end of the object that hold the index and trailer."""
    if len(tail) < TRAILER_SIZE:
        raise IntegrityError(f"{where}: truncated shard object")
    length, _crc, magic = _TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    if magic != SHARD_MAGIC:
        raise IntegrityError(f"{where}: not a curvestore shard object")
    return int(length) + TRAILER_SIZE


def decode_shard(tail: bytes, *, key: SeriesKey, number: int, etag: str, where: str,
                 whole: bool) -> Shard:
    """Parse a shard from its tail (``whole``: the complete object, kept for reading chunks).

    Checks the trailer's magic, the index's CRC-32, that the index names this series and shard
    and that every chunk span lies before the index."""
    need = index_length(tail, where)
    if need > len(tail):
        raise IntegrityError(f"{where}: truncated shard object")
    _length, crc, _magic = _TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    index = tail[len(tail) - need:len(tail) - TRAILER_SIZE]
    if zlib.crc32(index) != crc:
        raise IntegrityError(f"{where}: shard index fails its checksum")
    try:
        body = json.loads(index)
        found_key = tuple(body["key"])
        found_number = int(body["shard"])
        fields = list(body["fields"])
        rows = body["chunks"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{where}: unreadable shard index") from exc
    if found_key != tuple(key):
        raise IntegrityError(f"{where}: holds series {found_key}, not {key}")
    if found_number != number:
        raise IntegrityError(f"{where}: holds shard {found_number}, not {number}")
    data_end = len(tail) - need if whole else None
    entries: dict[int, Entry] = {}
    try:
        for meta, offset, size, txid, header_crc in _index_rows(fields, rows):
            if offset < 0 or size < layout.PREFIX_SIZE or (
                    data_end is not None and offset + size > data_end):
                raise IntegrityError(f"{where}: chunk {meta.chunk} lies outside the shard")
            entries[meta.chunk] = Entry(meta, offset, size, txid, header_crc)
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{where}: unreadable shard index") from exc
    return Shard(key, number, entries, etag, where, tail if whole else None)


def _index_rows(fields: list[str], rows: list[list[Any]]
                ) -> Iterator[tuple[ChunkMeta, int, int, str, int | None]]:
    """``(meta, offset, bytes, txid, header CRC or None)`` per index row: positionally when
    the index has this version's fields (the common case: no dict per row), else by name."""
    if fields == _FIELDS:
        width = len(_FIELDS)
        for row in rows:
            if len(row) != width:
                raise ValueError("index row of the wrong width")
            yield (ChunkMeta(*row[len(_SPAN_FIELDS):]), int(row[0]), int(row[1]), str(row[2]),
                   int(row[3]))
        return
    for row in rows:
        values = dict(zip(fields, row, strict=True))
        header_crc = values.get("@hcrc")
        yield (ChunkMeta.from_dict(values), int(values["@offset"]), int(values["@bytes"]),
               str(values["@txid"]), None if header_crc is None else int(header_crc))
