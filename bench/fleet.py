"""Fleet benchmark (issue 14): daily ingest of a meter fleet on curvestore, ArcticDB and a
Parquet lake, in one run.

The fleet (bench/fleetkit/data.py) is N meters of realistic 15-minute curves in Europe/Paris;
for each history length in ``--days``, every system gets a fresh store, a backfill of that many
days in one bulk call, then three daily appends (each followed by a read of that day for every
meter and the metadata calls), then single-meter history reads. Every read is checked against
what was written. Results go to bench/RESULTS-fleet.md and bench/.work/results-fleet.json.

Run::

    python bench/fleet.py                        # 10,000 meters, 31 and 300 days, file:// +
                                                 # ArcticDB + Parquet, in bench/.venv
    python bench/fleet.py --quick                # 500 meters, 10 days: a smoke run
    python bench/fleet.py --url file --url postgresql --url s3   # throw-away servers
    python bench/fleet.py --url 'postgresql://u@host/db?table=fleet_{scenario}'
    python bench/fleet.py --make-ingest-file /tmp/day.parquet    # 1,000,000 meters, one day

``--url`` takes ``file`` (a store in the work directory), ``postgresql`` (a throw-away server,
``curvestore.testing.postgres_server``), ``s3`` (moto in a child process that counts requests,
``benchkit.moto``), or a store URL with ``{scenario}`` in it. S3 runs use ``--s3-meters`` meters
(1,000 by default, the issue's S3 target). A service that cannot start is skipped and listed.

Like bench/run.py, the script installs its peers into bench/.venv (bench/requirements.txt:
ArcticDB needs pandas < 3) and re-executes itself there; ``--here`` runs in the current Python
instead, with whichever peers it can import.
"""

from __future__ import annotations

import argparse
import contextlib
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
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from benchkit import env  # noqa: E402

