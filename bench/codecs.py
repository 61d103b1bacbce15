"""Benchmark the built-in codecs on realistic load curves and on random data.

Run from the repository root::

    python bench/codecs.py [--meters 20] [--repeat 5]

It prints the machine, the library versions and one markdown table per data set: bytes per
point, and compression / decompression speed in millions of points per second (best of
``--repeat`` passes over all chunks, single thread). Reference rows in *italics* are not
codecs: bare lz4 block and frame calls without the codec wrapper (to compare the two formats),
and pcodec without NaN masking.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curvestore import sampledata
from curvestore.codecs.lz4 import LZ4Codec, LZ4ShuffleCodec
from curvestore.codecs.none import NoneCodec
from curvestore.codecs.pcodec import COMPRESSION_LEVEL, PcodecCodec
from curvestore.codecs.zstd import ZstdCodec, ZstdShuffleCodec
from curvestore.core.codec import Codec

Encode = Callable[[np.ndarray], bytes]
Decode = Callable[[bytes, np.ndarray], np.ndarray]


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    libs = ", ".join(
        f"{name} {version(name)}" for name in ("numpy", "pandas", "lz4", "zstandard", "pcodec")
    )
    return (
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}\n"
        f"- python {platform.python_version()}, {libs}"
    )


def month_chunks(series_list: list) -> list[np.ndarray]:
    """Split each series by local calendar month, as the store's month chunking does."""
    chunks = []
    for s in series_list:
        idx = s.index
        keys = idx.year * 12 + idx.month
        bounds = np.flatnonzero(np.diff(keys.to_numpy())) + 1
        chunks += [np.ascontiguousarray(a) for a in np.split(s.to_numpy(), bounds)]
    return chunks


def year_chunks(series_list: list) -> list[np.ndarray]:
    chunks = []
    for s in series_list:
        bounds = np.flatnonzero(np.diff(s.index.year.to_numpy())) + 1
        chunks += [np.ascontiguousarray(a) for a in np.split(s.to_numpy(), bounds)]
    return chunks


def with_gaps(chunks: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    """Copies with a few NaN gaps (meter outages of 15 min to 12 h, ~1 % of the points)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in chunks:
        c = c.copy()
        for _ in range(rng.integers(1, 4)):
            start = int(rng.integers(0, len(c)))
            c[start : start + int(rng.integers(1, 48))] = np.nan
        out.append(c)
    return out


def codec_funcs(codec: Codec) -> tuple[Encode, Decode]:
    return codec.encode, lambda b, a: codec.decode(b, dtype=a.dtype, length=len(a))


def lz4_bare_funcs(kind: str) -> tuple[Encode, Decode]:
    """lz4 block or frame with no codec wrapper around it: compares the two formats fairly."""
    import lz4.block
    import lz4.frame

    def enc(a: np.ndarray) -> bytes:
        if kind == "block":
            return lz4.block.compress(a, store_size=False)
        return lz4.frame.compress(a, store_size=True)

    def dec(b: bytes, a: np.ndarray) -> np.ndarray:
        if kind == "block":
            raw = lz4.block.decompress(b, uncompressed_size=a.nbytes, return_bytearray=True)
        else:
            raw = lz4.frame.decompress(b, return_bytearray=True)
        return np.frombuffer(raw, dtype=a.dtype)

    return enc, dec


def pcodec_plain_funcs() -> tuple[Encode, Decode]:
    from pcodec import ChunkConfig, standalone

    config = ChunkConfig(compression_level=COMPRESSION_LEVEL)

    def enc(a: np.ndarray) -> bytes:
        return standalone.simple_compress(a, config)

    def dec(b: bytes, a: np.ndarray) -> np.ndarray:
        out = np.empty(len(a), a.dtype)
        standalone.simple_decompress_into(b, out)
        return out

    return enc, dec


def measure(enc: Encode, dec: Decode, chunks: list[np.ndarray], repeat: int) -> tuple[float, ...]:
    points = sum(len(c) for c in chunks)
    payloads = [enc(c) for c in chunks]
    for c, p in zip(chunks, payloads, strict=True):  # lossless, bit for bit
        assert np.array_equal(dec(p, c).view(np.uint64), c.view(np.uint64))
    t_enc = t_dec = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for c in chunks:
            enc(c)
        t1 = time.perf_counter()
        for c, p in zip(chunks, payloads, strict=True):
            dec(p, c)
        t2 = time.perf_counter()
        t_enc, t_dec = min(t_enc, t1 - t0), min(t_dec, t2 - t1)
    size = sum(len(p) for p in payloads)
    return size / points, points / t_enc / 1e6, points / t_dec / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=20, help="load curves to generate")
    parser.add_argument("--repeat", type=int, default=5, help="timing passes, best kept")
    args = parser.parse_args()

    curves = sampledata.load_curves(args.meters, "2024-01-01", "2025-01-01", seed=0)
    rand = [sampledata.random_curve("2022-01-01", "2025-01-01", seed=0)]
    months = month_chunks(curves)
    datasets = {
        "load curves, month chunks": months,
        "load curves, month chunks with NaN gaps (~1 %)": with_gaps(months),
        "load curves, year chunks": year_chunks(curves),
        "random, month chunks": month_chunks(rand),
        "random, year chunks": year_chunks(rand),
    }
    codecs: list[tuple[str, tuple[Encode, Decode]]] = [
        (c.codec_id, codec_funcs(c))
        for c in (
            NoneCodec(),
            LZ4Codec(),
            LZ4ShuffleCodec(),
            ZstdCodec(),
            ZstdShuffleCodec(),
            PcodecCodec(),
        )
    ]
    codecs.insert(3, ("*bare lz4 block (reference)*", lz4_bare_funcs("block")))
    codecs.insert(4, ("*bare lz4 frame (reference)*", lz4_bare_funcs("frame")))
    codecs.append(("*pcodec, no NaN masking (reference)*", pcodec_plain_funcs()))

    print(machine())
    print(f"- {args.meters} meters, 15 min, Europe/Paris, 2024; best of {args.repeat} passes")
    for name, chunks in datasets.items():
        points = sum(len(c) for c in chunks)
        print(f"\n### {name}: {len(chunks)} chunks, {points:,} points\n")
        print("| codec | bytes/point | ratio | compress Mpt/s | decompress Mpt/s |")
        print("|---|---:|---:|---:|---:|")
        for codec_name, (enc, dec) in codecs:
            bpp, c_speed, d_speed = measure(enc, dec, chunks, args.repeat)
            print(f"| {codec_name} | {bpp:.3f} | {8 / bpp:.1f} | {c_speed:.1f} | {d_speed:.1f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
