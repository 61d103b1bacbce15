"""Opaque change-feed cursors.

A cursor names the store that issued it and a position in its feed (a tuple of integers whose
meaning is the backend's). Callers only pass cursors back; a cursor from another store, or
one that was tampered with, raises :class:`SyncError` instead of silently restarting.
"""

from __future__ import annotations

import base64
import json
import zlib

from curvestore.errors import SyncError

__all__ = ["decode_cursor", "encode_cursor"]

_PREFIX = "cv1."


def encode_cursor(store_id: str, position: tuple[int, ...]) -> str:
    body = json.dumps([store_id, list(position)], separators=(",", ":")).encode()
    mac = zlib.crc32(body).to_bytes(4, "big")
    return _PREFIX + base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def decode_cursor(cursor: str, store_id: str) -> tuple[int, ...]:
    if not isinstance(cursor, str) or not cursor.startswith(_PREFIX):
        raise SyncError(f"malformed change-feed cursor {cursor!r}")
    text = cursor[len(_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body, mac = raw[:-4], raw[-4:]
        if zlib.crc32(body).to_bytes(4, "big") != mac:
            raise ValueError("checksum")
        owner, position = json.loads(body)
        position = tuple(int(p) for p in position)
    except (ValueError, TypeError) as exc:
        raise SyncError(f"malformed change-feed cursor {cursor!r}") from exc
    if owner != store_id:
        raise SyncError("this change-feed cursor was issued by another store")
    return position
