"""Codecs: one module per codec (lz4, lz4-shuffle, zstd, pcodec, none), registered like
third-party plugins, their libraries imported on first use. A plugin's codec subclasses
:class:`Codec` (the contract, owned by the core: :mod:`curvestore.core.codec`)."""

from curvestore.core.codec import Codec

__all__ = ["Codec"]
