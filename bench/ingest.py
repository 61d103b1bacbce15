"""`curvestore ingest` of a long-format day: one day of a meter fleet (1,000,000 meters by
default, 96 M rows of meter, ts, kw; bench/fleetkit/data.py's curves) from a Parquet file into
a fresh store, measured as a user runs it: the command line in a child process, its wall time
and its peak RSS (``wait4``), and the split the command reports (reading, validating and
pivoting; encoding; committing). With ``--profile`` the same command runs again under
cProfile, and the page shows where the commit's time goes (core bookkeeping and the backend).

Targets (issue 14): <= 60 s and <= 4 GB peak for the million-meter day. Results go to
bench/RESULTS-ingest.md with the machine's load average.

Run::

    python bench/ingest.py                          # file://, 1,000,000 meters, + profile
    python bench/ingest.py --url memory --url file --meters 100000 --no-profile --output -
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
OUTPUT = BENCH / "RESULTS-ingest.md"
WORK = BENCH / ".work"
TARGET_SECONDS, TARGET_BYTES = 60.0, 4 * 10**9
SUMMARY = re.compile(r"ingested ([\d,]+) rows of ([\d,]+) series: ([\d,]+) points in ([\d,]+) "
                     r"chunks?, ([\d,]+) commits?.*?([\d.]+) s \(.*read ([\d.]+) s, encode "
                     r"([\d.]+) s, commit ([\d.]+) s\)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=1_000_000)
    ap.add_argument("--day", default="2025-10-25", help="the local day (2025-10-25: 96 points)")
    ap.add_argument("--file", default=None,
                    help="the long-format Parquet file (made if missing; default "
                         "bench/.work/ingest-<meters>.parquet)")
    ap.add_argument("--url", action="append", default=None, choices=("file", "memory"),
                    help="store kinds (repeatable; default: file)")
    ap.add_argument("--mode", default="insert", choices=("insert", "update", "replace"))
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    ap.add_argument("--profile-meters", type=int, default=100_000,
                    help="meters of the profiled run (100,000: the commit's cost is per "
                         "series, and a profiled million takes long)")
    ap.add_argument("--render-only", metavar="JSON",
                    help="re-render the page from a run's bench/.work/results-ingest.json")
    ap.add_argument("--workdir", default=None, help="where stores go (default: bench/.work)")
    ap.add_argument("--output", default=str(OUTPUT), help="results page ('-': stdout)")
    args = ap.parse_args(argv)
    args.url = args.url or ["file"]
    return args


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; its wall seconds, peak RSS (bytes, from wait4) and stdout."""
    with tempfile.TemporaryFile("w+") as out:
        began = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=child_env(),
                                 text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        err = child.stderr.read() if child.stderr else ""
        if child.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}): {err}")
        out.seek(0)
        return seconds, usage.ru_maxrss * 1024, out.read()


def store_url(kind: str, workdir: Path, name: str) -> str:
    if kind == "memory":
        return f"memory://{name}"
    path = workdir / name
    shutil.rmtree(path, ignore_errors=True)
    return f"file://{path}"


CHILD = """import sys
from curvestore.cli import main
main(["create", sys.argv[1], "--keys", "meter:int", "--freq", "15min", "--tz", "Europe/Paris"])
sys.exit(main(sys.argv[2:]))
"""


def cli(url: str, workdir: Path) -> list[str]:
    """The command: ``curvestore ingest``, after a ``create`` in the same process for
    memory:// (a memory store lives in its process; file:// stores are created before)."""
    ingest = ["ingest", url, "FILE", "--key", "meter", "--time", "ts", "--value", "kw",
              "--quiet"]
    if not url.startswith("memory://"):
        return [sys.executable, "-m", "curvestore.cli", *ingest]
    script = workdir / "create_and_ingest.py"
    script.write_text(CHILD)
    return [sys.executable, str(script), url, *ingest]


def run_one(kind: str, file: Path, workdir: Path, mode: str, profile: Path | None
            ) -> dict[str, Any]:
    url = store_url(kind, workdir, f"ingest-{kind}{'-profiled' if profile else ''}")
    if kind == "file":
        subprocess.run([sys.executable, "-m", "curvestore.cli", "create", url, "--keys",
                        "meter:int", "--freq", "15min", "--tz", "Europe/Paris"], check=True,
                       env=child_env(), capture_output=True)
    cmd = [str(file) if a == "FILE" else a for a in cli(url, workdir)]
    if mode != "insert":
        cmd += ["--mode", mode]
    if profile is not None:
        cmd[1:1] = ["-m", "cProfile", "-o", str(profile)]
    seconds, rss, out = measured(cmd)
    match = SUMMARY.search(out)
    if not match:
        raise SystemExit(f"unexpected output: {out!r}")
    numbers = [float(g.replace(",", "")) for g in match.groups()]
    keys = ("rows", "series", "points", "chunks", "commits", "ingest_s", "read_s", "encode_s",
            "commit_s")
    return {"kind": kind, "url": url, "wall_s": seconds, "peak_rss": rss,
            **dict(zip(keys, numbers, strict=True))}


