"""The codec contract.

A codec turns a one-dimensional, C-contiguous numeric array into bytes and back, losslessly:
``decode(encode(a), dtype=a.dtype, length=len(a))`` must equal ``a`` bit for bit, NaN payloads
included. A codec is identified by its ``codec_id`` (lower-case, ``[a-z0-9_+-]``), which is
recorded with every chunk it encodes; once data exists under an id, the bytes that id produces
must stay decodable forever (golden files in the test suite freeze them). Two codec classes may
share an id only if each decodes the other's output. Codecs hold no per-call state, so one
instance may be used from several threads at once.

Codecs are plugins: a plugin registers them through the ``register_codecs`` hook by dotted path,
so a codec whose compression library is missing costs nothing until it is asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

__all__ = ["Codec", "CodecLookup"]


class Codec(ABC):
    """Lossless array <-> bytes transformation, identified by ``codec_id``."""

    codec_id: ClassVar[str]

    @abstractmethod
    def encode(self, values: np.ndarray) -> bytes:
        """Encode a 1-D contiguous array.

        Parameters
        ----------
        values
            The array to encode; any numeric dtype the codec supports (float64 at least).

        Returns
        -------
        bytes
            A self-contained payload; the dtype and length are stored beside it by the caller.
        """

    @abstractmethod
    def decode(self, payload: bytes, *, dtype: np.dtype, length: int) -> np.ndarray:
        """Decode a payload produced by :meth:`encode`.

        Parameters
        ----------
        payload
            Bytes produced by ``encode``.
        dtype, length
            The dtype and number of elements of the encoded array.

        Returns
        -------
        numpy.ndarray
            A writable array of ``length`` elements of ``dtype``.

        Raises
        ------
        curvestore.errors.IntegrityError
            If the payload cannot be decoded to ``length`` elements.
        """

    def encode_many(self, values: np.ndarray, starts: Sequence[int],
                    lengths: Sequence[int]) -> list[bytes]:
        """Encode slices of one 1-D contiguous array: ``values[s:s + n]`` for each start and
        length, each payload exactly what :meth:`encode` makes of that slice.

        What a compaction calls for thousands of chunks laid out in one buffer, so a codec can
        skip its per-call checks and copies. The default calls :meth:`encode` per slice.
        """
        return [self.encode(values[s:s + n]) for s, n in zip(starts, lengths, strict=True)]

    def decode_many(self, payloads: Sequence[bytes], *, dtype: np.dtype,
                    lengths: Sequence[int]) -> np.ndarray:
        """Decode many payloads of one dtype into one array: their values back to back.

        What a compaction or a bulk read of small pieces calls, so a codec can skip its
        per-call overhead. The default decodes each payload with :meth:`decode`; an override
        must raise the same IntegrityError for any payload that is not exactly its length.
        """
        if not payloads:
            return np.empty(0, dtype=dtype)
        return np.concatenate([self.decode(p, dtype=dtype, length=n)
                               for p, n in zip(payloads, lengths, strict=True)])

    def check_available(self) -> None:
        """Raise if this codec cannot run here; the default (no optional library) never does.

        Called when the codec is looked up, so that a store is never created with, nor a
        listing claims, a codec whose library is missing.

        Raises
        ------
        curvestore.errors.BackendNotInstalledError
            The codec's library cannot be imported (the message names the pip extra).
        """
        return  # deliberately concrete: most codecs need no optional library

    def __repr__(self) -> str:
        return f"{type(self).__name__}(codec_id={self.codec_id!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash((type(self), self.codec_id))


CodecLookup = Callable[[str], Codec]
"""The codec registered under an id (``curvestore.registry.get_codec``): handed to the core,
which does not know where codecs come from."""
