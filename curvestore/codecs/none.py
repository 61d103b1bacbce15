"""The identity codec, and the raw-bytes helpers every other codec builds on.

``NoneCodec`` (id ``"none"``) stores the values as their raw **little-endian** bytes, whatever
the machine's byte order: a float64 chunk of ``n`` points is exactly ``8 * n`` bytes. It is the
reference the benchmarks compare against and a fallback when CPU matters more than space.

The helpers :func:`to_le_bytes` and :func:`from_le_bytes` hold the input checks shared by all
built-in codecs: 1-D only, a supported dtype, any memory layout (non-contiguous or big-endian
input is copied, never rejected), and a writable, native-order result of exactly ``length``
elements on decode, or :class:`~curvestore.errors.IntegrityError`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np

from curvestore.core.codec import Codec
from curvestore.errors import IntegrityError, InvalidDataError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "SUPPORTED_DTYPES",
    "NoneCodec",
    "as_native_1d",
    "check_dtype",
    "expected_nbytes",
    "from_le_bytes",
    "to_le_bytes",
]

#: The dtypes every built-in codec round-trips bit for bit (float64 is the store's own dtype).
SUPPORTED_DTYPES: frozenset[str] = frozenset(
    {"float64", "float32", "int64", "int32", "uint64", "uint32"}
)


@functools.lru_cache(maxsize=64)
def _native_and_name(dtype: np.dtype) -> tuple[np.dtype, str]:
    return dtype.newbyteorder("="), dtype.name  # dtype.name costs ~5 us: cache it


@functools.lru_cache(maxsize=64)
def _little_endian(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<")  # a new dtype object per call otherwise, once per chunk


def check_dtype(dtype: np.dtype, codec_id: str, supported: frozenset[str]) -> np.dtype:
    """Return ``dtype`` in native byte order, or raise InvalidDataError if it is unsupported."""
    native, name = _native_and_name(np.dtype(dtype))
    if name not in supported:
        raise InvalidDataError(
            f"codec {codec_id!r} does not support dtype {native}; supported: "
            f"{', '.join(sorted(supported))}"
        )
    return native


def expected_nbytes(
    dtype: np.dtype, length: int, codec_id: str, supported: frozenset[str]
) -> tuple[np.dtype, int]:
    """The native dtype and byte size of ``length`` elements, or IntegrityError if impossible."""
    try:
        dtype = check_dtype(dtype, codec_id, supported)
    except InvalidDataError as exc:
        raise IntegrityError(str(exc)) from exc
    if length < 0:
        raise IntegrityError(f"codec {codec_id!r}: negative length {length}")
    return dtype, int(length) * dtype.itemsize


def as_native_1d(values: np.ndarray, codec_id: str, supported: frozenset[str]) -> np.ndarray:
    """``values`` as a C-contiguous, native-order 1-D array (copied only when needed)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise InvalidDataError(f"codec {codec_id!r} encodes 1-D arrays, got shape {values.shape}")
    dtype = check_dtype(values.dtype, codec_id, supported)
    return np.ascontiguousarray(values, dtype=dtype)


def to_le_bytes(values: np.ndarray, codec_id: str, supported: frozenset[str]) -> np.ndarray:
    """``values`` as a contiguous little-endian 1-D array (a view when already so)."""
    values = as_native_1d(values, codec_id, supported)
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))


def from_le_bytes(
    buf: bytes | bytearray | np.ndarray,
    dtype: np.dtype,
    length: int,
    codec_id: str,
    supported: frozenset[str],
) -> np.ndarray:
    """Little-endian bytes -> a writable, native-order array of ``length`` elements.

    A ``bytearray`` or writable ndarray ``buf`` is reused without copying (the caller hands it
    over); ``bytes`` are copied.

    Raises
    ------
    IntegrityError
        If ``buf`` does not hold exactly ``length`` elements of ``dtype``, or the dtype is not
        one the codec supports.
    """
    dtype, expected = expected_nbytes(dtype, length, codec_id, supported)
    # numpy's stubs give ndarray the buffer protocol only from Python 3.12 on; it has it on 3.11.
    nbytes = memoryview(cast("Buffer", buf)).nbytes
    if nbytes != expected:
        raise IntegrityError(
            f"codec {codec_id!r}: payload holds {nbytes} bytes, expected {length} x {dtype}"
        )
    owned = isinstance(buf, bytearray) or (isinstance(buf, np.ndarray) and buf.flags.writeable)
    values = np.frombuffer(buf, dtype=_little_endian(dtype))
    return values.astype(dtype, copy=not owned)


class NoneCodec(Codec):
    """No compression: the raw little-endian bytes of the values."""

    codec_id: ClassVar[str] = "none"
    supported_dtypes: ClassVar[frozenset[str]] = SUPPORTED_DTYPES

    def encode(self, values: np.ndarray) -> bytes:
        """Encode a 1-D array as its little-endian bytes (see :meth:`Codec.encode`)."""
        return to_le_bytes(values, self.codec_id, self.supported_dtypes).tobytes()

    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        """Decode raw little-endian bytes (see :meth:`Codec.decode`)."""
        return from_le_bytes(payload, dtype, length, self.codec_id, self.supported_dtypes)
