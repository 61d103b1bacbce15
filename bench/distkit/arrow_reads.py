"""``read_arrow`` into DuckDB and into Polars against ``read_many`` into pandas, end to end, on
the fleet of bench/fleet.py: N meters (ints), 15 minutes in Europe/Paris, month chunks, one
month (October 2025, its DST change included) written with one ``write_frame``.

Every path computes the same aggregation, each meter's maximum over the month, from a fresh
read of the store, and the results must be equal (same meters, bit-identical maxima):

- ``pandas``: ``{meter: series.max() for meter, series in store.read_many(...)}``;
- ``duckdb``: ``con.sql("select meter, max(value) ... from reader group by meter")`` on
  ``reader = store.read_arrow(...)`` (long layout), fetched as numpy (one connection for
  the run);
- ``polars``: ``pl.from_arrow(store.read_arrow(...))``, grouped by meter (the rows come
  ordered by key, so the meter column is marked sorted: Polars then groups without hashing);
- ``polars_wide``: ``pl.from_arrow(store.read_arrow(..., layout="wide")).max()`` (a column
  per meter), for the record.

Each path runs ``repeat`` times (median kept), after one untimed warm-up of each. Once,
untimed, the long layout is checked point by point against the fleet
(:func:`fleetkit.data.check_long`). The target is ``read_arrow`` into DuckDB and into Polars at
least 3x faster than ``read_many`` into pandas.

Alone::

    python bench/distkit/arrow_reads.py --meters 500            # a smoke run
    python bench/distkit/arrow_reads.py --meters 10000 --url file:///tmp/arrow-bench

``measure(url, meters=...)`` is what bench/distributed.py calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402

__all__ = ["MONTH", "TARGET", "measure"]

MONTH = dt.date(2025, 10, 1)
DAYS = 31
START, END = "2025-10-01 00:00", "2025-10-31 23:45"
#: how much faster end to end read_arrow into DuckDB and into Polars must be than pandas
TARGET = 3.0


def _pandas(store: Any) -> tuple[np.ndarray, np.ndarray]:
    meters, peaks = [], []
    for key, series in store.read_many(start=START, end=END):
        meters.append(key["meter"])
        peaks.append(series.max())
    return np.asarray(meters, dtype=np.int64), np.asarray(peaks, dtype=np.float64)


def _duckdb(store: Any) -> tuple[np.ndarray, np.ndarray]:
    reader = store.read_arrow(start=START, end=END)  # noqa: F841 (found by name)
    got = _connection().sql("select meter, max(value) as peak from reader group by meter "
                            "order by meter").fetchnumpy()
    return np.asarray(got["meter"], dtype=np.int64), np.asarray(got["peak"], dtype=np.float64)


_CONNECTIONS: list[Any] = []


def _connection() -> Any:
    """One DuckDB connection for the whole run (opening one takes ~10 ms)."""
    if not _CONNECTIONS:
        import duckdb

        _CONNECTIONS.append(duckdb.connect())
    return _CONNECTIONS[0]


def _polars(store: Any) -> tuple[np.ndarray, np.ndarray]:
    import polars as pl

    # rows come ordered by key: Polars groups sorted keys without hashing once told so
    frame = pl.from_arrow(store.read_arrow(start=START, end=END), rechunk=False)
    got = (frame.lazy().with_columns(pl.col("meter").set_sorted())
           .group_by("meter", maintain_order=True).agg(pl.col("value").max()).collect())
    return got["meter"].to_numpy(), got["value"].to_numpy()


def _polars_wide(store: Any) -> tuple[np.ndarray, np.ndarray]:
    import polars as pl

    frame = pl.from_arrow(store.read_arrow(start=START, end=END, layout="wide"),
                          rechunk=False)
    peaks = frame.drop("ts").max()
    return (np.asarray([int(c) for c in peaks.columns], dtype=np.int64),
            peaks.to_numpy().reshape(-1).astype(np.float64))


PATHS: dict[str, Callable[[Any], tuple[np.ndarray, np.ndarray]]] = {
    "pandas": _pandas, "duckdb": _duckdb, "polars": _polars, "polars_wide": _polars_wide}
CALLS = {
    "pandas": "{meter: s.max() for meter, s in store.read_many(start=..., end=...)}",
    "duckdb": "con.sql('select meter, max(value) ... from reader group by meter')"
              ".fetchnumpy() on reader = store.read_arrow(start=..., end=...)",
    "polars": "pl.from_arrow(store.read_arrow(start=..., end=...), rechunk=False)"
              ".lazy().with_columns(pl.col('meter').set_sorted())"
              ".group_by('meter', maintain_order=True).agg(pl.col('value').max()).collect()",
    "polars_wide": "pl.from_arrow(store.read_arrow(start=..., end=..., layout='wide'), "
                   "rechunk=False).max()",
}


def _check_long(store: Any, block: Any) -> None:
    import pyarrow as pa
    from fleetkit.data import check_long

    table = store.read_arrow(start=START, end=END).read_all()
    check_long("read_arrow (long) of the month", table.column("meter").to_numpy(),
               table.column("ts").cast(pa.int64()).to_numpy() * 1000,
               table.column("value").to_numpy(), block)


def _open(url: str, workdir: Path) -> tuple[str, Path | None]:
    """A store URL: ``file`` (a store under ``workdir``), ``memory``, or a URL as given (an
    empty location)."""
    if url == "file":
        path = workdir / "arrow-reads"
        shutil.rmtree(path, ignore_errors=True)
        return f"file://{path}", path
    if url == "memory":
        return "memory://", None
    return url, None


def measure(url: str, *, meters: int, repeat: int = 3, seed: int = 0, check: bool = True,
            workdir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the fleet's month to a new store at ``url`` (``"file"``, ``"memory"`` or an empty
    location's URL), then time each path (:data:`PATHS`) ``repeat`` times and check that
    they agree. Returns the medians (seconds), the speed-ups over pandas and whether the
    target is met."""
    from fleetkit.data import FREQ, TZ, Fleet

    import curvestore

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="arrow-reads-")
        workdir = Path(tmp.name)
    store_url, path = _open(url, workdir)
    try:
        t0 = time.perf_counter()
        block = Fleet(meters, seed=seed).days(MONTH, DAYS)
        store = curvestore.create_store(store_url, keys={"meter": int}, freq=FREQ, tz=TZ,
                                        chunking="month", codec="lz4")
        store.write_frame(block.frame())
        log(f"  {meters:,} meters x {block.values.shape[1]:,} quarter-hours written to "
            f"{store_url.split('?')[0]} in {time.perf_counter() - t0:.1f} s")
        try:
            if check:
                _check_long(store, block)
            results: dict[str, Any] = {}
            answers = {}
            for name, path_fn in PATHS.items():
                answers[name] = path_fn(store)  # warm-up (imports, caches), untimed
                times = []
                for _ in range(repeat):
                    gc.collect()
                    t1 = time.perf_counter()
                    path_fn(store)
                    times.append(time.perf_counter() - t1)
                results[name] = {"median_s": float(np.median(times)), "times_s": times,
                                 "call": CALLS[name]}
                log(f"  {name:<12} {results[name]['median_s']:.3f} s (median of {repeat})")
        finally:
            store.close()
        _agree(answers, block.meters)
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
        if tmp is not None:
            tmp.cleanup()
    base = results["pandas"]["median_s"]
    speedups = {name: base / r["median_s"] for name, r in results.items() if name != "pandas"}
    return {
        "meters": meters, "points": int(block.points), "url": store_url.split("?")[0],
        "window": [START, END], "repeat": repeat, "paths": results,
        "speedup_over_pandas": speedups, "target": TARGET,
        "target_met": all(speedups[n] >= TARGET for n in ("duckdb", "polars")),
        "versions": _versions(), "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }


def _agree(answers: dict[str, tuple[np.ndarray, np.ndarray]], meters: np.ndarray) -> None:
    want_meters, want = answers["pandas"]
    if not np.array_equal(want_meters, meters):
        raise AssertionError("read_many did not give every meter of the fleet, in order")
    for name, (got_meters, got) in answers.items():
        if not np.array_equal(got_meters, want_meters):
            raise AssertionError(f"{name}: meters differ from read_many's")
        if got.view(np.uint64).tolist() != want.view(np.uint64).tolist():
            at = int(np.flatnonzero(got.view(np.uint64) != want.view(np.uint64))[0])
            raise AssertionError(f"{name}: meter {want_meters[at]}'s maximum is {got[at]!r}, "
                                 f"read_many's {want[at]!r}")


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {d: version(d) for d in ("curvestore", "pandas", "pyarrow", "polars", "duckdb")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=10_000, help="fleet size (10,000)")
    ap.add_argument("--url", default="file",
                    help="file (a temporary directory), memory, or an empty location's URL")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-check", action="store_true", help="skip the point-by-point check")
    ap.add_argument("--json", type=Path, help="also write the results there")
    args = ap.parse_args(argv)
    from benchkit.env import import_curvestore_from_repository

    import_curvestore_from_repository()
    result = measure(args.url, meters=args.meters, repeat=args.repeat, check=not args.no_check)
    for name, speedup in result["speedup_over_pandas"].items():
        print(f"  {name:<12} {speedup:5.1f}x faster than read_many into pandas")
    print(f"  target ({TARGET:g}x for duckdb and polars): "
          f"{'met' if result['target_met'] else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
