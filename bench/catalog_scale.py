"""Metadata calls at fleet scale: ``keys()``, ``info()``, ``max_timestamp()`` on a file:// store
of up to a million series, answered from the engine's catalog.

    python bench/catalog_scale.py                    # 10,000 and 1,000,000 series
    python bench/catalog_scale.py --series 100000    # one size
    python bench/catalog_scale.py --s3 --series 10000   # on S3 (a moto server in a child)

Each series holds one day (96 quarter-hours, Europe/Paris), written through ``write_frame`` in
batches of 100,000 series (one commit each). Each call is timed on a handle that has the
catalog in memory (what a service sees: the median of 5) and on a freshly opened handle (the
first call pays for reading the checkpoint and the log). Results in bench/RESULTS-catalog.md
with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit.env import import_curvestore_from_repository

import_curvestore_from_repository()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import curvestore  # noqa: E402

_BATCH = 100_000
_CALLS = ("keys", "info", "max_timestamp")


def build(url: str, series: int) -> float:
    store = curvestore.create_store(url, keys={"meter": int}, freq="15min", tz="Europe/Paris")
    index = pd.date_range("2025-10-27", periods=96, freq="15min", tz="Europe/Paris")
    rng = np.random.default_rng(0)
    began = time.perf_counter()
    for first in range(0, series, _BATCH):
        n = min(_BATCH, series - first)
        frame = pd.DataFrame(rng.random((96, n)).round(3), index=index,
                             columns=pd.Index(np.arange(first, first + n), name="meter"))
        store.write_frame(frame, mode="insert")
    store.close()
    return time.perf_counter() - began


def timed(call: object) -> float:
    began = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - began


def measure(url: str, series: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in _CALLS:
        with curvestore.open_store(url) as fresh:
            out[f"{name} (fresh open)"] = timed(getattr(fresh, name))
    with curvestore.open_store(url) as store:
        assert len(store.keys()) == series
        assert store.info()["series"] == series
        for name in _CALLS:
            out[name] = statistics.median(timed(getattr(store, name)) for _ in range(5))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, action="append", default=None)
    ap.add_argument("--s3", action="store_true", help="on S3: a moto server in a child")
    ap.add_argument("--output", default=None,
                    help="results page (RESULTS-catalog.md, RESULTS-catalog-s3.md with --s3)")
    args = ap.parse_args()
    sizes = args.series or ([10_000] if args.s3 else [10_000, 1_000_000])
    output = args.output or str(Path(__file__).parent / (
        "RESULTS-catalog-s3.md" if args.s3 else "RESULTS-catalog.md"))
    moto = None
    if args.s3:
        from benchkit.moto import Moto

        moto = Moto()
    rows = []
    for series in sizes:
        root = Path(tempfile.mkdtemp(prefix="catalog-", dir=os.environ.get("TMPDIR")))
        if moto is not None:
            head, sep, query = moto.url.partition("?")
            url = f"{head.rstrip('/')}/catalog-{series}{sep}{query}"
        else:
            url = (root / "store").as_uri()
        try:
            build_s = build(url, series)
            times = measure(url, series)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"{series:,} series (built in {build_s:.1f} s): " + ", ".join(
            f"{k} {v * 1000:.1f} ms" for k, v in times.items()))
        rows.append((series, build_s, times))
    load = os.getloadavg()
    if moto is not None:
        moto.close()
    where = "s3:// on a moto server" if args.s3 else "file://"
    lines = [f"# Metadata calls at fleet scale ({where}, the engine's catalog)", "",
             f"`python bench/catalog_scale.py{' --s3' if args.s3 else ''}`; machine: "
             f"{os.cpu_count()} cores, load average "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end of the run. Each series "
             "holds one day (96 points); warm: the median of 5 calls on an open handle; fresh: "
             "the first call on a new handle (reads the catalog checkpoint and the log).", "",
             "| series | " + " | ".join(f"`{k}`" for k in rows[0][2]) + " |",
             "|---|" + "---|" * len(rows[0][2])]
    for series, _build, times in rows:
        lines.append(f"| {series:,} | " + " | ".join(f"{v * 1000:.1f} ms" for v in times.values())
                     + " |")
    Path(output).write_text("\n".join(lines) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
