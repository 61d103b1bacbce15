"""What OpenTelemetry tracing costs on the benchmark's N=50 workload (bench/run.py's curvestore
operations on a file:// store): write_many, read_each, read_many, read_month, update_week.

Three modes, each run in a fresh process, interleaved (the order rotates every repeat, so a
machine getting slower or faster over the run does not favour one mode):

- ``off``: opentelemetry cannot be imported (as when it is not installed): stores hold no
  tracer, each operation costs one ``is None`` check;
- ``api``: opentelemetry-api importable, no SDK configured: the API's no-op tracer;
- ``sdk``: the SDK with a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` (every
  span recorded and exported synchronously, in the calling thread);
- ``batch``: the SDK as it is deployed, a ``BatchSpanProcessor`` (spans exported in a
  background thread) into the same exporter.

Reported: each operation's median over the repeats per mode, the workload's total, and the
ratio of ``api`` and ``sdk`` to ``off`` (the target: under 1.02 for the total). Run it on a
quiet machine::

    python bench/otel_overhead.py                    # N=50, 3 years, 5 repeats per mode
    python bench/otel_overhead.py --quick            # a smoke run: 5 series, 1 year, 1 repeat

It runs in the interpreter that starts it (needs numpy, pandas, opentelemetry-api and
-sdk: ``pip install -e ".[dev]"``); results go to ``bench/.work/otel_overhead.json`` and,
with ``--output``, a Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODES = ("off", "api", "sdk", "batch")
OPERATIONS = ("write_many_s", "read_each_s", "read_many_s", "read_month_s", "update_week_s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="number of series (50)")
    ap.add_argument("--years", type=int, default=3, help="years of data (3)")
    ap.add_argument("--start", default="2022-01-01")
    ap.add_argument("--dataset", default="load", choices=("load", "random"))
    ap.add_argument("--month-reads", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5, help="runs per mode (5)")
    ap.add_argument("--codec", default="lz4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 5 series, 1 year, 20 month reads, 1 repeat")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the stores go (default: a temporary directory)")
    ap.add_argument("--json", type=Path, default=BENCH / ".work" / "otel_overhead.json")
    ap.add_argument("--output", type=Path, default=None, help="write a Markdown report here")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.years, args.month_reads, args.repeat = 5, 1, 20, 1
    return args


# -- one run, in its own process ------------------------------------------------------------
def worker(args: argparse.Namespace) -> int:
    spans: Any = None
    if args.worker == "off":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # "not installed"
    elif args.worker in ("sdk", "batch"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        processor = SimpleSpanProcessor if args.worker == "sdk" else BatchSpanProcessor
        provider.add_span_processor(processor(spans))
        trace.set_tracer_provider(provider)
    sys.path[:0] = [str(REPO), str(BENCH)]
    import pandas as pd
    from benchkit.curvestore_system import CurvestoreSystem
    from benchkit.data import make_dataset, month_windows, week_updates
    from benchkit.measure import run_system

    end = str((pd.Timestamp(args.start) + pd.DateOffset(years=args.years)).date())
    ds = make_dataset(args.dataset, args.n, args.start, end, args.seed)
    windows = month_windows(ds, args.month_reads, args.seed)
    updates = week_updates(ds, args.seed)
    url = (Path(args.workdir) / f"{args.worker}-{{dataset}}-{{run}}").as_uri()
    system = CurvestoreSystem(url, args.codec, run_id=f"{os.getpid()}")
    stdout, sys.stdout = sys.stdout, sys.stderr  # run_system's progress lines: to stderr
    try:
        result = run_system(system, ds, windows, updates)
    finally:
        sys.stdout = stdout
    import curvestore.tracing

    result["tracer"] = type(curvestore.tracing.store_tracer()).__name__
    if spans is not None:
        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    result["spans"] = None if spans is None else len(spans.get_finished_spans())
    args.result.write_text(json.dumps(result))
    return 0


# -- the interleaved runs ----------------------------------------------------------------------
def _times(result: dict[str, Any]) -> dict[str, float]:
    """Seconds per operation (month reads and updates: their sum) and the total."""
    times = {
        "write_many_s": result["write_many_s"],
        "read_each_s": result["read_each_s"],
        "read_many_s": result["read_many_s"],
        "read_month_s": result["read_month"]["mean_ms"] * result["read_month"]["count"] / 1e3,
        "update_week_s": (result["update_week"]["mean_ms"] * result["update_week"]["count"]
                          / 1e3),
    }
    times["total_s"] = sum(times.values())
    return times


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="curvestore-otel-"))
    workdir.mkdir(parents=True, exist_ok=True)
    forwarded = ["--n", str(args.n), "--years", str(args.years), "--start", args.start,
                 "--dataset", args.dataset, "--month-reads", str(args.month_reads),
                 "--codec", args.codec, "--seed", str(args.seed), "--workdir", str(workdir)]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeat):
        order = MODES[repeat % len(MODES):] + MODES[:repeat % len(MODES)]
        for mode in order:
            out = workdir / f"result-{mode}-{repeat}.json"
            print(f"repeat {repeat + 1}/{args.repeat}: {mode}", flush=True)
            env = {k: v for k, v in os.environ.items() if k != "CURVESTORE_TRACING"}
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", mode,
                            "--result", str(out), *forwarded], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            runs[mode].append(json.loads(out.read_text()))
    medians = {mode: {op: _median([_times(r)[op] for r in results])
                      for op in (*OPERATIONS, "total_s")} for mode, results in runs.items()}
    ratios = {mode: {op: medians[mode][op] / medians["off"][op] for op in medians[mode]}
              for mode in ("api", "sdk", "batch")}
    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "n": args.n, "years": args.years,
            "dataset": args.dataset, "repeat": args.repeat, "month_reads": args.month_reads,
            "tracers": {mode: runs[mode][0]["tracer"] for mode in MODES},
            "spans_per_run": runs["sdk"][0]["spans"], "medians_s": medians, "ratios": ratios,
            "runs": runs}


def report(results: dict[str, Any]) -> str:
    medians, ratios = results["medians_s"], results["ratios"]
    lines = [
        "# OpenTelemetry overhead on the N=50 workload", "",
        f"{results['n']} series x {results['years']} years of 15-min float64 "
        f"({results['dataset']}), file:// store, {results['month_reads']} month reads; "
        f"median of {results['repeat']} runs per mode, modes interleaved in fresh processes; "
        f"{results['spans_per_run']} spans per run with the SDK. Measured "
        f"{results['when']} by `python bench/otel_overhead.py`.", "",
        "| operation | off (s) | API, no SDK (s) | ratio | SDK, simple processor (s) | ratio "
        "| SDK, batch processor (s) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op in (*OPERATIONS, "total_s"):
        name = op.removesuffix("_s")
        lines.append(f"| {'**total**' if name == 'total' else name} | {medians['off'][op]:.3f} "
                     f"| {medians['api'][op]:.3f} | {ratios['api'][op]:.3f} "
                     f"| {medians['sdk'][op]:.3f} | {ratios['sdk'][op]:.3f} "
                     f"| {medians['batch'][op]:.3f} | {ratios['batch'][op]:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    results = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    text = report(results)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
