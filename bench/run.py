"""Benchmark curvestore against its peers (ArcticDB on LMDB, holcstore on SQLite).

holcstore's own load workload scaled to this machine: N series x Y years of 15-min float64 in
Europe/Paris with month chunks, on two data sets ("random": seeded uniform random values, the
incompressible worst case; "load": realistic meter load curves from curvestore.sampledata).
Every system gets the same data in the same run, through its public API only, on a fresh store,
and every read is checked against what was written (exact float64 equality).

Run from anywhere::

    python bench/run.py                      # creates bench/.venv, installs, runs everything
    python bench/run.py --skip-install       # reuse bench/.venv as it is
    python bench/run.py --systems arcticdb,holcstore --n 10 --years 1
    python bench/run.py --postgres           # holcstore and curvestore on a throw-away PostgreSQL
    python bench/run.py --skip-install --systems arcticdb,holcstore,curvestore \
        --url 'postgresql://user@127.0.0.1:5432/db?table=bench_{dataset}_{run}'

The script creates ``bench/.venv`` (without system site packages), installs the peers pinned in
``bench/requirements.txt`` and curvestore from the repository (editable), then runs itself again
inside that environment. Results go to ``bench/RESULTS.md`` (``--output``) and the raw numbers to
``bench/.work/results.json``; stores live under ``bench/.work``.

Operations, per system and data set:

- ``write_many``: all N series in one bulk call;
- ``read_each``: one full read per series (total time);
- ``read_many``: one streaming/batch read of every series (total time);
- ``read_month``: 200 random (series, calendar month) windows, median and p95;
- ``update_week``: one overlapping 1-week update per series (the last days of a month spilling
  into the next), median and p95;
- ``bytes``: bytes per point on disk after the initial write (and again after the updates).

Adding a system means writing one small class with the same methods (see
``benchkit.system.System``).

PostgreSQL: with ``--postgres`` or a ``postgresql://`` ``--url``, holcstore runs on PostgreSQL
too (Django's postgresql engine, psycopg 3) on the SAME server as curvestore, and the results go
to ``bench/RESULTS-postgres.md`` with the PostgreSQL targets. Without a URL, a throw-away server
is started with ``curvestore.testing.postgres_server`` (initdb into a temp dir, free port) and
removed afterwards. ``{dataset}`` and ``{run}`` in the URL give every setup its own table (``{run}``
changes at every repeat); the curvestore tables a run created are dropped after it has been
measured (``--keep-tables`` keeps them), holcstore's table is dropped and re-created per run.
ArcticDB has no PostgreSQL storage: it stays on LMDB, listed for reference only.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchkit.env import (
    BENCH,
    WORK,
    ensure_env,
    import_curvestore_from_repository,
    new_run_id,
)
from benchkit.fold import fold_into_results_md
from benchkit.postgres import is_pg, pg_server_facts
from benchkit.report import render


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="arcticdb,holcstore,curvestore",
                    help="comma-separated: arcticdb, holcstore, curvestore (default: all)")
    ap.add_argument("--datasets", default="random,load", help="comma-separated: random, load")
    ap.add_argument("--n", type=int, default=50, help="number of series (default 50)")
    ap.add_argument("--years", type=int, default=3, help="years of data from --start (3)")
    ap.add_argument("--start", default="2022-01-01", help="first local day (2022-01-01)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--month-reads", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3,
                    help="run the whole workload this many times on fresh stores, systems "
                         "interleaved, and report the median of each number (3)")
    ap.add_argument("--url", action="append", default=None,
                    help="curvestore store URL (repeatable: one curvestore system per URL); "
                         "'{dataset}' and '{run}' are substituted; default: a file:// store "
                         "under bench/.work")
    ap.add_argument("--codec", default="lz4", help="curvestore codec (lz4)")
    ap.add_argument("--output", default=None,
                    help="results file (default bench/RESULTS.md, bench/RESULTS-postgres.md "
                         "for PostgreSQL runs)")
    ap.add_argument("--postgres", action="store_true",
                    help="run holcstore and curvestore on PostgreSQL: the server of the "
                         "postgresql:// --url, else a throw-away server started here")
    ap.add_argument("--keep-tables", action="store_true",
                    help="keep the PostgreSQL tables each curvestore run created")
    ap.add_argument("--render-only", metavar="RESULTS_JSON",
                    help="only re-render a results JSON file into --output")
    ap.add_argument("--skip-install", action="store_true",
                    help="reuse bench/.venv without installing anything")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:  # re-render a results file (e.g. after editing the analysis text)
        results = json.loads(Path(args.render_only).read_text())
        output = args.output or str(BENCH / ("RESULTS-postgres.md" if results["meta"].get(
            "postgres") else "RESULTS.md"))
        Path(output).write_text(render(results))
        print(f"wrote {output}")
        if Path(output).resolve() == BENCH / "RESULTS-postgres.md":
            fold_into_results_md("postgres")
        return 0
    ensure_env(args.skip_install)
    import_curvestore_from_repository()
    pg_url = next((u for u in args.url or [] if is_pg(u)), None)
    if not (args.postgres or pg_url):
        return bench(args, None, False)
    if pg_url is not None:
        return bench(args, pg_url, False)
    from curvestore.testing.postgres_server import postgres_server

    with postgres_server(shared_buffers="256MB") as server:
        url = server + ("&" if "?" in server else "?") + "table=bench_{dataset}_{run}"
        args.url = [*(args.url or []), url]
        return bench(args, url, True)


def bench(args: argparse.Namespace, pg_url: str | None, started_here: bool) -> int:
    """Run the workload; with ``pg_url``, holcstore runs on that PostgreSQL server."""
    # numpy and pandas exist only once ensure_env has run: everything using them loads here
    import numpy as np
    import pandas as pd
    from benchkit.curvestore_system import CurvestoreSystem
    from benchkit.data import make_dataset, month_windows, week_updates
    from benchkit.measure import machine_info, median_of, run_system
    from benchkit.peers import ArcticDBSystem, HolcstoreSystem
    from benchkit.system import System

    started = time.perf_counter()
    run_id = new_run_id()
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(wanted) - {"arcticdb", "holcstore", "curvestore"}
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}")
    output = args.output or str(BENCH / ("RESULTS-postgres.md" if pg_url else "RESULTS.md"))
    results_json = WORK / ("results-postgres.json" if pg_url else "results.json")

    systems: list[System] = []
    if "arcticdb" in wanted:
        systems.append(ArcticDBSystem())
    if "holcstore" in wanted:
        systems.append(HolcstoreSystem(pg_url))
    if "curvestore" in wanted:
        urls = args.url or [None]
        for number, url in enumerate(urls, 1):
            cs = CurvestoreSystem(url, args.codec, run_id, keep_tables=args.keep_tables)
            if len(urls) > 1:
                cs.name = f"curvestore#{number}"
                cs.label += f" #{number}"
            systems.append(cs)

    start = pd.Timestamp(args.start)
    end = (start + pd.DateOffset(years=args.years)).strftime("%Y-%m-%d")
    versions = {"numpy": np.__version__, "pandas": pd.__version__}
    for s in systems:
        versions.update(s.versions())
    if pg_url:
        versions.update(pg_server_facts(pg_url, started_here))
    results: dict[str, Any] = {"datasets": {}}
    n_points = 0
    for ds_name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        ds = make_dataset(ds_name, args.n, args.start, end, args.seed)
        n_points = len(ds.series[0])
        print(f"data set {ds_name}: {len(ds.series)} series x {n_points} points", flush=True)
        windows = month_windows(ds, args.month_reads, args.seed)
        updates = week_updates(ds, args.seed)
        entry: dict[str, Any] = {"description": ds.description, "points": ds.points,
                                 "systems": {}}
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
        for rep in range(args.repeat):  # interleaved, so that slow spells hit every system
            if args.repeat > 1:
                print(f" repeat {rep + 1}/{args.repeat}", flush=True)
            for system in systems:
                runs[system.name].append(run_system(system, ds, windows, updates))
        for system in systems:
            entry["systems"][system.name] = {"label": system.label,
                                             "result": median_of(runs[system.name]),
                                             "runs": runs[system.name]}
        results["datasets"][ds_name] = entry
        del ds, windows, updates
        gc.collect()

    results["meta"] = {
        "postgres": bool(pg_url),
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": run_id,
        "elapsed_s": time.perf_counter() - started,
        "machine": machine_info(),
        "versions": versions,
        "workload": {"n": args.n, "start": args.start, "end": end,
                     "points_per_series": n_points, "points": n_points * args.n,
                     "month_reads": args.month_reads, "repeat": args.repeat},
        "api": {s.label: s.calls for s in systems},
    }
    WORK.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(results, indent=2, default=str))
    Path(output).write_text(render(results))
    print(f"wrote {output} and {results_json}")
    if Path(output).resolve() == BENCH / "RESULTS-postgres.md":
        fold_into_results_md("postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
