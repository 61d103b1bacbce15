"""Step 1 of a PostgreSQL batch commit in a store without a fragment table: the rows it
replaces are deleted, and returned.

``COPY (DELETE ... RETURNING ...) TO STDOUT`` streams the deleted rows as the server deletes
them (a plain ``DELETE ... RETURNING`` would hold them back until the statement ends), so the
stored chunks that fragments extend are checked and decoded here while the server is still
deleting. Each row says the version it had (the commit writes version + 1) and, for a
fragment whose chunk is live, the stored chunk: its span, valid points and payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.backends.postgres._fragments import StoredValues, decode_stored
from curvestore.core.codec import CodecLookup
from curvestore.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import psycopg

__all__ = ["Taken", "take"]

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# per row: field count, then (length, value) of: row number, version, deleted, start, length,
# valid points, checksum, size; then codec, dtype and payload, of varying length
_FIXED = struct.Struct(">h iq iq i? ii ii ii iq ii")
_LENGTH = struct.Struct(">i")
_FIELDS = 11


@dataclass(frozen=True, slots=True)
class Taken:
    """What :func:`take` found: the version each row of the commit gets, and the fragments
    that extend a live stored chunk (their row numbers, ascending) with that chunk."""

    version: np.ndarray
    extends: np.ndarray
    stored: StoredValues


def take(cur: psycopg.Cursor[Any], statement: str, rows: int, codecs: CodecLookup,
         describe: Callable[[int], str]) -> Taken:
    """Run ``statement`` (:attr:`BatchQueries.take_rows`) for a commit of ``rows`` rows and
    read its stream; ``describe(row)`` names a row's chunk in integrity errors."""
    version = np.ones(rows, dtype=np.int64)
    found: list[tuple[int, int, int, int, np.ndarray]] = []
    with cur.copy(statement) as copy:
        for row, old, start, length, count, values in _rows(copy, codecs, describe):
            version[row] += old
            if values is not None:
                found.append((row, start, length, count, values))
    found.sort(key=lambda f: f[0])
    columns = [np.asarray([f[i] for f in found], dtype=np.int64) for i in range(4)]
    return Taken(version, columns[0], StoredValues(columns[1], columns[2], columns[3],
                                                   [f[4] for f in found]))


def _rows(blocks: Iterable[Any], codecs: CodecLookup, describe: Callable[[int], str]
          ) -> Iterable[tuple[int, int, int, int, int, np.ndarray | None]]:
    """``(row, version, start, length, count, values or None)`` per row of a binary COPY
    stream of the take statement, parsed as its blocks arrive (a block may hold any part of
    the stream: libpq hands over one message at a time)."""
    buffer = bytearray()
    pos = 0
    signature = ended = False
    for block in blocks:  # read to the end: psycopg ends the COPY once it has it all
        if ended:
            continue
        buffer += block
        if not signature:
            if len(buffer) < len(_SIGNATURE) + 8:
                continue
            if bytes(buffer[:len(_SIGNATURE)]) != _SIGNATURE:
                raise IntegrityError("the server's COPY stream lacks its signature")
            extension = _LENGTH.unpack_from(buffer, len(_SIGNATURE) + 4)[0]
            pos = len(_SIGNATURE) + 8 + extension
            signature = True
        while True:
            parsed = _row(buffer, pos, codecs, describe)
            if parsed is None:
                break
            pos, item = parsed
            if item is None:
                ended = True
                break
            yield item
        del buffer[:pos]
        pos = 0


def _row(buffer: bytearray, pos: int, codecs: CodecLookup, describe: Callable[[int], str]
         ) -> tuple[int, tuple[int, int, int, int, int, np.ndarray | None] | None] | None:
    """The row at ``pos`` and the position after it; None when it is not all there yet,
    ``(pos, None)`` at the trailer."""
    if len(buffer) - pos < 2:
        return None
    if buffer[pos:pos + 2] == b"\xff\xff":
        return pos + 2, None
    if len(buffer) - pos < _FIXED.size:
        return None
    (fields, _, row, _, old, _, deleted, _, start, _, length, _, count, _, crc, _,
     size) = _FIXED.unpack_from(buffer, pos)
    if fields != _FIELDS:
        raise IntegrityError(f"the server's COPY stream has rows of {fields} fields")
    at = pos + _FIXED.size
    texts: list[bytes | None] = []
    for _ in range(3):
        if len(buffer) - at < 4:
            return None
        n = _LENGTH.unpack_from(buffer, at)[0]
        at += 4
        if n > 0:
            if len(buffer) - at < n:
                return None
            texts.append(memoryview(buffer)[at:at + n].tobytes())
            at += n
        else:
            texts.append(None if n < 0 else b"")
    codec, dtype, payload = texts
    values = None
    if payload is not None and not deleted:
        assert codec is not None and dtype is not None
        values = decode_stored(payload, crc, size, codec.decode(), dtype.decode(), length,
                               codecs, lambda: describe(row - 1))
    return at, (row - 1, old, start, length, count, values)
