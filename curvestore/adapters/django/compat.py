"""Chunk blob formats of the ``data`` column.

Two formats share the column and are told apart by their first bytes, so a table may mix them:

* **holcstore** (the default, written by holcstore 0.6.x and readable by it): the LZ4 *frame*
  (``lz4.frame.compress``) of the dense native buffer of the WHOLE chunk period, NaN where
  there is no value; ``dtype`` names the buffer's dtype and ``start_ts`` is the time of its
  first point (the period start). No checksum, no codec choice, and a partial month costs as
  much as a full one.
* **curvestore frame** (opt-in, ``CURVESTORE_FORMAT = True`` on the model): ``MAGIC``, then
  the codec id, the stored span (start offset and length in grid points from the period
  start), the number of valid points and the payload's CRC-32, then the payload exactly as
  the core's codec encoded it (trimmed to the valid span). holcstore cannot read it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["HOLC_EMPTY", "MAGIC", "Framed", "holc_decode", "holc_encode", "holc_raw", "is_framed",
           "pack_frame", "unpack_frame"]

MAGIC = b"CVS\x01"
_HEAD = struct.Struct("<IIII")  # start, length, count, crc32


def _lz4() -> object:
    try:
        import lz4.frame
    except ImportError as exc:  # pragma: no cover - lz4 is a core dependency
        raise ImportError("holcstore-format chunks need the lz4 package") from exc
    return lz4.frame


#: What holcstore stores in ``data`` for a soft-deleted chunk (an empty buffer's frame).
HOLC_EMPTY: bytes = _lz4().compress(b"")  # type: ignore[attr-defined]


def holc_encode(values: np.ndarray) -> bytes:
    """holcstore's blob: the LZ4 frame of the native float64 buffer."""
    buf = np.ascontiguousarray(values, dtype=np.float64)
    return _lz4().compress(buf)  # type: ignore[attr-defined]  # buffer protocol: no copy


def holc_raw(data: bytes) -> bytes:
    """The buffer a holcstore blob holds (its LZ4 frame decompressed)."""
    return _lz4().decompress(data)  # type: ignore[attr-defined,no-any-return]


def holc_decode(data: bytes, dtype: str) -> np.ndarray:
    """Values of a holcstore blob, as float64 (a non-float dtype is converted)."""
    raw = _lz4().decompress(bytes(data))  # type: ignore[attr-defined]
    arr = np.frombuffer(raw, dtype=np.dtype(dtype or "float64"))
    return arr if arr.dtype == np.float64 else arr.astype(np.float64)


@dataclass(frozen=True, slots=True)
class Framed:
    """A curvestore-framed blob, split into its header fields and payload."""

    codec: str
    start: int
    length: int
    count: int
    checksum: int
    payload: bytes


def is_framed(data: bytes) -> bool:
    return bytes(data[:4]) == MAGIC


def pack_frame(codec: str, start: int, length: int, count: int, checksum: int,
               payload: bytes) -> bytes:
    name = codec.encode()
    if len(name) > 255:
        raise ValueError(f"codec id {codec!r} is too long")
    return b"".join((MAGIC, bytes((len(name),)), name,
                     _HEAD.pack(start, length, count, checksum), payload))


def unpack_frame(data: bytes) -> Framed:
    """Parse a framed blob; ValueError when it is truncated."""
    data = bytes(data)
    n = data[4]
    head_end = 5 + n + _HEAD.size
    if len(data) < head_end:
        raise ValueError("truncated curvestore chunk frame")
    codec = data[5:5 + n].decode()
    start, length, count, crc = _HEAD.unpack_from(data, 5 + n)
    return Framed(codec, start, length, count, crc, data[head_end:])

