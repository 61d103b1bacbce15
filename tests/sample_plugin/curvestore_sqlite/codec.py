"""A zlib codec: DEFLATE over the little-endian bytes of the array."""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np

from curvestore.codecs import Codec
from curvestore.errors import IntegrityError


class ZlibCodec(Codec):
    codec_id: ClassVar[str] = "zlib"

    def encode(self, values: np.ndarray) -> bytes:
        data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        return zlib.compress(data.tobytes(), 6)

    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        try:
            raw = zlib.decompress(payload)
        except zlib.error as exc:
            raise IntegrityError(f"zlib payload cannot be decompressed: {exc}") from exc
        dtype = np.dtype(dtype).newbyteorder("<")
        if len(raw) != length * dtype.itemsize:
            raise IntegrityError(f"zlib payload holds {len(raw)} bytes, expected "
                                 f"{length} x {dtype}")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)
