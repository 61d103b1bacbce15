"""The codec contract's former home, kept so plugins written against it keep importing: the
contract lives in :mod:`curvestore.core.codec`, and :mod:`curvestore.codecs` exports it."""

from curvestore.core.codec import Codec

__all__ = ["Codec"]
