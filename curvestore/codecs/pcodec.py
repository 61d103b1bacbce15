"""The pcodec codec, id ``"pcodec"``: numeric compression with the ``pcodec`` package (Pco).

Pco compresses numbers as numbers (it finds the 0.1 kW quantum of a meter, deltas and ranges),
and is lossless for every bit pattern, NaN payloads, -0.0 and infinities included. But a NaN
inside a float chunk defeats its mode detection: ten missing points in a month of load curve
cost +20 %, a month half missing costs almost twice the present half alone. So missing points
are taken out and their positions stored as run lengths.

Payload format (frozen; ``u32`` is unsigned 32-bit little-endian; a "pco file" is the output of
``pcodec.standalone.simple_compress`` with ``ChunkConfig(compression_level=8)``):

``0x00`` + pco file
    *Plain*: the pco file holds all ``length`` values. Used for integer dtypes, for float
    arrays without NaN, and for float arrays whose NaNs are not all the canonical quiet NaN.
``0x01`` + ``u32 n`` + pco file of ``n`` bytes + pco file
    *NaN-masked*, for float arrays whose NaNs all have the bit pattern of ``numpy.nan`` cast to
    the dtype. The first pco file holds uint32 run lengths that alternate present / missing,
    starting with a (possibly empty) run of present values and summing to ``length``; the second
    holds the present values in order.

``pcodec`` is imported on first use; when it is missing the codec raises
:class:`~curvestore.errors.BackendNotInstalledError` naming the ``pcodec`` extra.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import numpy as np

from curvestore.codecs.base import Codec
from curvestore.codecs.none import SUPPORTED_DTYPES, as_native_1d, expected_nbytes
from curvestore.errors import BackendNotInstalledError, IntegrityError

__all__ = ["PcodecCodec"]

COMPRESSION_LEVEL = 8  # pinned rather than pcodec.DEFAULT_COMPRESSION_LEVEL, which may change
_PLAIN, _NAN_MASKED = 0, 1
_U32 = struct.Struct("<I")


def _pcodec(codec_id: str) -> Any:
    try:
        import pcodec
        import pcodec.standalone
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"codec {codec_id!r}", extra="pcodec", cause=str(exc)
        ) from exc
    return pcodec


def _canonical_nan_mask(values: np.ndarray) -> np.ndarray | None:
    """Where ``values`` is NaN, if it has NaNs and they are all canonical; else None."""
    if values.dtype.kind != "f" or len(values) >= 1 << 32:
        return None
    mask = np.isnan(values)
    if not mask.any():
        return None
    uint = np.dtype(f"u{values.dtype.itemsize}")
    canonical = np.array(np.nan, dtype=values.dtype).view(uint)
    if not (values[mask].view(uint) == canonical).all():
        return None
    return mask


class PcodecCodec(Codec):
    """Pco compression, with missing values (NaN) stored as run lengths."""

    codec_id: ClassVar[str] = "pcodec"
    supported_dtypes: ClassVar[frozenset[str]] = SUPPORTED_DTYPES

    def check_available(self) -> None:
        _pcodec(self.codec_id)

    def _compress(self, pco: Any, values: np.ndarray) -> bytes:
        config = pco.ChunkConfig(compression_level=COMPRESSION_LEVEL)
        return bytes(pco.standalone.simple_compress(values, config))

    def _decompress(self, pco: Any, data: bytes, dtype: np.dtype, length: int) -> np.ndarray:
        out = np.empty(length, dtype=dtype)
        try:
            progress = pco.standalone.simple_decompress_into(data, out)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise IntegrityError(f"codec {self.codec_id!r}: cannot decompress: {exc}") from exc
        if progress.n_processed != length or not progress.finished:
            raise IntegrityError(
                f"codec {self.codec_id!r}: payload does not hold exactly {length} x {dtype}"
            )
        return out

    def encode(self, values: np.ndarray) -> bytes:
        """Compress a 1-D array (see :meth:`Codec.encode`)."""
        pco = _pcodec(self.codec_id)
        values = as_native_1d(values, self.codec_id, self.supported_dtypes)
        mask = _canonical_nan_mask(values)
        if mask is None:
            return bytes([_PLAIN]) + self._compress(pco, values)
        edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
        runs = np.diff(np.concatenate(([0], edges, [len(mask)]))).astype(np.uint32)
        if mask[0]:
            runs = np.concatenate((np.zeros(1, np.uint32), runs))
        runs_file = self._compress(pco, runs)
        present = self._compress(pco, np.ascontiguousarray(values[~mask]))
        return bytes([_NAN_MASKED]) + _U32.pack(len(runs_file)) + runs_file + present

    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        """Decompress a payload (see :meth:`Codec.decode`).

        Raises
        ------
        IntegrityError
            If the payload is not a valid pcodec payload of ``length`` elements of ``dtype``.
        """
        pco = _pcodec(self.codec_id)
        dtype, _ = expected_nbytes(dtype, length, self.codec_id, self.supported_dtypes)
        payload = bytes(payload)
        if not payload:
            raise IntegrityError(f"codec {self.codec_id!r}: empty payload")
        tag = payload[0]
        if tag == _PLAIN:
            return self._decompress(pco, payload[1:], dtype, length)
        if tag != _NAN_MASKED or dtype.kind != "f" or len(payload) < 1 + _U32.size:
            raise IntegrityError(f"codec {self.codec_id!r}: bad payload header")
        (n,) = _U32.unpack_from(payload, 1)
        start = 1 + _U32.size
        runs_file, present_file = payload[start : start + n], payload[start + n :]
        try:
            raw_runs = pco.standalone.simple_decompress(runs_file)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise IntegrityError(f"codec {self.codec_id!r}: bad NaN runs: {exc}") from exc
        if raw_runs is None or raw_runs.dtype != np.uint32:
            raise IntegrityError(f"codec {self.codec_id!r}: bad NaN runs")
        runs = raw_runs.astype(np.int64)
        if int(runs.sum()) != length:
            raise IntegrityError(f"codec {self.codec_id!r}: NaN runs do not cover {length} points")
        present = self._decompress(pco, present_file, dtype, int(runs[::2].sum()))
        out = np.full(length, np.nan, dtype=dtype)
        if len(runs) <= 64:  # a few outages: copy slices, much faster than a boolean mask
            src = dst = 0
            for i, run in enumerate(runs.tolist()):
                if i % 2 == 0:
                    out[dst : dst + run] = present[src : src + run]
                    src += run
                dst += run
        else:
            out[~np.repeat(np.arange(len(runs)) % 2 == 1, runs)] = present
        return out
