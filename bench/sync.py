"""Benchmark replication: in process (file -> file) and over HTTP on loopback, wire size
compared with holcstore's ``pack/`` format, and the latency of a pull with nothing to do.

Workload: N=50 series x 3 years (2022-01-01 to 2025-01-01) of 15-min float64 in Europe/Paris,
month chunks (1,800 chunks), codec lz4, on two data sets: ``random`` (seeded uniform random
values, incompressible) and ``load`` (realistic meter curves from curvestore.sampledata).

Run (needs curvestore[http] installed; no other peer is needed)::

    python bench/sync.py                 # writes bench/RESULTS-sync.md
    python bench/sync.py --n 10 --runs 1 --output -

Measured, per data set, each the median of ``--runs`` runs on fresh targets:

- in-process ``replicate(file_store, file_store)``: chunks/s and MB/s of payload;
- HTTP: ``curvestore serve`` in a subprocess on 127.0.0.1, ``replicate(HTTPSource(url),
  file_store)`` in this process: chunks/s, MB/s of payload, bytes received;
- wire bytes per chunk: our chunk stream (``POST /v1/chunks`` bodies, the framed records)
  against holcstore's ``pack/`` body for the same chunks, built as its ViewSet does: a JSON list
  (DRF's compact JSONRenderer) of ``{"blob": base64(blob), "attrs": {keys..., "chunk_index"},
  "meta": {"dtype", "start_ts", "is_deleted", "updated_at"}}`` from ``export_chunks``'s
  ``[(blob, attrs, meta)]``, datetimes rendered as DRF does (ISO 8601, ``Z`` for UTC);
- an incremental pull with nothing to do on the 50-series store: the whole ``replicate`` call
  with a new ``HTTPSource`` (connect, manifest, one change page), and one change-feed request
  on a kept-alive connection.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import curvestore
from curvestore.adapters.http import HTTPSource
from curvestore.adapters.http.wire import encode_records
from curvestore.sampledata import load_curves

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work" / "sync"
TARGETS = {"wire_ratio": 0.8, "inproc_mb_s": 150.0, "http_mb_s": 60.0, "empty_pull_ms": 50.0}
KEYS = {"site": str, "kind": str}
START, END, FREQ, TZ = "2022-01-01", "2025-01-01", "15min", "Europe/Paris"


def dataset(name: str, n: int) -> dict[tuple[str, str], pd.Series]:
    if name == "load":
        curves = load_curves(n, START, END, freq=FREQ, tz=TZ, seed=1)
    else:
        index = pd.date_range(pd.Timestamp(START, tz=TZ), pd.Timestamp(END, tz=TZ), freq=FREQ,
                              inclusive="left")
        rng = np.random.default_rng(1)
        curves = [pd.Series(rng.uniform(0, 100, len(index)), index=index) for _ in range(n)]
    return {(f"site{i:03d}", "load"): c for i, c in enumerate(curves)}


def fresh_store(path: Path) -> curvestore.Store:
    shutil.rmtree(path, ignore_errors=True)
    return curvestore.create_store(f"file://{path}", keys=KEYS, freq=FREQ, tz=TZ)


def start_server(url: str) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, "-m", "curvestore.cli", "serve", url, "--port",
                               "0", "--threads", "4"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if " on http://" not in line:
        server.kill()
        raise RuntimeError(f"curvestore serve did not start: {line!r}")
    return server, line.split(" on ")[1].split()[0]


def _drf_datetime(ns: int) -> str:
    text = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def holcstore_pack_bytes(store: curvestore.Store) -> tuple[int, int]:
    """(body bytes of holcstore's pack/ answer for every chunk of ``store``, chunk count)."""
    grid = store.grid
    payload = []
    for key, records in store.backend.scan({}):
        attrs = store.schema.as_dict(key)
        for r in records:
            payload.append({
                "blob": base64.b64encode(r.payload).decode(),
                "attrs": {**attrs, "chunk_index": r.chunk},
                "meta": {"dtype": "float64",
                         "start_ts": _drf_datetime(grid.period_start_ns(r.chunk)),
                         "is_deleted": False, "updated_at": _drf_datetime(r.meta.updated_at)},
            })
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return len(body), len(payload)


def our_stream_bytes(store: curvestore.Store) -> int:
    return sum(len(encode_records(records)) for _key, records in store.backend.scan({}))


def time_replicate(source: Any, path: Path | None, batch: int) -> tuple[float, Any]:
    """Seconds to replicate ``source`` into a fresh file:// store at ``path`` (None: a fresh
    memory:// store, which isolates the source and transport from the target's commits)."""
    target = fresh_store(path) if path is not None else curvestore.create_store(
        "memory://", keys=KEYS, freq=FREQ, tz=TZ)
    try:
        began = time.perf_counter()
        report = curvestore.replicate(source, target, batch=batch)
        return time.perf_counter() - began, report
    finally:
        target.close()


def profile_top(func: Any, limit: int = 12) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    func()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls"))
    return "\n".join(lines[start:start + limit + 1])


def bench_dataset(name: str, n: int, runs: int, batch: int) -> dict[str, Any]:
    work = WORK / name
    source = fresh_store(work / "src")
    source.write_many(dataset(name, n))
    info = source.info()
    result: dict[str, Any] = {"dataset": name, "series": info["series"], "chunks": info["chunks"],
                              "payload_bytes": info["payload_bytes"]}
    mb = info["payload_bytes"] / 1e6

    inproc = [time_replicate(source, work / f"dst-{uuid.uuid4().hex[:6]}", batch)[0]
              for _ in range(runs)]
    result["inproc_s"] = statistics.median(inproc)
    result["inproc_mem_s"] = statistics.median(
        time_replicate(source, None, batch)[0] for _ in range(runs))

    server, url = start_server(source.url)
    try:
        times, received = [], 0
        for _ in range(runs):
            remote = HTTPSource(url)
            took, report = time_replicate(remote, work / f"http-{uuid.uuid4().hex[:6]}", batch)
            assert report.chunks == info["chunks"], report
            times.append(took)
            received = remote.bytes_received
            remote.close()
        result["http_s"] = statistics.median(times)
        result["http_received"] = received
        result["http_mem_s"] = statistics.median(
            time_replicate(HTTPSource(url), None, batch)[0] for _ in range(runs))

        replica = fresh_store(work / "replica")
        curvestore.replicate(HTTPSource(url), replica)
        empty = []
        for _ in range(max(20, runs)):
            began = time.perf_counter()
            with HTTPSource(url) as remote:
                report = curvestore.replicate(remote, replica)
            empty.append(time.perf_counter() - began)
            assert report.changes == 0
        result["empty_pull_ms"] = statistics.median(empty) * 1e3
        result["empty_pull_p95_ms"] = float(np.percentile(empty, 95)) * 1e3
        cursor = replica.get_state(
            f"replica-of:{source.config.store_id}")
        with HTTPSource(url) as remote:
            remote.manifest()
            single = []
            for _ in range(50):
                began = time.perf_counter()
                remote.changes(cursor, {}, batch)
                single.append(time.perf_counter() - began)
        result["empty_page_ms"] = statistics.median(single) * 1e3
        replica.close()
        if mb / result["http_s"] < TARGETS["http_mb_s"]:
            path = work / "profiled"
            result["http_profile"] = profile_top(
                lambda: time_replicate(HTTPSource(url), path, batch))
    finally:
        server.terminate()
        server.wait(timeout=20)

    ours = our_stream_bytes(source)
    holc, count = holcstore_pack_bytes(source)
    result["wire_ours_per_chunk"] = ours / count
    result["wire_holc_per_chunk"] = holc / count
    if mb / result["inproc_s"] < TARGETS["inproc_mb_s"]:
        path = work / "profiled"
        result["inproc_profile"] = profile_top(lambda: time_replicate(source, path, batch))
    source.close()
    shutil.rmtree(work, ignore_errors=True)
    return result


def machine() -> list[str]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(WORK)],
                        capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return [f"nproc: {os.cpu_count()}", f"cpu: {cpu}",
            f"os: {platform.platform()}", f"python: {platform.python_version()}",
            f"filesystem of bench/.work: {fs or '?'} (fsync=true, the default)",
            f"waitress: {_v('waitress')}", f"requests: {_v('requests')}",
            f"curvestore: {curvestore.__version__} (git {commit or '?'})",
            "load average (1, 5, 15 min) when the report was written: "
            + ", ".join(f"{x:.2f}" for x in os.getloadavg())]


