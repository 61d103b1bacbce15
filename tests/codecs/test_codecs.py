"""Every built-in codec passes the shipped conformance suite against its golden files."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from curvestore.codecs.lz4 import LZ4Codec, LZ4ShuffleCodec
from curvestore.codecs.none import NoneCodec
from curvestore.codecs.pcodec import PcodecCodec
from curvestore.codecs.zstd import ZstdCodec, ZstdShuffleCodec
from curvestore.errors import BackendNotInstalledError, ConfigurationError, InvalidDataError
from curvestore.testing.codec import CodecConformance

FIXTURES = Path(__file__).parent / "fixtures"


class TestNone(CodecConformance):
    codec_factory = NoneCodec
    golden_dir = FIXTURES


class TestLZ4(CodecConformance):
    codec_factory = LZ4Codec
    golden_dir = FIXTURES


class TestLZ4Shuffle(CodecConformance):
    codec_factory = LZ4ShuffleCodec
    golden_dir = FIXTURES


class TestZstd(CodecConformance):
    codec_factory = ZstdCodec
    golden_dir = FIXTURES


class TestZstdShuffle(CodecConformance):
    codec_factory = ZstdShuffleCodec
    golden_dir = FIXTURES


class TestPcodec(CodecConformance):
    codec_factory = PcodecCodec
    golden_dir = FIXTURES


# -- beyond the suite: lazy imports, missing libraries, zstd settings ----------------------------

MODULES = {
    "curvestore.codecs.lz4": ("lz4", "LZ4Codec", "lz4"),
    "curvestore.codecs.zstd": ("zstandard", "ZstdCodec", "zstd"),
    "curvestore.codecs.pcodec": ("pcodec", "PcodecCodec", "pcodec"),
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_import_does_not_load_the_library(module: str) -> None:
    library = MODULES[module][0]
    code = f"import sys, {module}; assert {library!r} not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_missing_library_names_the_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    library, class_name, extra = MODULES[module]
    for name in list(sys.modules):
        if name == library or name.startswith(f"{library}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)  # makes "import library" fail
    mod = importlib.import_module(module)
    if hasattr(mod, "_local"):  # forget the zstd objects cached by earlier tests
        monkeypatch.setattr(mod, "_local", threading.local())
    if hasattr(mod, "_LZ4_BLOCK"):  # and the lz4 module cached by the first use
        monkeypatch.setattr(mod, "_LZ4_BLOCK", None)
    codec = getattr(mod, class_name)()
    with pytest.raises(BackendNotInstalledError) as info:
        codec.encode(np.arange(3.0))
    assert info.value.extra == extra
    with pytest.raises(BackendNotInstalledError):
        codec.decode(b"\x00", dtype=np.dtype("float64"), length=0)


def test_zstd_level() -> None:
    values = np.tile(np.arange(10.0), 30)
    fast, small = ZstdCodec(level=1), ZstdCodec(level=19)
    assert fast != small and fast == ZstdCodec(level=1)
    assert ZstdCodec.from_config(small.get_config()) == small
    assert small.get_config() == {"id": "zstd", "level": 19}
    for codec in (fast, small):  # the decoder does not depend on the level
        payload = codec.encode(values)
        assert np.array_equal(ZstdCodec().decode(payload, dtype=values.dtype, length=300), values)
    assert ZstdShuffleCodec(level=-5) != ZstdCodec(level=-5)
    for bad in (23, "3", 2.5, True):
        with pytest.raises(ConfigurationError):
            ZstdCodec(level=bad)  # type: ignore[arg-type]


def test_unsupported_dtype_is_invalid_data() -> None:
    for codec in (NoneCodec(), LZ4Codec(), ZstdCodec(), PcodecCodec()):
        with pytest.raises(InvalidDataError):
            codec.encode(np.array(["a", "b"]))
        with pytest.raises(InvalidDataError):
            codec.encode(np.zeros((2, 2)))
