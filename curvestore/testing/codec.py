"""``CodecConformance``: the tests every codec must pass, built-in or third-party.

Subclass it in a test module, name the codec and the directory of its golden files::

    from pathlib import Path

    from curvestore.testing.codec import CodecConformance
    from mypkg.codecs import MyCodec

    class TestMyCodec(CodecConformance):
        codec_factory = MyCodec             # any zero-argument callable returning the codec
        golden_dir = Path(__file__).parent / "fixtures"

The suite checks bit-exact round trips for every dtype the codec declares in its
``supported_dtypes`` class attribute (``{"float64"}`` when absent; float64 is mandatory), NaN
(canonical and odd payloads), -0.0, infinities, empty and length-1 arrays, non-contiguous
input, thread safety, pickling, and that truncated, garbage or mis-sized payloads raise
:class:`~curvestore.errors.IntegrityError`.

Golden files freeze the format, as numcodecs' ``check_backwards_compatibility`` does. Create
them **once**, when a codec id is introduced, with :func:`write_golden`, and commit them::

    python -c "from pathlib import Path; from mypkg.codecs import MyCodec; \\
        from curvestore.testing.codec import write_golden; \\
        write_golden(MyCodec(), Path('tests/codecs/fixtures'))"

``golden_dir/<codec_id>/<case>.bin`` holds a payload and ``<case>.json`` its dtype, length
and the SHA-256 of the values' little-endian bytes. ``test_golden_files`` fails when the
directory is empty, when a payload no longer decodes to the recorded values (a format break:
never acceptable), or when encoding the decoded values no longer gives the same bytes (the
encoder changed, for instance after a compression library upgrade; old data still reads, but
the change must be looked at). Tests never write golden files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pickle
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from curvestore.core.codec import Codec
from curvestore.errors import IntegrityError

__all__ = ["CodecConformance", "golden_cases", "write_golden"]

ALL_DTYPES = ("float64", "float32", "int64", "int32", "uint64", "uint32")
_CODEC_ID = re.compile(r"[a-z0-9_+-]+")


def _supported(codec: Codec) -> frozenset[str]:
    return frozenset(getattr(codec, "supported_dtypes", frozenset({"float64"})))


def _sha256_le(values: np.ndarray) -> str:
    le = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return hashlib.sha256(le.tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _cached_month() -> np.ndarray:
    from curvestore import sampledata

    series = sampledata.load_curves(1, "2024-01-01", "2024-02-01", seed=0)[0]
    return series.to_numpy(dtype=np.float64, copy=True)


def _load_month() -> np.ndarray:
    """A month of a realistic 15-min load curve in Europe/Paris: 2976 float64 points."""
    return _cached_month().copy()


def golden_cases(codec: Codec) -> dict[str, np.ndarray]:
    """The arrays :func:`write_golden` freezes, for the dtypes ``codec`` supports."""
    month = _load_month()  # 2976 points, 0.1 kW resolution
    month[:3] = np.nan  # the meter was installed late
    month[1000:1013] = np.nan  # a 3 h outage
    month[2000] = np.nan  # a lost reading
    month[2500:2600] = np.nan  # a day's outage
    rng = np.random.default_rng(20240101)
    cases = {
        "load-month-gaps": month,
        "random-1000": rng.random(1000),
        "length-1": np.array([42.5]),
    }
    supported = _supported(codec)
    if "float32" in supported:
        cases["float32-random-100"] = rng.standard_normal(100).astype(np.float32)
    if "int64" in supported:
        cases["int64-random-100"] = rng.integers(-(2**62), 2**62, 100, dtype=np.int64)
    if "int32" in supported:
        cases["int32-counter-100"] = np.cumsum(rng.integers(0, 50, 100)).astype(np.int32)
    return cases


def write_golden(codec: Codec, directory: Path) -> list[Path]:
    """Write the golden files of ``codec`` into ``directory/<codec_id>/``, once.

    Parameters
    ----------
    codec
        The codec whose format to freeze.
    directory
        The fixtures directory (the ``golden_dir`` of the test class).

    Returns
    -------
    list of Path
        The ``.bin`` files written.

    Raises
    ------
    FileExistsError
        If any golden file of ``codec`` exists already: golden files are never regenerated.
    """
    target = Path(directory) / codec.codec_id
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already holds golden files; they are never regenerated")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, values in golden_cases(codec).items():
        payload = codec.encode(values)
        meta = {
            "codec_id": codec.codec_id,
            "dtype": values.dtype.newbyteorder("<").str,
            "length": len(values),
            "sha256_of_values": _sha256_le(values),
        }
        (target / f"{name}.bin").write_bytes(payload)
        (target / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        written.append(target / f"{name}.bin")
    return written


def _bits(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def _sample(dtype: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` values of ``dtype`` including its extremes."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        values = rng.standard_normal(n).astype(dt) * dt.type(1000)
        extremes = [
            np.finfo(dt).max,
            np.finfo(dt).min,
            np.finfo(dt).tiny,
            np.finfo(dt).smallest_subnormal,
        ]
    else:
        info = np.iinfo(dt)
        values = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        extremes = [info.min, info.max, 0]
    extremes = extremes[:n]
    values[: len(extremes)] = np.array(extremes, dtype=dt)
    return values


class CodecConformance:
    """Tests every codec must pass; subclass and set ``codec_factory`` and ``golden_dir``."""

    #: Zero-argument callable returning the codec under test (often the codec class itself).
    codec_factory: ClassVar[Callable[[], Codec]]
    #: Directory holding ``<codec_id>/*.bin`` golden files (see :func:`write_golden`).
    golden_dir: ClassVar[Path | None] = None

    @pytest.fixture
    def codec(self) -> Codec:
        """The codec under test; override to build it differently."""
        return type(self).codec_factory()

    # -- helpers -----------------------------------------------------------------------------

    def roundtrip(self, codec: Codec, values: np.ndarray) -> np.ndarray:
        """Encode then decode ``values`` and assert the result is bit for bit the same."""
        before = values.copy()
        payload = codec.encode(values)
        assert isinstance(payload, bytes), f"encode returned {type(payload).__name__}"
        assert _bits(values) == _bits(before), "encode modified its input"
        out = codec.decode(payload, dtype=values.dtype, length=len(values))
        assert isinstance(out, np.ndarray)
        assert out.dtype == values.dtype, f"decoded dtype {out.dtype}, expected {values.dtype}"
        assert out.shape == (len(values),)
        assert out.flags.writeable, "decode must return a writable array"
        assert _bits(out) == _bits(values), "round trip is not bit-exact"
        return out

    def require(self, codec: Codec, dtype: str) -> None:
        if dtype not in _supported(codec):
            pytest.skip(f"{codec.codec_id} does not support {dtype}")

    # -- identity ----------------------------------------------------------------------------

    def test_codec_id(self, codec: Codec) -> None:
        assert _CODEC_ID.fullmatch(codec.codec_id), f"bad codec id {codec.codec_id!r}"

    def test_float64_is_supported(self, codec: Codec) -> None:
        assert "float64" in _supported(codec)

    def test_eq_hash_repr(self, codec: Codec) -> None:
        other = type(self).codec_factory()
        assert codec == other
        assert hash(codec) == hash(other)
        assert codec.codec_id in repr(codec)

    def test_pickle(self, codec: Codec) -> None:
        clone = pickle.loads(pickle.dumps(codec))
        assert clone == codec
        values = _sample("float64", 100)
        assert clone.encode(values) == codec.encode(values)

    # -- round trips -------------------------------------------------------------------------

    @pytest.mark.parametrize("dtype", ALL_DTYPES)
    def test_roundtrip_dtype(self, codec: Codec, dtype: str) -> None:
        self.require(codec, dtype)
        self.roundtrip(codec, _sample(dtype, 3000))

    def test_roundtrip_load_curve(self, codec: Codec) -> None:
        self.roundtrip(codec, _load_month())

    @pytest.mark.parametrize("dtype", ["float64", "float32"])
    def test_nan(self, codec: Codec, dtype: str) -> None:
        self.require(codec, dtype)
        values = _load_month().astype(dtype)
        values[:5] = np.nan
        values[100:150] = np.nan
        values[777] = np.nan
        values[-3:] = np.nan
        self.roundtrip(codec, values)
        self.roundtrip(codec, np.full(500, np.nan, dtype=dtype))
        self.roundtrip(codec, values[5:-3])  # gaps inside only

    def test_nan_payloads(self, codec: Codec) -> None:
        values = _load_month()
        bits = values.view(np.uint64)
        bits[10] = 0xFFF8000000000000  # negative quiet NaN (what 0 * inf gives on x86)
        bits[20] = 0x7FF0000000000001  # signalling NaN
        bits[30] = 0x7FF8DEADBEEF0001  # quiet NaN with a payload
        values[40:60] = np.nan
        self.roundtrip(codec, values)

    def test_signed_zero_and_inf(self, codec: Codec) -> None:
        values = np.array([0.0, -0.0, np.inf, -np.inf, -0.0, 1.0, np.nan, -0.0, np.inf])
        self.roundtrip(codec, values)
        self.roundtrip(codec, np.tile(values, 300))

    @pytest.mark.parametrize("dtype", ALL_DTYPES)
    def test_empty(self, codec: Codec, dtype: str) -> None:
        self.require(codec, dtype)
        self.roundtrip(codec, np.array([], dtype=dtype))

    @pytest.mark.parametrize("dtype", ALL_DTYPES)
    def test_length_one(self, codec: Codec, dtype: str) -> None:
        self.require(codec, dtype)
        self.roundtrip(codec, _sample(dtype, 1))

    def test_length_one_specials(self, codec: Codec) -> None:
        for special in (np.nan, -0.0, np.inf, 0.0):
            self.roundtrip(codec, np.array([special]))

    def test_non_contiguous_input(self, codec: Codec) -> None:
        month = _load_month()
        month[10:20] = np.nan
        for view in (month[::2], month[::-1], month[1::3]):
            assert not view.flags.c_contiguous
            payload = codec.encode(view)
            assert payload == codec.encode(np.ascontiguousarray(view))
            self.roundtrip(codec, view)

    def test_deterministic(self, codec: Codec) -> None:
        values = _load_month()
        assert codec.encode(values) == codec.encode(values.copy())

    def test_decode_returns_independent_arrays(self, codec: Codec) -> None:
        values = _sample("float64", 100)
        payload = codec.encode(values)
        first = codec.decode(payload, dtype=values.dtype, length=len(values))
        first[:] = 0
        second = codec.decode(payload, dtype=values.dtype, length=len(values))
        assert _bits(second) == _bits(values)

    def test_roundtrip_any_bits(self) -> None:
        pytest.importorskip("hypothesis")
        from hypothesis import given, settings
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        codec = type(self).codec_factory()
        specials = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 0.1, 1e300, 5e-324])
        any_bits = hnp.arrays(np.uint64, st.integers(0, 300)).map(lambda a: a.view(np.float64))
        runs = hnp.arrays(np.float64, st.integers(0, 300), elements=specials)

        @settings(max_examples=60, deadline=None)
        @given(st.one_of(any_bits, runs))
        def check(values: np.ndarray) -> None:
            self.roundtrip(codec, values)

        check()

    def test_threads(self, codec: Codec) -> None:
        base = _load_month()
        arrays = [np.roll(base, k) for k in range(16)]
        for k, a in enumerate(arrays):
            a[k * 10 : k * 10 + k] = np.nan
        expected = [codec.encode(a) for a in arrays]

        def work(i: int) -> bool:
            a = arrays[i % len(arrays)]
            payload = codec.encode(a)
            out = codec.decode(payload, dtype=a.dtype, length=len(a))
            return payload == expected[i % len(arrays)] and _bits(out) == _bits(a)

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert all(pool.map(work, range(200)))

    def test_decode_many(self, codec: Codec) -> None:
        month = _load_month()
        parts = [month[:96], month[96:200], month[200:201], month[201:2976]]
        parts[1] = parts[1].copy()
        parts[1][5:9] = np.nan
        got = codec.decode_many([codec.encode(p) for p in parts], dtype=np.dtype("float64"),
                                lengths=[len(p) for p in parts])
        np.testing.assert_array_equal(got, np.concatenate(parts))
        assert got.flags.writeable
        assert len(codec.decode_many([], dtype=np.dtype("float64"), lengths=[])) == 0

    @pytest.mark.parametrize("dtype", ["float64", "float32", ">f8"])
    def test_encode_many_is_encode_of_each_slice(self, codec: Codec, dtype: str) -> None:
        values = _load_month().astype(dtype)
        values[300:310] = np.nan
        starts, lengths = [0, 96, 96, 200, 201, 1000], [96, 104, 0, 1, 799, 1976]
        got = codec.encode_many(values, starts, lengths)
        assert got == [codec.encode(values[s:s + n]) for s, n in zip(starts, lengths, strict=True)]
        assert codec.encode_many(values, [], []) == []

    def test_decode_many_refuses_a_bad_payload(self, codec: Codec) -> None:
        values = _load_month()[:1000]
        good = codec.encode(values)
        for bad, n in ((good[:-1], 1000), (good, 999), (good, 1001)):
            with pytest.raises(IntegrityError):
                codec.decode_many([good, bad], dtype=np.dtype("float64"), lengths=[1000, n])

    # -- bad payloads ------------------------------------------------------------------------

    def assert_integrity_error(self, codec: Codec, payload: bytes, dtype: Any, n: int) -> None:
        with pytest.raises(IntegrityError):
            codec.decode(payload, dtype=np.dtype(dtype), length=n)

    def test_truncated_payload(self, codec: Codec) -> None:
        values = _load_month()[:1000]
        payload = codec.encode(values)
        for cut in (payload[:-1], payload[: len(payload) // 2], payload[:3], b""):
            self.assert_integrity_error(codec, cut, values.dtype, len(values))

    def test_empty_payload(self, codec: Codec) -> None:
        self.assert_integrity_error(codec, b"", np.float64, 1)

    def test_garbage_payload(self, codec: Codec) -> None:
        rng = np.random.default_rng(7)
        for size in (5, 64, 1000):
            garbage = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            self.assert_integrity_error(codec, garbage, np.float64, 1000)

    def test_wrong_length(self, codec: Codec) -> None:
        values = _load_month()[:1000]
        values[10:20] = np.nan
        payload = codec.encode(values)
        for n in (len(values) - 1, len(values) + 1, 0):
            self.assert_integrity_error(codec, payload, values.dtype, n)

    def test_wrong_itemsize(self, codec: Codec) -> None:
        self.require(codec, "float32")
        values = _sample("float64", 1000)
        self.assert_integrity_error(codec, codec.encode(values), np.float32, len(values))

    # -- frozen format -----------------------------------------------------------------------

    def test_golden_files(self, codec: Codec) -> None:
        if self.golden_dir is None:
            pytest.fail(f"{type(self).__name__} must set golden_dir")
        directory = Path(self.golden_dir) / codec.codec_id
        bins = sorted(directory.glob("*.bin"))
        if not bins:
            pytest.fail(
                f"no golden files in {directory}: create them once with "
                f"curvestore.testing.codec.write_golden and commit them"
            )
        decoded = []
        for path in bins:  # decode all first: a failure here is a format break
            meta_path = path.with_suffix(".json")
            assert meta_path.exists(), f"{path.name} has no {meta_path.name}"
            meta = json.loads(meta_path.read_text())
            assert meta["codec_id"] == codec.codec_id
            dtype = np.dtype(meta["dtype"]).newbyteorder("=")
            payload = path.read_bytes()
            values = codec.decode(payload, dtype=dtype, length=meta["length"])
            assert values.dtype == dtype and len(values) == meta["length"]
            assert _sha256_le(values) == meta["sha256_of_values"], (
                f"FORMAT BREAK: {path} no longer decodes to the recorded values"
            )
            decoded.append((path, payload, values))
        for path, payload, values in decoded:
            assert codec.encode(values) == payload, (
                f"encoder drift: encoding the values of {path} no longer gives the golden bytes "
                f"(old data still decodes); a library upgrade or a format change? Investigate "
                f"before accepting; never regenerate golden files"
            )
