"""Byte shuffle: transpose the bytes of fixed-size elements, as blosc's SHUFFLE filter does.

For ``n`` float64 values the shuffled buffer holds the ``n`` first (least significant) bytes,
then the ``n`` second bytes, ..., then the ``n`` sign/exponent bytes. Neighbouring values of a
smooth curve share their high bytes, so the later planes become long runs that LZ4 and zstd
compress far better than the interleaved original. Both directions are one vectorised numpy
transpose; the element bytes are always taken in little-endian order so the format does not
depend on the machine.
"""

from __future__ import annotations

import numpy as np

from curvestore.errors import IntegrityError

__all__ = ["shuffle", "unshuffle"]


def shuffle(values_le: np.ndarray) -> bytes:
    """Shuffled bytes of a contiguous, little-endian 1-D array."""
    itemsize = values_le.dtype.itemsize
    if itemsize == 1 or values_le.size == 0:
        return values_le.tobytes()
    return values_le.view(np.uint8).reshape(-1, itemsize).T.tobytes()


def unshuffle(buf: bytes | bytearray, itemsize: int, length: int) -> np.ndarray:
    """Inverse of :func:`shuffle`: a new uint8 array of the little-endian element bytes.

    Raises
    ------
    IntegrityError
        If ``buf`` is not exactly ``itemsize * length`` bytes long.
    """
    if len(buf) != itemsize * length:
        raise IntegrityError(
            f"shuffled buffer holds {len(buf)} bytes, expected {length} x {itemsize} bytes"
        )
    planes = np.frombuffer(buf, dtype=np.uint8).reshape(itemsize, length)
    return np.ascontiguousarray(planes.T).reshape(-1)