#: (what, module path fragment, function): the steps of an ingest, as cProfile names them
STEPS = [
    ("read, validate, pivot (all batches)", "core/ingest.py", "add"),
    ("encode (cut per chunk, lz4, CRC-32)", "core/frames_write.py", "encode_block"),
    ("commit, all of it", "core/frames_write.py", "commit_encoded"),
    ("- core: batch rows as per-series records", "core/frames_write.py", "prepared"),
    ("- core + backend: per-series read-merge-write", "core/writes.py", "apply_writes"),
    ("  - backend: insert check, series' shard index", "backends/_fstx.py", "live_metas"),
    ("  - backend: shard staged as a temp file", "backends/_fstx.py", "put"),
    ("- backend: begin (stripe locks)", "backends/filesystem.py", "begin"),
    ("- backend: commit (fsync, mkdir, log, rename)", "backends/_fstx.py", "commit"),
    ("  - fsync of the temp files (4 threads)", "backends/filesystem.py", "_sync_files"),
    ("  - fsync of the directories (4 threads)", "backends/filesystem.py", "_sync_dirs"),
    ("- memory backend commit", "backends/memory.py", "commit"),
]


def profile_lines(path: Path) -> list[str]:
    """The steps of the ingest (cumulative seconds under the profiler) and the system calls
    the main thread made, from a cProfile dump."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = max(cum for (_cc, _n, _t, cum, _c) in stats.values())
    out = [f"Under the profiler the command took {total:.1f} s (profiling slows Python code, "
           "not system calls).", "", "| step | calls | cumulative s |", "|---|---:|---:|"]
    for label, where, name in STEPS:
        found = [(v[1], v[3]) for (f, _l, n), v in stats.items() if where in f and n == name]
        if found:
            calls, cum = sum(c for c, _ in found), sum(t for _, t in found)
            out.append(f"| {label} | {calls:,} | {cum:.1f} |")
    system = sorted(((t, c, n) for (f, _l, n), (_cc, c, t, _cum, _cl) in stats.items()
                     if f == "~" and any(s in n for s in ("posix", "io.open"))),
                    reverse=True)[:6]
    out += ["", "| system call in the main thread (own time) | calls | s |", "|---|---:|---:|"]
    out += [f"| `{n}` | {c:,} | {t:.1f} |" for t, c, n in system]
    return out


def render(args: argparse.Namespace, saved: dict[str, Any]) -> str:
    facts, runs, profiles, load = (saved["facts"], saved["runs"], saved["profiles"],
                                   saved["load"])
    gib = 1024**3
    lines = [
        "# curvestore ingest: a long-format day of a meter fleet",
        "",
        f"Generated by `python bench/ingest.py {' '.join(saved['argv'])}` on "
        f"{saved['date']}. Input: `{facts['name']}`, "
        f"{facts['rows']:,} rows (meter int64, ts timestamp[us, Europe/Paris], kw float64 "
        f"with nulls), {facts['meters']:,} meters x one local day ({args.day}), "
        f"{facts['bytes'] / 1e6:.0f} MB of zstd Parquet, made by "
        "`python bench/fleet.py --make-ingest-file PATH`. Command: `curvestore ingest URL "
        f"FILE --key meter --time ts --value kw --quiet` (mode {args.mode}) into a fresh store "
        "(meter:int, 15min, Europe/Paris, month chunks, lz4; file:// with its default "
        "fsync=true), in a child process: wall time and peak RSS from `wait4`.",
        "",
        f"- machine: {saved['versions']['machine']}",
        f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load[0])}; "
        f"after: {', '.join(f'{x:.2f}' for x in load[1])} (the machine is shared: other work "
        "runs beside the benchmark)",
        "",
        "| store | wall s | peak RSS | rows/s | read + pivot s | encode s | commit s | "
        "commits | chunks | target (<= 60 s, <= 4 GB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        ok = r["wall_s"] <= TARGET_SECONDS and r["peak_rss"] <= TARGET_BYTES
        lines.append(
            f"| {r['kind']}:// | {r['wall_s']:.1f} | {r['peak_rss'] / gib:.2f} GiB | "
            f"{r['rows'] / r['wall_s']:,.0f} | {r['read_s']:.1f} | {r['encode_s']:.1f} | "
            f"{r['commit_s']:.1f} | {r['commits']:,.0f} | {r['chunks']:,.0f} | "
            f"{'met' if ok else 'missed'} |")
    lines += ["", "`read + pivot` is reading the Parquet batches, validating them and "
              "scattering them into the block (and counting points); `encode` cuts the "
              "block per chunk and compresses each series' chunk (lz4, CRC-32); `commit` is "
              "`Store` transactions: the core's per-series read-merge-write for backends "
              "without batch writes (records, insert checks) and the backend's own commit. "
              "The wall time adds the interpreter and imports (~1 s)."]
    lines += ["", "## Reading the numbers", ""]
    for r in runs:
        own = r["read_s"] + r["encode_s"]
        lines.append(
            f"- {r['kind']}://: committing takes {r['commit_s']:.1f} s of {r['wall_s']:.1f} s "
            f"({r['commit_s'] / r['wall_s']:.0%}), {r['commit_s'] / r['series'] * 1e6:.0f} us "
            f"per series; reading, validating and pivoting the {r['rows'] / 1e6:,.1f} M rows "
            f"and encoding the series take {own:.1f} s ({r['read_s']:.1f} + "
            f"{r['encode_s']:.1f}).")
    lines += [
        "- The ingest itself (`curvestore/core/ingest.py`, `longform.py`, `pivot.py`) is "
        "vectorised: per batch of 2^20 rows, the keys and the instants are factorised and "
        "only the distinct ones reach Python; the block is one scatter. Encoding runs per "
        "series (one lz4 call and one CRC-32 per chunk), as for `write_frame`.",
        "- file:// is the log-structured engine: `commit_encoded` hands it each group as "
        "one `ChunkBatch` (`WritesBatches`), committed as one segment and one log entry; "
        "its per-series cost is the insert check against the catalog and the change-feed "
        "items. memory:// (the reference backend) takes the groups through the core's "
        "per-series read-merge-write (a record per chunk, an insert check per series).",
        f"- Peak memory is the block (9 bytes per series and point: "
        f"{facts['rows'] * 9 / 1e9:.2f} GB for this day), "
        "the keys (one tuple per series), one batch of Arrow and pandas columns, and one "
        "group's encoded chunks and backend staging; memory:// also holds the whole store.",
    ]
    for kind, table in profiles.items():
        lines += ["", f"## Where the commit goes on {kind}:// (cProfile of the same command, "
                  f"{saved['profile_meters']:,} meters)", "", *table]
    return "\n".join(lines) + "\n"


def ingest_file(path: str | None, meters: int, day: str) -> Path:
    """The long-format file of ``meters`` meters (made if missing)."""
    file = Path(path) if path else WORK / f"ingest-{meters}.parquet"
    if not file.exists():
        from fleetkit.data import make_ingest_file

        print(f"making {file}", flush=True)
        make_ingest_file(file, meters, dt.date.fromisoformat(day))
    return file


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    raw = WORK / "results-ingest.json"
    if args.render_only:
        saved = json.loads(Path(args.render_only).read_text())
        write_page(args, saved)
        return 0
    workdir = Path(args.workdir) if args.workdir else WORK
    workdir.mkdir(parents=True, exist_ok=True)
    file = ingest_file(args.file, args.meters, args.day)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file).metadata
    facts = {"name": file.name, "rows": meta.num_rows, "bytes": file.stat().st_size,
             "meters": meta.num_rows // 96}
    load_before = os.getloadavg()
    runs, profiles = [], {}
    for kind in args.url:
        print(f"{kind}:// ...", flush=True)
        runs.append(run_one(kind, file, workdir, args.mode, None))
        print(f"  {runs[-1]['wall_s']:.1f} s, {runs[-1]['peak_rss'] / 2**30:.2f} GiB", flush=True)
    if not args.no_profile:
        small = (file if args.profile_meters >= facts["meters"] else
                 ingest_file(None, args.profile_meters, args.day))
        for kind in args.url:
            print(f"{kind}:// under cProfile, {args.profile_meters:,} meters ...", flush=True)
            dump = workdir / f"ingest-{kind}.prof"
            run_one(kind, small, workdir, args.mode, dump)
            profiles[kind] = profile_lines(dump)
    saved = {"argv": sys.argv[1:], "date": time.strftime("%Y-%m-%d %H:%M %Z"),
             "facts": facts, "runs": runs, "profiles": profiles,
             "profile_meters": min(args.profile_meters, facts["meters"]),
             "load": [list(load_before), list(os.getloadavg())],
             "versions": versions()}
    raw.write_text(json.dumps(saved, indent=2))
    write_page(args, saved)
    for run in runs:  # after the page: a million series' directories take minutes to remove
        if run["url"].startswith("file://"):
            for suffix in ("", "-profiled"):
                shutil.rmtree(run["url"][len("file://"):] + suffix, ignore_errors=True)
    return 0


def versions() -> dict[str, str]:
    import numpy as np
    import pandas as pd
    import pyarrow

    return {"machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python "
                       f"{platform.python_version()}, numpy {np.__version__}, pandas "
                       f"{pd.__version__}, pyarrow {pyarrow.__version__}"}


def write_page(args: argparse.Namespace, saved: dict[str, Any]) -> None:
    page = render(args, saved)
    if args.output == "-":
        print(page)
    else:
        Path(args.output).write_text(page)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    raise SystemExit(main())
