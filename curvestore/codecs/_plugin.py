"""Registers the built-in codecs, exactly as a third-party plugin would."""

from __future__ import annotations

from curvestore.hookspecs import hookimpl
from curvestore.registry import Registrar


@hookimpl
def register_codecs(register: Registrar) -> None:
    register.codec("none", "curvestore.codecs.none:NoneCodec")
    register.codec("lz4", "curvestore.codecs.lz4:LZ4Codec")
    register.codec("lz4-shuffle", "curvestore.codecs.lz4:LZ4ShuffleCodec")
    register.codec("zstd", "curvestore.codecs.zstd:ZstdCodec", extra="zstd")
    register.codec("zstd-shuffle", "curvestore.codecs.zstd:ZstdShuffleCodec", extra="zstd")
    register.codec("pcodec", "curvestore.codecs.pcodec:PcodecCodec", extra="pcodec")