def _v(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    factor = (target / value) if higher_is_better else (value / target)
    return f"**missed** by {factor:.2f}x"


def report(results: list[dict[str, Any]], args: argparse.Namespace, took: float) -> str:
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out = [
        "# curvestore replication benchmark",
        "",
        f"Generated by `python bench/sync.py` on {now} ({took:.0f} s). Do not edit by hand: "
        "rerun.",
        "",
        "## Machine and versions",
        "",
        *[f"- {line}" for line in machine()],
        "",
        "## Workload",
        "",
        f"{args.n} series x {START} to {END} (local, end excluded) at {FREQ} in {TZ}, float64, "
        "month chunks, codec lz4, on a file:// source. Each number is the median of "
        f"{args.runs} runs on fresh file:// targets (fsync on), batch={args.batch}. HTTP: "
        "`curvestore serve` (waitress, 4 threads) in a subprocess on 127.0.0.1, the client "
        "(`HTTPSource` + `replicate`) in the benchmark process. MB = 10^6 bytes of chunk "
        "payload (compressed, as stored). Holcstore's bytes are computed, not measured: its "
        "`pack/` body for the same blobs (see the script's docstring).",
        "",
        "### Throughput (chunks/s, MB/s of payload, seconds)",
        "",
        "The `-> memory://` columns replicate into an in-memory target: they show what the "
        "source and the transport deliver without the file target's commits.",
        "",
        "| data set | chunks | payload | in-process file -> file | HTTP loopback -> file "
        "| in-process file -> memory:// | HTTP loopback -> memory:// |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def speed(r: dict[str, Any], name: str) -> str:
        s = r[name]
        return (f"{r['chunks'] / s:,.0f} chunks/s, {r['payload_bytes'] / 1e6 / s:.0f} MB/s "
                f"({s:.2f} s)")

    for r in results:
        out.append(f"| {r['dataset']} | {r['chunks']:,} | {r['payload_bytes'] / 1e6:.1f} MB "
                   f"| {speed(r, 'inproc_s')} | {speed(r, 'http_s')} "
                   f"| {speed(r, 'inproc_mem_s')} | {speed(r, 'http_mem_s')} |")
    out += ["", "### Wire size and empty pulls", "",
            "| data set | wire bytes/chunk: ours | holcstore pack/ | ratio "
            "| bytes received per chunk (all requests) | empty pull (new client, whole "
            "replicate call) | one empty change page (kept-alive) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        out.append(
            f"| {r['dataset']} | {r['wire_ours_per_chunk']:,.0f} "
            f"| {r['wire_holc_per_chunk']:,.0f} "
            f"| {r['wire_ours_per_chunk'] / r['wire_holc_per_chunk']:.3f} "
            f"| {r['http_received'] / r['chunks']:,.0f} "
            f"| {r['empty_pull_ms']:.1f} ms (p95 {r['empty_pull_p95_ms']:.1f}) "
            f"| {r['empty_page_ms']:.2f} ms |")
    out += ["", "## Targets (issue 4)", "", "| target | data set | measured | verdict |",
            "| --- | --- | --- | --- |"]
    for r in results:
        mb = r["payload_bytes"] / 1e6
        ratio = r["wire_ours_per_chunk"] / r["wire_holc_per_chunk"]
        rows = [
            ("wire bytes/chunk <= 0.8x holcstore's", f"{ratio:.3f}x",
             verdict(ratio, TARGETS["wire_ratio"], False)),
            ("in-process file -> file >= 150 MB/s", f"{mb / r['inproc_s']:.0f} MB/s",
             verdict(mb / r["inproc_s"], TARGETS["inproc_mb_s"], True)),
            ("HTTP loopback >= 60 MB/s", f"{mb / r['http_s']:.0f} MB/s",
             verdict(mb / r["http_s"], TARGETS["http_mb_s"], True)),
            ("empty incremental pull < 50 ms", f"{r['empty_pull_ms']:.1f} ms",
             verdict(r["empty_pull_ms"], TARGETS["empty_pull_ms"], False)),
        ]
        out += [f"| {t} | {r['dataset']} | {m} | {v} |" for t, m, v in rows]
    out += ["", "## Where the time goes", ""]
    for r in results:
        per_chunk = r["payload_bytes"] / r["chunks"]
        extra = r["inproc_s"] - r["inproc_mem_s"]
        out.append(
            f"- `{r['dataset']}` ({per_chunk / 1e3:.1f} kB of payload per chunk): a file "
            f"target adds {extra:.2f} s to the in-process run over a memory:// target "
            f"(file -> memory:// runs at {r['payload_bytes'] / 1e6 / r['inproc_mem_s']:.0f} "
            f"MB/s); over HTTP the transport alone (-> memory://) delivers "
            f"{r['payload_bytes'] / 1e6 / r['http_mem_s']:.0f} MB/s. A MB/s target is a "
            f"chunks/s target of {150e6 / per_chunk:,.0f} chunks/s in process and "
            f"{60e6 / per_chunk:,.0f} over HTTP at this chunk size.")
    out += ["",
            "`replicate` pulls page k+1 (change page, fetch, checksum verification) in a "
            "background thread while page k commits, so the source or the network and the "
            "target's commits overlap. The file target writes one shard file per series and "
            "year touched by a page (about 150 files for the 1,800 chunks here, instead of one "
            "file per chunk), logs the batch, renames, and makes it durable with one syncfs. "
            "What remains per chunk is Python work (framing, checksums, JSON log lines) and "
            "copying the payload into the page cache, so compressible data (smaller chunks) "
            "gives fewer MB/s for about the same chunks/s. Timings are noisy on this shared "
            "2-core machine: rerun before comparing."]
    for r in results:
        for kind in ("inproc", "http"):
            if f"{kind}_profile" in r:
                out += ["", f"### Profile of a missed target: {kind}, {r['dataset']} "
                        "(cProfile, top functions by own time)", "", "```",
                        r[f"{kind}_profile"], "```"]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="series (default: 50)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measure (default: 3)")
    parser.add_argument("--batch", type=int, default=500, help="replicate batch (default 500)")
    parser.add_argument("--datasets", default="random,load")
    parser.add_argument("--output", default=str(BENCH / "RESULTS-sync.md"),
                        help="results file, '-' for stdout")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = []
    for name in args.datasets.split(","):
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        results.append(bench_dataset(name, args.n, args.runs, args.batch))
        print(json.dumps({k: v for k, v in results[-1].items() if "profile" not in k}),
              file=sys.stderr)
    text = report(results, args, time.perf_counter() - began)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
        if Path(args.output).resolve() == BENCH / "RESULTS-sync.md":
            _fold_into_results_md()
    return 0


def _fold_into_results_md() -> None:
    """Refresh this benchmark's section of bench/RESULTS.md (bench/run.py's fold)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    from benchkit.fold import fold_into_results_md

    fold_into_results_md("sync")

if __name__ == "__main__":
    sys.exit(main())
