"""Distributed benchmark: curvestore on Dask workers, and Arrow reads into DuckDB and Polars,
against the same work in one process, on the fleet of bench/fleet.py.

The fleet (bench/fleetkit/data.py): ``--meters`` meters (10,000) of realistic 15-minute curves
in Europe/Paris, one month (October 2025, with the DST change) in a file:// store with month
chunks, written with ``write_frame``. Measured, each the median of ``--runs`` warm runs:

(a) the peak of every meter: ``read_dask(url).groupby("meter").value.max().compute()`` on a
    ``distributed.LocalCluster`` of ``--workers`` worker processes (one thread each) against
    ``read_many`` in one process taking each series' ``max()``; target >= 1.5x faster;
(b) ``read_arrow`` into DuckDB and Polars against ``read_many`` into pandas, measured by
    ``bench/distkit/arrow_reads.py`` (``measure(url, *, meters, ...) -> dict``) when it is
    there, reported as it returns; target >= 3x;
(c) the month written into a fresh PostgreSQL table (a throw-away server): ``to_store`` of the
    long-format month (a Dask DataFrame held by the workers, one partition per group of
    meters) against ``ingest`` of the same rows in one process; target >= 1.5x faster. The
    wide ``write_frame`` of the month in one process is shown beside them.

Every result is checked: the peaks against each other, the PostgreSQL tables against the
fleet's values. Results go to bench/RESULTS-distributed.md (prose in
bench/templates/distributed.md) and bench/.work/results-distributed.json.

Run::

    python bench/distributed.py                    # 10,000 meters, 2 workers, 3 runs
    python bench/distributed.py --meters 300 --runs 1 --output /tmp/r.md   # a smoke run
    python bench/distributed.py --render-only bench/.work/results-distributed.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# This file's name is the name of Dask's ``distributed`` package: bench/ stays importable
# (benchkit, fleetkit, distkit) but after the installed packages, here and in the worker
# processes, which are spawned with this path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from benchkit import env  # noqa: E402

OUTPUT = BENCH / "RESULTS-distributed.md"
RESULTS_JSON = env.WORK / "results-distributed.json"
MONTH = dt.date(2025, 10, 1)
TARGETS = {"a": 1.5, "b": 3.0, "c": 1.5}
VERSIONS = ("numpy", "pandas", "dask", "distributed", "pyarrow", "duckdb", "polars",
            "psycopg", "lz4")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=10_000, help="fleet size (10,000)")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (2)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each measure (3)")
    ap.add_argument("--series-per-partition", type=int, default=None,
                    help="meters per Dask partition for the reads (default: read_dask's own "
                         "sizing, about 4 million points a partition)")
    ap.add_argument("--write-series-per-partition", type=int, default=None,
                    help="meters per partition written by to_store in (c) (default: meters / "
                         "(2 x workers): few commits)")
    ap.add_argument("--malloc-trim", action="store_true",
                    help="keep distributed's MALLOC_TRIM_THRESHOLD_=65536 in the workers "
                         "(by default the bench leaves glibc's own, adaptive threshold)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-postgres", dest="postgres", action="store_false",
                    help="skip (c), the writes into PostgreSQL")
    ap.add_argument("--workdir", default=None,
                    help="where the store goes (default: a temporary directory under "
                         "bench/.work)")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    ap.add_argument("--output", default=None, help="results page (bench/RESULTS-distributed.md)")
    ap.add_argument("--json", default=None,
                    help="raw results (bench/.work/results-distributed.json)")
    ap.add_argument("--render-only", metavar="RESULTS_JSON",
                    help="only re-render a results JSON file into --output")
    args = ap.parse_args(argv)
    if args.write_series_per_partition is None:
        args.write_series_per_partition = max(1, -(-args.meters // (2 * args.workers)))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env.import_curvestore_from_repository()
    from distkit.report import render

    output = Path(args.output or OUTPUT)
    if args.render_only:
        output.write_text(render(json.loads(Path(args.render_only).read_text())))
        print(f"wrote {output}")
        _fold(output)
        return 0
    results = run(args)
    output.write_text(render(results))
    raw = Path(args.json or RESULTS_JSON)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {output} and {raw}")
    _fold(output)
    return 0


def _fold(output: Path) -> None:
    """Refresh this benchmark's section of bench/RESULTS.md when the page written is the
    real one."""
    if output.resolve() == OUTPUT:
        from benchkit.fold import fold_into_results_md

        fold_into_results_md("distributed")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib
    import logging

    import numpy as np
    import pandas as pd
    from benchkit.measure import machine_info
    from distributed import Client, LocalCluster
    from fleetkit.data import Fleet

    import curvestore

    started = time.perf_counter()
    load_before = os.getloadavg()
    run_id = env.new_run_id()
    # the workers must import the curvestore this process runs
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(curvestore.__file__).resolve().parents[1]),
         *filter(None, [os.environ.get("PYTHONPATH")])])
    workdir = env.run_workdir(args.workdir, "distributed")
    results: dict[str, Any] = {"skipped": {}}
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        print(f"fleet: {args.meters:,} meters, {MONTH:%B %Y}", flush=True)
        block = Fleet(args.meters, args.seed).days(MONTH, 31 if MONTH.month == 10 else 30)
        url = args.store_url = (workdir / "fleet").as_uri()
        store = curvestore.create_store(url, keys={"meter": int}, freq="15min",
                                        tz="Europe/Paris", chunking="month")
        store.write_frame(block.frame())
        points = int(np.isfinite(block.values).sum())
        print(f"  written: {points:,} points", flush=True)
        from distkit.measures import measure_a, measure_b, measure_c

        results["b"] = measure_b(args, workdir, results["skipped"])
        worker_env = _worker_environment(args.malloc_trim)
        cluster = stack.enter_context(LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR))
        client = stack.enter_context(Client(cluster))
        results["a"] = measure_a(store, url, args)
        if args.postgres:
            results["c"] = measure_c(stack, block, args, results)
        else:
            results["skipped"]["(c) to_store into PostgreSQL"] = "--no-postgres"
        client.close()
    versions = {name: env.package_version(name) for name in VERSIONS}
    versions["curvestore"] = f"{curvestore.__version__} (git {_git_describe()})"
    versions.update(results.pop("server_facts", {}))
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results["meta"] = {
        "command": "python bench/distributed.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": run_id,
        "elapsed_s": time.perf_counter() - started,
        "machine": machine_info(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "uptime": uptime,
        "versions": versions,
        "meters": args.meters, "month": f"{MONTH:%Y-%m}", "points": points,
        "quarter_hours": len(block.index), "workers": args.workers, "runs": args.runs,
        "series_per_partition": args.series_per_partition,
        "write_series_per_partition": args.write_series_per_partition,
        "worker_environment": worker_env,
        "pandas": pd.__version__,
    }
    return results


def _worker_environment(malloc_trim: bool) -> dict[str, str]:
    """The environment distributed gives its worker processes, without its
    ``MALLOC_TRIM_THRESHOLD_`` unless asked: a fixed threshold turns off glibc's adaptive one,
    so that every large array is mapped fresh from the kernel and unmapped when freed (page
    faults and zeroing on every partition: measured 2x the tasks' time here)."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if not malloc_trim:
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
    return {k: str(v) for k, v in environ.items()}


def _git_describe() -> str:
    out = subprocess.run(["git", "-C", str(env.REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return out or "?"


if __name__ == "__main__":
    sys.exit(main())
