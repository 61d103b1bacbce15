"""LZ4 codecs: ``"lz4"`` (plain) and ``"lz4-shuffle"`` (byte shuffle, then LZ4).

Format: one raw LZ4 *block* (``lz4.block.compress(..., store_size=False)``) of the little-endian
bytes of the values, byte-shuffled first for ``"lz4-shuffle"`` (see :mod:`._shuffle`). The
block format was chosen over the LZ4 frame format because the store already records dtype and
length beside every chunk, so the decompressed size is known, and integrity is the store's job
(chunk checksums). Measured with bare calls on month chunks of load curves
(``bench/RESULTS-codecs.md``), frames were 1.5 % larger (2.53 vs 2.49 bytes/point) and no
faster; on year chunks they were equal in size and speed. A decode whose output is not exactly
``length`` elements is an :class:`~curvestore.errors.IntegrityError`.

Byte shuffle makes LZ4 6-16 % smaller on load curves but decodes 2.3x slower; the store
default should not be ``"lz4-shuffle"`` (see the benchmark conclusion).

``lz4`` is imported on first use, so importing this module never fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np

from curvestore.codecs._shuffle import shuffle, unshuffle
from curvestore.codecs.none import SUPPORTED_DTYPES, expected_nbytes, from_le_bytes, to_le_bytes
from curvestore.core.codec import Codec
from curvestore.errors import BackendNotInstalledError, IntegrityError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["LZ4Codec", "LZ4ShuffleCodec"]


_LZ4_BLOCK: ModuleType | None = None


def _lz4_block(codec_id: str) -> ModuleType:
    global _LZ4_BLOCK
    if _LZ4_BLOCK is None:  # imported once: this runs for every chunk
        try:
            import lz4.block
        except ImportError as exc:
            raise BackendNotInstalledError(f"codec {codec_id!r}", extra="lz4",
                                           cause=str(exc)) from exc
        _LZ4_BLOCK = lz4.block
    return _LZ4_BLOCK


class LZ4Codec(Codec):
    """LZ4 block compression of the raw little-endian bytes."""

    codec_id: ClassVar[str] = "lz4"
    supported_dtypes: ClassVar[frozenset[str]] = SUPPORTED_DTYPES
    _shuffle: ClassVar[bool] = False

    def encode(self, values: np.ndarray) -> bytes:
        """Compress a 1-D array (see :meth:`Codec.encode`)."""
        block = _lz4_block(self.codec_id)
        le = to_le_bytes(values, self.codec_id, self.supported_dtypes)
        data = shuffle(le) if self._shuffle else le.tobytes()
        return bytes(block.compress(data, store_size=False))

    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        """Decompress a payload (see :meth:`Codec.decode`).

        Raises
        ------
        IntegrityError
            If the payload is not a valid block of exactly ``length`` elements of ``dtype``.
        """
        block = _lz4_block(self.codec_id)
        dtype, nbytes = expected_nbytes(dtype, length, self.codec_id, self.supported_dtypes)
        try:
            data = block.decompress(payload, uncompressed_size=nbytes, return_bytearray=True)
        except Exception as exc:  # LZ4BlockError, TypeError/ValueError on bad input
            raise IntegrityError(f"codec {self.codec_id!r}: cannot decompress: {exc}") from exc
        if self._shuffle:
            data = unshuffle(data, dtype.itemsize, length)
        return from_le_bytes(data, dtype, length, self.codec_id, self.supported_dtypes)

    def encode_many(self, values: np.ndarray, starts: Sequence[int],
                    lengths: Sequence[int]) -> list[bytes]:
        """Compress slices of one array (see :meth:`Codec.encode_many`): the array is checked
        and made little-endian once, and each slice handed to LZ4 as a view, not a copy."""
        if self._shuffle:
            return super().encode_many(values, starts, lengths)
        compress = _lz4_block(self.codec_id).compress
        le = to_le_bytes(values, self.codec_id, self.supported_dtypes)
        size = le.dtype.itemsize
        view = memoryview(cast("Buffer", le)).cast("B")  # numpy's 3.11 stubs lack Buffer
        return [compress(view[s * size:(s + n) * size], store_size=False)
                for s, n in zip(starts, lengths, strict=True)]

    def decode_many(self, payloads: Sequence[bytes], *, dtype: np.dtype,
                    lengths: Sequence[int]) -> np.ndarray:
        """Decompress many payloads into one array (see :meth:`Codec.decode_many`): one
        join and one conversion instead of one array per payload."""
        if self._shuffle or not payloads:
            return super().decode_many(payloads, dtype=dtype, lengths=lengths)
        block = _lz4_block(self.codec_id)
        dtype, _ = expected_nbytes(dtype, 0, self.codec_id, self.supported_dtypes)
        size = dtype.itemsize
        parts = []
        for payload, length in zip(payloads, lengths, strict=True):
            try:
                data = block.decompress(payload, uncompressed_size=length * size)
            except Exception as exc:  # LZ4BlockError, TypeError/ValueError on bad input
                raise IntegrityError(f"codec {self.codec_id!r}: cannot decompress: {exc}"
                                     ) from exc
            if len(data) != length * size:
                raise IntegrityError(f"codec {self.codec_id!r}: payload holds {len(data)} "
                                     f"bytes, expected {length} x {dtype}")
            parts.append(data)
        joined = bytearray().join(parts)
        return from_le_bytes(joined, dtype, len(joined) // size, self.codec_id,
                             self.supported_dtypes)


class LZ4ShuffleCodec(LZ4Codec):
    """Byte shuffle, then LZ4 block compression."""

    codec_id: ClassVar[str] = "lz4-shuffle"
    _shuffle: ClassVar[bool] = True