OUTPUT = BENCH / "RESULTS-fleet.md"
RESULTS_JSON = env.WORK / "results-fleet.json"
EXTRAS = ("pyarrow>=14", "boto3>=1.28", "moto[s3,server]>=5", "psycopg[binary]>=3.1")
PEERS = ("arcticdb", "parquet")
#: Schemes of the curvestore stores that keep appended days apart and compact them.
COMPACTING = ("file", "postgresql", "postgres")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=None, help="fleet size (10,000; quick 500)")
    ap.add_argument("--days", default=None,
                    help="comma-separated days stored before the appends (31,300; quick 10)")
    ap.add_argument("--quick", action="store_true", help="500 meters, 10 days: a smoke run")
    ap.add_argument("--appends", type=int, default=3, help="daily appends (3)")
    ap.add_argument("--no-month", dest="month", action="store_false",
                    help="skip the month of appends and its compaction (file and "
                         "postgresql runs)")
    ap.add_argument("--month-repeats", type=int, default=None,
                    help="times the month of appends and its compaction is run; the medians "
                         "are reported (3; quick 1)")
    ap.add_argument("--first-append", default="2025-10-25",
                    help="the first appended local day (2025-10-25: the next one ends DST)")
    ap.add_argument("--url", action="append", default=None,
                    help="curvestore store: file, postgresql, s3 or a URL with {scenario} "
                         "(repeatable; default: file)")
    ap.add_argument("--s3-meters", type=int, default=1000,
                    help="meters for the s3 runs (1,000), capped at --meters")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated peers: arcticdb, parquet (both); '' for none")
    ap.add_argument("--history-reads", type=int, default=50,
                    help="single-meter history reads per system (50)")
    ap.add_argument("--history-budget", type=float, default=30.0,
                    help="seconds of history reads per system at most (30; at least 5 reads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None,
                    help="where the stores go (default: a temporary directory under bench/.work)")
    ap.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    ap.add_argument("--output", default=None, help="results page (bench/RESULTS-fleet.md)")
    ap.add_argument("--json", default=None, help="raw results (bench/.work/results-fleet.json)")
    ap.add_argument("--render-only", metavar="RESULTS_JSON",
                    help="only re-render a results JSON file into --output")
    ap.add_argument("--make-ingest-file", metavar="PATH",
                    help="write the long-format Parquet day of --ingest-meters meters for "
                         "`curvestore ingest` to PATH, then stop")
    ap.add_argument("--ingest-meters", type=int, default=1_000_000)
    ap.add_argument("--skip-install", action="store_true", help="reuse bench/.venv as it is")
    ap.add_argument("--here", action="store_true",
                    help="run in this Python, without bench/.venv")
    args = ap.parse_args(argv)
    args.meters = args.meters or (500 if args.quick else 10_000)
    args.month_repeats = args.month_repeats or (1 if args.quick else 3)
    args.days = [int(d) for d in (args.days or ("10" if args.quick else "31,300")).split(",")]
    args.url = args.url or ["file"]
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        ap.error(f"unknown peers {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.here:
        env.ensure_env(args.skip_install, Path(__file__), extras=EXTRAS)
    env.import_curvestore_from_repository()
    from fleetkit.report import render

    if args.render_only:
        output = Path(args.output or OUTPUT)
        output.write_text(render(json.loads(Path(args.render_only).read_text())))
        print(f"wrote {output}")
        _fold(output)
        return 0
    if args.make_ingest_file:
        from fleetkit.data import make_ingest_file

        t0 = time.perf_counter()
        facts = make_ingest_file(Path(args.make_ingest_file), args.ingest_meters,
                                 dt.date.fromisoformat(args.first_append), args.seed)
        print(json.dumps({**facts, "seconds": round(time.perf_counter() - t0, 1)}))
        return 0
    results = run(args)
    output = Path(args.output or OUTPUT)
    output.write_text(render(results))
    raw = Path(args.json or RESULTS_JSON)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {output} and {raw}")
    _fold(output)
    return 0


def _fold(output: Path) -> None:
    """Refresh the fleet section of bench/RESULTS.md when the page written is the real one."""
    if output.resolve() == OUTPUT:
        from benchkit.fold import fold_into_results_md

        fold_into_results_md("fleet")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario on every system; returns the results (runs and meta)."""
    import numpy as np
    import pandas as pd
    from benchkit.measure import machine_info
    from fleetkit.data import Fleet
    from fleetkit.month import run_month
    from fleetkit.runners import optional_versions
    from fleetkit.workload import make_scenario, run_scenario

    started = time.perf_counter()
    load_before = os.getloadavg()
    run_id = env.new_run_id()
    first_append = dt.date.fromisoformat(args.first_append)
    workdir = env.run_workdir(args.workdir, "fleet")
    versions = {"numpy": np.__version__, "pandas": pd.__version__}
    skipped: dict[str, str] = {}
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        systems = _systems(args, workdir, run_id, stack, skipped, versions)
        for system, _meters in systems:
            versions.update(system.versions())
        sizes = sorted({m for _s, m in systems}, reverse=True)
        for days in args.days:
            for meters in sizes:
                name = f"m{meters}_d{days}"
                print(f"scenario {meters:,} meters, {days} days stored: generating", flush=True)
                t0 = time.perf_counter()
                sc = make_scenario(name, Fleet(meters, args.seed), days, first_append,
                                   args.appends, args.history_reads, args.seed)
                print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
                for system, m in systems:
                    if m != meters:
                        continue
                    print(f"  {system.label}", flush=True)
                    res = run_scenario(system, sc, args.history_budget)
                    res["scheme"] = getattr(system, "scheme", system.name)
                    runs.append(res)
                del sc
        months = []
        for system, meters in systems:
            if getattr(system, "scheme", None) in COMPACTING and args.month:
                print(f"a month of daily appends, then compaction: {meters:,} meters, "
                      f"{system.label}", flush=True)
                months.append(run_month(system, Fleet(meters, args.seed), args.history_reads,
                                        args.history_budget, args.seed,
                                        repeats=args.month_repeats))
    if "curvestore" in versions:
        versions["curvestore"] += f" (git {_git_describe()})"
    versions.update({k: v for k, v in optional_versions().items() if v != "not installed"})
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"runs": runs, "months": months, "meta": {
        "command": "python bench/fleet.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": run_id,
        "elapsed_s": time.perf_counter() - started,
        "machine": machine_info(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "uptime": uptime,
        "versions": versions,
        "meters": args.meters, "days": args.days, "appends": args.appends,
        "first_append": args.first_append, "history_reads": args.history_reads,
        "skipped": skipped,
    }}


def _systems(args: argparse.Namespace, workdir: Path, run_id: str,
             stack: contextlib.ExitStack, skipped: dict[str, str],
             versions: dict[str, str]) -> list[tuple[Any, int]]:
    """The runners and the fleet size each runs; services are started on ``stack``."""
    from fleetkit.runners import ArcticDBRunner, CurvestoreRunner, ParquetRunner

    import curvestore

    systems: list[tuple[Any, int]] = []
    for spec in args.url:
        scheme = spec.split("://", 1)[0]
        meters = min(args.meters, args.s3_meters) if scheme == "s3" else args.meters
        moto = None
        try:
            if spec == "file":
                url = (workdir / "curvestore-{scenario}").as_uri()
            elif spec in ("postgresql", "postgres"):
                from benchkit.postgres import pg_server_facts

                from curvestore.testing.postgres_server import postgres_server

                server = stack.enter_context(postgres_server(shared_buffers="256MB"))
                url = server + ("&" if "?" in server else "?") + "table=fleet_{scenario}_" \
                    + run_id.replace("-", "_")
                versions.update(pg_server_facts(server, True))
            elif spec == "s3":
                from benchkit.moto import Moto

                moto = Moto()
                stack.callback(moto.close)
                head, sep, query = moto.url.partition("?")
                url = f"{head.rstrip('/')}/fleet-{run_id}-{{scenario}}{sep}{query}"
            elif "{scenario}" in spec or len(args.days) == 1:
                url = spec
            else:
                raise SystemExit(f"--url {spec}: put {{scenario}} in it, so that each of the "
                                 f"{len(args.days)} scenarios gets a fresh store")
        except (Exception, SystemExit) as exc:  # a service that cannot start is reported
            if spec not in ("postgresql", "postgres", "s3"):
                raise
            skipped[f"curvestore on {spec}"] = f"{type(exc).__name__}: {exc}"
            print(f"skipping curvestore on {spec}: {exc}", file=sys.stderr)
            continue
        label = f"curvestore {curvestore.__version__} ({url.split('://', 1)[0]}, lz4)"
        systems.append((CurvestoreRunner(workdir, url, label, moto), meters))
    for peer, cls in (("arcticdb", ArcticDBRunner), ("parquet", ParquetRunner)):
        if peer not in args.peers:
            continue
        try:
            systems.append((cls(workdir), args.meters))
        except ImportError as exc:
            skipped[peer] = f"not importable here ({exc})"
            print(f"skipping {peer}: {exc}", file=sys.stderr)
    return systems


def _git_describe() -> str:
    out = subprocess.run(["git", "-C", str(env.REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return out or "?"


if __name__ == "__main__":
    sys.exit(main())
