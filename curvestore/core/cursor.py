"""Opaque change-feed cursors.

A cursor names the store that issued it and a position in its feed (a tuple of non-negative
integers whose meaning is the backend's). Callers only pass cursors back; a cursor from
another store, or one that was tampered with, raises :class:`InvalidCursorError` instead of
silently restarting.

The checksum only catches damage: it is not a signature, and the store id is public (it is
in the manifest), so anyone can build a well-formed cursor for any position. Decoding
therefore checks the shape (``arity`` integers in ``[0, 2**63)``), and each backend's
``changes()`` checks the position against its feed: beyond the current end, or between two
entries, is refused with :class:`InvalidCursorError` (a client handed such a cursor would
otherwise skip changes).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from curvestore.errors import InvalidCursorError

__all__ = ["MAX_CURSOR_LENGTH", "decode_cursor", "encode_cursor", "unknown_position"]

_UNKNOWN = ("points {where} this store's change feed: it was forged, or the store was restored "
            "from an older copy")

_PREFIX = "cv1."
MAX_CURSOR_LENGTH = 512
"""Longest cursor accepted (the ones issued are under 150 characters)."""
_POSITION_LIMIT = 2**63  # positions are signed 64-bit integers in every backend's storage


def encode_cursor(store_id: str, position: tuple[int, ...]) -> str:
    body = json.dumps([store_id, list(position)], separators=(",", ":")).encode()
    mac = zlib.crc32(body).to_bytes(4, "big")
    return _PREFIX + base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def _shown(cursor: object) -> str:
    text = repr(cursor)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_cursor(cursor: str, store_id: str, arity: int | None = None) -> tuple[int, ...]:
    """The position carried by ``cursor``.

    Raises
    ------
    InvalidCursorError
        ``cursor`` is not a cursor (wrong type, too long, bad encoding or checksum), was
        issued by another store, or its position is not ``arity`` integers (when given) in
        ``[0, 2**63)``.
    """
    if not isinstance(cursor, str) or not cursor.startswith(_PREFIX) \
            or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError(f"malformed change-feed cursor {_shown(cursor)}", cursor)
    text = cursor[len(_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body, mac = raw[:-4], raw[-4:]
        if zlib.crc32(body).to_bytes(4, "big") != mac:
            raise ValueError("checksum")
        owner, position = json.loads(body)
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise InvalidCursorError(f"malformed change-feed cursor {_shown(cursor)}",
                                 cursor) from exc
    if owner != store_id:
        raise InvalidCursorError("this change-feed cursor was issued by another store", cursor)
    if not isinstance(position, list) or not all(
            type(p) is int and 0 <= p < _POSITION_LIMIT for p in position):
        raise InvalidCursorError(f"malformed change-feed cursor {_shown(cursor)} (its "
                                 "position is not a list of non-negative 64-bit integers)",
                                 cursor)
    if arity is not None and len(position) != arity:
        raise InvalidCursorError("this change-feed cursor was not issued by this kind of "
                                 f"store (a position of {len(position)} numbers, not {arity})",
                                 cursor)
    return tuple(position)


def unknown_position(where: str = "beyond the end of") -> InvalidCursorError:
    """The error a backend's ``feed`` raises for a position it never issued (``where``:
    "beyond the end of" or "between two entries of"); the core names the cursor."""
    return InvalidCursorError("change-feed position " + _UNKNOWN.format(where=where))


def named(error: InvalidCursorError, cursor: str) -> InvalidCursorError:
    """``error`` (from :func:`unknown_position`) as met by the holder of ``cursor``."""
    text = str(error).removeprefix("change-feed position ")
    return InvalidCursorError(f"change-feed cursor {_shown(cursor)} {text}", cursor)
