"""Zstandard codecs: ``"zstd"`` (plain) and ``"zstd-shuffle"`` (byte shuffle, then zstd).

Format: one zstd frame (with its content size, without checksum) of the little-endian bytes of
the values, byte-shuffled first for ``"zstd-shuffle"`` (see :mod:`._shuffle`). The level
(default 3) only changes how hard the encoder works: any level decodes with the same decoder,
so the level is a setting of the codec, not part of its id. Byte shuffle makes zstd *larger*
on load curves (+24 % on month chunks, ``bench/RESULTS-codecs.md``); it only helps on noise.

``zstandard`` compressor and decompressor objects are reusable but not thread-safe, so each
thread keeps its own in a module-level :class:`threading.local` (one compressor per level):
codec instances stay stateless, picklable and safe to share between threads. ``zstandard`` is
imported on first use; when it is missing the codec raises
:class:`~curvestore.errors.BackendNotInstalledError` naming the ``zstd`` extra.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from curvestore.codecs._shuffle import shuffle, unshuffle
from curvestore.codecs.base import Codec
from curvestore.codecs.none import SUPPORTED_DTYPES, expected_nbytes, from_le_bytes, to_le_bytes
from curvestore.errors import BackendNotInstalledError, ConfigurationError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import zstandard

__all__ = ["ZstdCodec", "ZstdShuffleCodec"]

DEFAULT_LEVEL = 3
_MIN_LEVEL, _MAX_LEVEL = -(1 << 17), 22  # ZSTD_minCLevel() and ZSTD_maxCLevel()
_local = threading.local()


def _zstd(codec_id: str) -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise BackendNotInstalledError(f"codec {codec_id!r}", extra="zstd", cause=str(exc)) from exc
    return zstandard


def _compressor(codec_id: str, level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = _zstd(codec_id).ZstdCompressor(level=level)
    return compressor


def _decompressor(codec_id: str) -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = _zstd(codec_id).ZstdDecompressor()
    return decompressor


class ZstdCodec(Codec):
    """Zstandard compression of the raw little-endian bytes.

    Parameters
    ----------
    level
        Compression level, -131072 (fastest) to 22 (smallest); 3 by default.
    """

    codec_id: ClassVar[str] = "zstd"
    supported_dtypes: ClassVar[frozenset[str]] = SUPPORTED_DTYPES
    _shuffle: ClassVar[bool] = False

    def check_available(self) -> None:
        _zstd(self.codec_id)

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise ConfigurationError(f"zstd level must be an integer, got {level!r}")
        if not _MIN_LEVEL <= level <= _MAX_LEVEL:
            raise ConfigurationError(f"zstd level must be in [{_MIN_LEVEL}, {_MAX_LEVEL}]")
        self.level = level

    def get_config(self) -> dict[str, Any]:
        """The codec's JSON configuration: ``{"id": ..., "level": ...}``."""
        return {"id": self.codec_id, "level": self.level}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ZstdCodec:
        """Build a codec from :meth:`get_config` output."""
        return cls(level=config.get("level", DEFAULT_LEVEL))

    def encode(self, values: np.ndarray) -> bytes:
        """Compress a 1-D array (see :meth:`Codec.encode`)."""
        compressor = _compressor(self.codec_id, self.level)
        le = to_le_bytes(values, self.codec_id, self.supported_dtypes)
        return compressor.compress(shuffle(le) if self._shuffle else le.tobytes())

    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        """Decompress a payload (see :meth:`Codec.decode`).

        Raises
        ------
        IntegrityError
            If the payload is not a zstd frame of exactly ``length`` elements of ``dtype``.
        """
        zstandard = _zstd(self.codec_id)
        decompressor = _decompressor(self.codec_id)
        dtype, nbytes = expected_nbytes(dtype, length, self.codec_id, self.supported_dtypes)
        try:
            # Check the declared size first: a forged header must not make us allocate it.
            declared = zstandard.frame_content_size(payload)
            if declared != nbytes:
                raise IntegrityError(
                    f"codec {self.codec_id!r}: frame declares {declared} bytes, expected {nbytes}"
                )
            data = decompressor.decompress(payload)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"codec {self.codec_id!r}: cannot decompress: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"codec {self.codec_id!r}: cannot decompress: {exc}") from exc
        le_bytes: bytes | np.ndarray = (
            unshuffle(data, dtype.itemsize, length) if self._shuffle else data)
        return from_le_bytes(le_bytes, dtype, length, self.codec_id, self.supported_dtypes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(codec_id={self.codec_id!r}, level={self.level})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.level == self.level  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.codec_id, self.level))


class ZstdShuffleCodec(ZstdCodec):
    """Byte shuffle, then zstandard compression."""

    codec_id: ClassVar[str] = "zstd-shuffle"
    _shuffle: ClassVar[bool] = True
