"""Benchmark the S3 backend and archival on one moto server on loopback, against ArcticDB.

Workload (bench/run.py's, reused by importing it): N series x Y years of 15-min float64 in
Europe/Paris, month chunks, data sets ``random`` and ``load``. ONE moto server (``moto[server]``,
started with ``curvestore.testing.s3_server`` in a child process, so that its Python does not
share a GIL with the clients under test) serves both systems in the same run:

- curvestore on ``s3://curvestore-test/<fresh prefix>?endpoint_url=...&region=us-east-1``
  (boto3 over HTTP; ``write_many``, ``read``, ``read_many``, ``read(key, start, end)``,
  ``write(mode="update")``);
- ArcticDB on ``s3://127.0.0.1:curvestore-test?port=PORT&access=..&secret=..&path_prefix=..``
  (its C++ S3 client over HTTP, path-style addressing; ``write_batch``, ``read``,
  ``read_batch``, ``read(date_range=...)``, ``update``).

Every read-back is compared with the input (bit-identical float64, same instants) by
bench/run.py's ``run_system``. The server counts requests per HTTP method and the time it spent
in each, so the results say how many S3 requests each operation made and what one costs on moto.

Then archive throughput (``curvestore.core.archive.archive``) to a fresh S3 prefix: from a
``file://`` store and from a PostgreSQL store (a throw-away server from
``curvestore.testing.postgres_server``), once byte-identical and once with ``codec="pcodec"``;
the archive is read back series by series and checked against the input.

Run::

    python bench/s3.py                  # installs into bench/.venv, runs, writes RESULTS-s3.md
    python bench/s3.py --skip-install --n 10 --datasets load --output -
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
assert _spec is not None and _spec.loader is not None
R = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = R
_spec.loader.exec_module(R)

WORK = BENCH / ".work" / "s3"
EXTRAS = ["moto[s3,server]>=5", "boto3>=1.28", "pcodec>=0.3", "psycopg[binary]>=3.1"]
ACCESS, SECRET = "testing-key-id", "testing-secret-key"
STATS_PATH = "/__bench__/stats"

# (label, metric path, kind, threshold): throughput = arcticdb time / curvestore time >= t;
# latency = curvestore / arcticdb <= t
TARGETS = [
    ("write_many >= 1x ArcticDB write_batch throughput", ("write_many_s",), "throughput", 1.0),
    ("read_many >= 2x ArcticDB read_batch throughput", ("read_many_s",), "throughput", 2.0),
    ("1-month read median <= 0.5x ArcticDB", ("read_month", "median_ms"), "latency", 0.5),
]


# -- environment -----------------------------------------------------------------------------------
def ensure_env(skip_install: bool) -> None:
    """Like run.ensure_env, but re-executes this script, and adds the S3/archive extras."""
    if os.environ.get(R._INSTALLED_FLAG) == "1":
        return
    if skip_install:
        if R._in_venv():
            return
        if not R.VENV_PYTHON.exists():
            sys.exit(f"--skip-install: {R.VENV} does not exist; run without --skip-install")
    else:
        R.install_env()
        R._run([str(R.VENV_PYTHON), "-m", "pip", "install", "-q",
                "--disable-pip-version-check", *EXTRAS])
    env = dict(os.environ, **{R._INSTALLED_FLAG: "1"})
    os.execve(str(R.VENV_PYTHON), [str(R.VENV_PYTHON), str(Path(__file__).resolve()),
                                   *sys.argv[1:]], env)


# -- the moto server (child process) ---------------------------------------------------------------
def _serve() -> None:
    """Child process: run curvestore.testing.s3_server's moto, counting requests, until stdin
    closes. Prints the base store URL on stdout."""
    import threading

    from curvestore.testing import s3_server as mod

    lock = threading.Lock()
    stats: dict[str, list[float]] = {}  # method -> [count, seconds, bytes in, bytes out]
    original = mod._serialising_writes

    def counting(app: Any) -> Any:
        inner = original(app)

        def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == STATS_PATH:
                with lock:
                    body = json.dumps(stats).encode()
                start_response("200 OK", [("Content-Type", "application/json")])
                return [body]
            t0 = time.perf_counter()
            out = list(inner(environ, start_response))
            elapsed = time.perf_counter() - t0
            method = environ.get("REQUEST_METHOD", "?")
            query = environ.get("QUERY_STRING", "")
            if method == "GET" and ("list-type=" in query or "prefix=" in query):
                method = "LIST"
            with lock:
                s = stats.setdefault(method, [0, 0.0, 0, 0])
                s[0] += 1
                s[1] += elapsed
                s[2] += int(environ.get("CONTENT_LENGTH") or 0)
                s[3] += sum(len(b) for b in out)
            return out

        return wrapped

    mod._serialising_writes = counting
    with mod.s3_server() as url:
        print(url, flush=True)
        sys.stdin.read()


class Moto:
    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("CURVESTORE_TEST_S3_URL", None)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("s3://"):
            raise SystemExit("moto did not start")
        self.endpoint = dict(p.split("=", 1) for p in self.url.split("?", 1)[1].split("&")
                             )["endpoint_url"]
        self.port = urlsplit(self.endpoint).port
        self.bucket = urlsplit(self.url).netloc
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET})
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def stats(self) -> dict[str, list[float]]:
        with urllib.request.urlopen(self.endpoint + STATS_PATH) as resp:
            return json.loads(resp.read())

    def prefix_bytes(self, prefix: str) -> tuple[int, int]:
        """(objects, bytes) under ``prefix``."""
        count = size = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
            for obj in page.get("Contents", []):
                count += 1
                size += obj["Size"]
        return count, size

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def _delta(after: dict[str, list[float]], before: dict[str, list[float]]) -> dict[str, Any]:
    out = {}
    for method, vals in after.items():
        prev = before.get(method, [0, 0.0, 0, 0])
        d = [a - b for a, b in zip(vals, prev, strict=True)]
        if d[0]:
            out[method] = {"requests": int(d[0]), "server_s": d[1], "bytes_in": int(d[2]),
                           "bytes_out": int(d[3])}
    return out


class Counted:
    """Wraps a System: server-side request counts per phase (one stats call at each change of
    phase, i.e. method name, so timed loops such as the 1-month reads pay it only once)."""

    def __init__(self, inner: Any, moto: Moto) -> None:
        self.inner, self.moto = inner, moto
        self.phase: str | None = None
        self.snap: dict[str, list[float]] = {}
        self.calls: dict[str, int] = {}
        self.requests: dict[str, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _enter(self, phase: str) -> None:
        self.calls[phase] = self.calls.get(phase, 0) + 1
        if phase == self.phase:
            return
        now = self.moto.stats()
        if self.phase is not None:
            acc = self.requests.setdefault(self.phase, {})
            for method, d in _delta(now, self.snap).items():
                a = acc.setdefault(method, {k: 0 for k in d})
                for k, v in d.items():
                    a[k] += v
        self.phase, self.snap = phase, now

    def setup(self, ds: Any) -> None:
        self.phase, self.snap, self.calls, self.requests = None, {}, {}, {}
        self._enter("setup")
        self.inner.setup(ds)

    def write_many(self, mapping: Any) -> None:
        self._enter("write_many")
        self.inner.write_many(mapping)
        self._enter("after_write")

    def after_write(self) -> Any:
        return self.inner.after_write()

    def bytes(self) -> Any:
        self._enter("bytes")
        return self.inner.bytes()

    def read(self, key: Any) -> Any:
        self._enter("read_each")
        return self.inner.read(key)

    def read_many(self) -> Any:
        self._enter("read_many")
        yield from self.inner.read_many()
        self._enter("idle")

    def read_window(self, key: Any, start: Any, end: Any) -> Any:
        self._enter("read_month")
        return self.inner.read_window(key, start, end)

    def update(self, key: Any, series: Any) -> None:
        self._enter("update_week")
        self.inner.update(key, series)

    def teardown(self) -> None:
        self._enter("teardown")
        self.inner.teardown()


# -- the systems on S3 -----------------------------------------------------------------------------
class ArcticDBS3(R.ArcticDBSystem):
    def __init__(self, moto: Moto, run_id: str) -> None:
        super().__init__()
        self.moto, self.run_id, self.setups = moto, run_id, 0
        self.label = f"ArcticDB {self.adb.__version__} (S3 on moto)"
        self.calls = {**self.calls, "bytes": "sizes of the objects under its path_prefix"}

    def setup(self, dataset: Any) -> None:
        self.setups += 1
        self.prefix = f"arcticdb-{dataset.name}-{self.run_id}-r{self.setups}"
        uri = (f"s3://127.0.0.1:{self.moto.bucket}?port={self.moto.port}&access={ACCESS}"
               f"&secret={SECRET}&region=us-east-1&path_prefix={self.prefix}")
        self.ac = self.adb.Arctic(uri)
        self.lib = self.ac.get_library("bench", create_if_missing=True)

    def bytes(self) -> Any:
        objects, size = self.moto.prefix_bytes(self.prefix)
        return R.Bytes(size, "sizes of the objects under its path_prefix", {"objects": objects})


class CurvestoreS3(R.CurvestoreSystem):
    def __init__(self, moto: Moto, codec: str, run_id: str, options: str = "") -> None:
        head, _, query = moto.url.partition("?")
        extra = f"&{options}" if options else ""
        super().__init__(f"{head}/{{dataset}}-{{run}}?{query}{extra}", codec, run_id)
        self.moto = moto
        self.label = f"curvestore {self.cs.__version__} (S3 on moto, {codec})"
        self.calls = {**self.calls, "bytes": "sizes of the objects under its prefix"}

    def setup(self, dataset: Any) -> None:
        super().setup(dataset)
        self.prefix = f"{dataset.name}-{self.run_id}-r{self.setups}"
        self.shard = self.store.backend.shard_size  # chunks per object, from the manifest

    def bytes(self) -> Any:
        objects, size = self.moto.prefix_bytes(self.prefix)
        return R.Bytes(size, "sizes of the objects under its prefix",
                       {"objects": objects, "payload": int(self.store.info()["payload_bytes"])})


# -- archive ---------------------------------------------------------------------------------------
def archive_runs(args: argparse.Namespace, moto: Moto, ds: Any, end: str, run_id: str,
                 pg_url: str | None) -> list[dict[str, Any]]:
    import shutil

    import curvestore
    from curvestore.core.archive import archive

    mapping = dict(zip(ds.keys, ds.series, strict=True))
    schema = {"keys": {"site": str, "kind": str}, "freq": R.FREQ, "tz": R.TZ,
              "chunking": "month", "codec": args.codec}
    sources = [("file", None)]
    if pg_url:
        sources.append(("postgresql", pg_url))
    head, _, query = moto.url.partition("?")
    out = []
    for kind, url in sources:
        if kind == "file":
            path = WORK / f"archive-src-{ds.name}"
            shutil.rmtree(path, ignore_errors=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            src_url = path.as_uri()
        else:
            assert url is not None
            table = f"arch_{ds.name}_{run_id.replace('-', '_')}"
            src_url = url + ("&" if "?" in url else "?") + f"table={table}"
        source = curvestore.create_store(src_url, **schema)
        source.write_many(mapping, mode="insert")
        info = source.info()
        for codec in (None, "pcodec"):
            prefix = f"archive-{kind}-{codec or 'same'}-{ds.name}-{run_id}"
            extra = f"&{args.s3_options}" if args.s3_options else ""
            target = curvestore.create_store(f"{head}/{prefix}?{query}{extra}", **schema)
            before = moto.stats()
            t0 = time.perf_counter()
            report = archive(source, target, end, codec=codec)
            elapsed = time.perf_counter() - t0
            requests = _delta(moto.stats(), before)
            if report.chunks != info["chunks"]:
                raise R.BenchError(f"archive {kind}->{prefix}: {report.chunks} chunks archived, "
                                   f"{info['chunks']} in the source")
            for key, expected in zip(ds.keys, ds.series, strict=True):
                got = target.read(dict(zip(R.KEYS, key, strict=True)))
                R.check_same(got, expected, f"archive {kind} codec={codec} {key}")
            t1 = time.perf_counter()
            again = archive(source, target, end, codec=codec)
            rerun = time.perf_counter() - t1
            if again.chunks or again.skipped != info["chunks"]:
                raise R.BenchError(f"archive re-run was not a no-op: {again}")
            _, stored = moto.prefix_bytes(prefix)
            row = {"source": kind, "codec": codec or f"same ({args.codec})",
                   "series": report.series, "chunks": report.chunks,
                   "source_payload_bytes": info["payload_bytes"],
                   "archived_payload_bytes": report.payload_bytes, "objects_bytes": stored,
                   "seconds": elapsed, "chunks_per_s": report.chunks / elapsed,
                   "source_mb_s": info["payload_bytes"] / elapsed / 1e6,
                   "archived_mb_s": report.payload_bytes / elapsed / 1e6,
                   "rerun_s": rerun, "requests": requests}
            print(f"  archive {kind} -> s3 codec={row['codec']}: {report.chunks} chunks in "
                  f"{elapsed:.2f} s ({row['chunks_per_s']:.0f} chunks/s, "
                  f"{row['source_mb_s']:.1f} MB/s of source payload); verified; re-run "
                  f"{rerun:.2f} s no-op", flush=True)
            out.append(row)
            target.close()
        source.close()
    return out


# -- run -------------------------------------------------------------------------------------------
def _load() -> str:
    """The machine's load averages (1, 5, 15 min), as uptime shows them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="number of series (50)")
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--start", default="2022-01-01")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", default="random,load")
    ap.add_argument("--month-reads", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of the workload per system, interleaved; medians reported (1)")
    ap.add_argument("--codec", default="lz4")
    ap.add_argument("--s3-options", default="",
                    help="extra options for curvestore's s3:// URLs, e.g. 'shard=12'")
    ap.add_argument("--no-archive", action="store_true")
    ap.add_argument("--no-postgres", action="store_true", help="archive from file:// only")
    ap.add_argument("--output", default=str(BENCH / "RESULTS-s3.md"), help="'-' for stdout")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--render-only", metavar="RESULTS_JSON",
                    help="only re-render a results JSON file into --output")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        _serve()
        return 0
    if args.render_only:
        Path(args.output).write_text(render(json.loads(Path(args.render_only).read_text())))
        print(f"wrote {args.output}")
        return 0
    ensure_env(args.skip_install)
    R._import_common()
    pd = R.pd
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    moto = Moto()
    print(f"moto on {moto.endpoint}", flush=True)
    try:
        systems = [ArcticDBS3(moto, run_id),
                   CurvestoreS3(moto, args.codec, run_id, args.s3_options)]
        load_before = _load()
        end = (pd.Timestamp(args.start) + pd.DateOffset(years=args.years)).strftime("%Y-%m-%d")
        versions = {"numpy": R.np.__version__, "pandas": pd.__version__}
        for s in systems:
            versions.update(s.versions())
        for dist in ("boto3", "botocore", "moto", "Werkzeug", "pcodec", "psycopg"):
            versions[dist] = R._version(dist)
        results: dict[str, Any] = {"datasets": {}}
        pg_cm = None
        pg_url = None
        if not args.no_archive and not args.no_postgres:
            from curvestore.testing.postgres_server import postgres_server

            pg_cm = postgres_server(shared_buffers="256MB")
            pg_url = pg_cm.__enter__()
            versions.update({k: v for k, v in R._pg_server_facts(pg_url, True).items()
                             if k == "PostgreSQL"})
        try:
            for ds_name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
                ds = R.make_dataset(ds_name, args.n, args.start, end, args.seed)
                print(f"data set {ds_name}: {len(ds.series)} series x {len(ds.series[0])} "
                      "points", flush=True)
                windows = R.month_windows(ds, args.month_reads, args.seed)
                updates = R.week_updates(ds, args.seed)
                entry: dict[str, Any] = {"description": ds.description, "points": ds.points,
                                         "systems": {}, "load_before": _load()}
                runs: dict[str, list[Any]] = {s.name: [] for s in systems}
                reqs: dict[str, list[Any]] = {s.name: [] for s in systems}
                for _ in range(args.repeat):
                    for system in systems:
                        counted = Counted(system, moto)
                        runs[system.name].append(R.run_system(counted, ds, windows, updates))
                        reqs[system.name].append({"requests": counted.requests,
                                                  "calls": counted.calls})
                for system in systems:
                    entry["systems"][system.name] = {
                        "label": system.label, "result": R.median_of(runs[system.name]),
                        "runs": runs[system.name], "requests": reqs[system.name][-1]}
                entry["load_after"] = _load()
                for system in systems:
                    if isinstance(system, CurvestoreS3):
                        entry["shard"] = getattr(system, "shard", None)
                if not args.no_archive:
                    entry["archive"] = archive_runs(args, moto, ds, end, run_id, pg_url)
                results["datasets"][ds_name] = entry
        finally:
            if pg_cm is not None:
                pg_cm.__exit__(None, None, None)
    finally:
        moto.close()
    w = {"n": args.n, "start": args.start, "end": end, "month_reads": args.month_reads,
         "repeat": args.repeat, "codec": args.codec, "s3_options": args.s3_options,
         "load": [load_before, _load()]}
    results["meta"] = {"argv": sys.argv[1:], "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                       "run_id": run_id, "elapsed_s": time.perf_counter() - started,
                       "machine": R.machine_info(), "versions": versions, "workload": w,
                       "api": {s.label: s.calls for s in systems}}
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "results-s3.json").write_text(json.dumps(results, indent=2, default=str))
    text = render(results)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} and {WORK / 'results-s3.json'}")
    return 0


# -- report ----------------------------------------------------------------------------------------
# run.py's rows, with "on disk" read as "stored (objects)" and no update p95 (moto noise)
OPS = [(path, label.replace("on disk", "stored (objects)"), fmt) for path, label, fmt in R.ROWS
       if path != ("update_week", "p95_ms")]
PHASES = [("write_many", "write_many"), ("read_each", "full reads (all series)"),
          ("read_many", "read_many"), ("read_month", "1-month reads"),
          ("update_week", "1-week updates")]


_get = R._get


def _req_cells(req: dict[str, Any], phase: str) -> tuple[str, str, str]:
    """(requests per call, breakdown by method, mean server ms per request) of a phase."""
    methods = req["requests"].get(phase, {})
    calls = max(1, req["calls"].get(phase, 1))
    total = sum(m["requests"] for m in methods.values())
    server = sum(m["server_s"] for m in methods.values())
    parts = ", ".join(f"{k} {v['requests'] / calls:.3g}" for k, v in sorted(methods.items()))
    mean = f"{server / total * 1e3:.2f}" if total else "-"
    return f"{total / calls:.4g}", parts or "-", mean


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    w = meta["workload"]
    lines = ["# curvestore S3 backend and archival benchmark", "",
             f"Generated by `python bench/s3.py {' '.join(meta['argv'])}` on {meta['date']} "
             f"(run {meta['run_id']}, {meta['elapsed_s']:.0f} s). The analysis section is "
             "written from the profile below; the rest is rerun output.", "",
             "## Machine and versions", ""]
    lines += [f"- {k}: {v}" for k, v in meta["machine"].items()]
    lines += [f"- {k}: {v}" for k, v in meta["versions"].items()]
    lines += ["", "## Workload", "",
              f"{w['n']} series x {w['start']} to {w['end']} (local, end excluded) at "
              f"{R.FREQ} in {R.TZ}, float64, month chunks (bench/run.py's workload and "
              f"verification, imported from it). {w['month_reads']} random 1-month windows; one "
              f"1-week update per series. Repeats: {w['repeat']} (median). Both systems talk "
              "to the SAME moto server (moto[server] 5, werkzeug threaded, in its own process, "
              "127.0.0.1, writes serialised as in curvestore.testing.s3_server) in the same "
              "run, each under a fresh prefix; every read is checked bit for bit against the "
              "input. moto is far slower per request than S3 and runs on the same 2 CPUs as "
              "the clients: compare ratios, not absolute times.", "",
              "| operation | " + " | ".join(meta["api"]) + " |",
              "|" + " --- |" * (len(meta["api"]) + 1)]
    for op in ["write_many", "read_each", "read_many", "read_month", "update_week", "bytes"]:
        lines.append(f"| {op} | " + " | ".join(f"`{c.get(op, '')}`" for c in
                                               meta["api"].values()) + " |")
    verdicts: dict[str, list[str]] = {}
    for ds_name, ds in results["datasets"].items():
        sy = ds["systems"]
        cs, adb = sy["curvestore"], sy["arcticdb"]
        lines += ["", f"## Data set `{ds_name}`: {ds['description']}", ""]
        if "shard" in ds or "load_before" in ds:
            lines += [f"curvestore shard size: {ds.get('shard', '?')} month chunks per object "
                      f"(URL options: `{w.get('s3_options') or 'none'}`). Load average "
                      f"(1/5/15 min) before this data set: {ds.get('load_before', '?')}; "
                      f"after: {ds.get('load_after', '?')}.", ""]
        lines += [f"| operation | {adb['label']} | {cs['label']} | curvestore / ArcticDB |",
                  "| --- | ---: | ---: | ---: |"]
        for path, label, fmt in OPS:
            a, c = _get(adb["result"], path), _get(cs["result"], path)
            lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(c)} | "
                         f"{c / a:.2f}x |")
        lines += ["", "Targets (throughput ratio = ArcticDB time / curvestore time, higher is "
                  "better; latency ratio = curvestore / ArcticDB, lower is better):", "",
                  "| target | ratio | verdict |", "| --- | ---: | --- |"]
        for label, path, kind, threshold in TARGETS:
            a, c = _get(adb["result"], path), _get(cs["result"], path)
            ratio = a / c if kind == "throughput" else c / a
            ok = ratio >= threshold if kind == "throughput" else ratio <= threshold
            lines.append(f"| {label} | {ratio:.2f}x | **{'pass' if ok else 'MISS'}** |")
            verdicts.setdefault(label, []).append(
                f"{ds_name} {ratio:.2f}x {'pass' if ok else 'MISS'}")
        lines += ["", "S3 requests per call, counted by the server (LIST = GET with a prefix "
                  "or list-type query), and mean time moto spent per request:", "",
                  "| phase | system | requests per call | by method | server ms/request |",
                  "| --- | --- | ---: | --- | ---: |"]
        for phase, plabel in PHASES:
            for name in ("arcticdb", "curvestore"):
                req = sy[name].get("requests")
                if not req:
                    continue
                per, parts, mean = _req_cells(req, phase)
                lines.append(f"| {plabel} | {name} | {per} | {parts} | {mean} |")
        rows = ds.get("archive") or []
        if rows:
            lines += ["", "Archive to S3 (`curvestore.core.archive.archive(source, target, "
                      "before=end, codec=...)`, fresh target prefix; every archived series "
                      "read back and compared with the input; then re-run, which must be a "
                      "no-op):", "",
                      "| source | codec in archive | chunks | time (s) | chunks/s | "
                      "MB/s of source payload | MB/s written | archived MB | requests "
                      "(PUT / GET / LIST / DELETE) | re-run (s) |",
                      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
            for r in rows:
                q = r["requests"]
                counts = " / ".join(str(q.get(m, {}).get("requests", 0))
                                    for m in ("PUT", "GET", "LIST", "DELETE"))
                lines.append(
                    f"| {r['source']} | {r['codec']} | {r['chunks']} | {r['seconds']:.2f} | "
                    f"{r['chunks_per_s']:.0f} | {r['source_mb_s']:.2f} | "
                    f"{r['archived_mb_s']:.2f} | {r['archived_payload_bytes'] / 1e6:.2f} | "
                    f"{counts} | {r['rerun_s']:.2f} |")
    lines += ["", "## Targets", "", "| target | " + " | ".join(results["datasets"]) + " |",
              "| --- |" + " --- |" * len(results["datasets"])]
    for label, cells in verdicts.items():
        lines.append(f"| {label} | " + " | ".join(
            c.split(" ", 1)[1].replace("pass", "**pass**").replace("MISS", "**MISS**")
            for c in cells) + " |")
    lines += ["", "## Analysis", "", ANALYSIS]
    return "\n".join(lines) + "\n"


ANALYSIS = """\
**Conditions.** The runs shared the 2-vCPU VM with other jobs (load averages per data set are
given above, 1.7-3.5): moto, both clients and PostgreSQL competed for the same two CPUs, so
absolute times are inflated and noisy. Each system ran the workload 3 times, interleaved; the
tables show medians. The ratios follow request counts (which do not depend on load) and, for
the random data set, bytes moved.

**Before / after.** The previous layout (one object per month chunk; run of 2026-11-29 07:14
UTC, same machine, load 4-6.5) gave write_many 0.32x (random) / 0.23x (load) of ArcticDB's
throughput, read_many 0.10x / 0.09x, 1-month read median 0.52x / 0.43x, with 1,857 / 1,851
requests for write_many / read_many against ArcticDB's 500 / 152. The S3 backend now stores
**shards**: the chunks of one series for `shard` consecutive chunk periods in one object (each
chunk in the shared CVC1 encoding with its own checksums, then an index with its own CRC-32;
see `curvestore/backends/s3/__init__.py`). The default aims at about 2^17 points per object,
which for 15-min month chunks is 36 chunks = 3 calendar years (shard n covers chunks 36n to
36n+35, so 2022-2024 is one shard): this workload's series are ONE object each (~840 KB
random, ~280 KB load curves). Request counts per call, from the server:

- write_many: 55 (one LIST of the key range for the insert check, one recovery LIST of
  `pending/`, 50 shard PUTs with `If-None-Match`, marker PUT, log PUT, marker DELETE) against
  ArcticDB's 500 and the old layout's 1,857;
- read_many: 51 (ONE flat LIST of `series/`, 50 GETs on the 16-thread pool) against 152 and
  1,851 (the old layout also walked one LIST per site: 50 sequential LISTs);
- 1-month read: 1 ranged GET of the month's bytes (~24 KB random), conditional (`If-Match`) on
  the shard's ETag, because this process knows the shard's index (it wrote the shard, and
  read_many reads every shard). A process that does not know the index reads the whole shard
  once (one GET, up to ~840 KB here); its next reads of that shard are ranged;
- 1-week update: 5 (GET of the whole shard, marker PUT, shard PUT with `If-Match`, log PUT,
  marker DELETE) against ArcticDB's ~9.9. The price of shards is write amplification: a week's
  update rewrites its whole shard (~840 KB random, ~280 KB load) where the old layout rewrote
  one month.

Listings and GET responses no longer go through botocore's dateutil parsing of timestamps
(~1 ms per listed object in the old profile): they are kept as text and the backend parses the
one it needs (the age of pending markers).

**Verdicts, and their noise.** In this run write_many passes (3.68x / 3.18x), the 1-month read
passes (0.48x / 0.42x), read_many passes on load curves (2.19x) and misses on random data
(1.81x). An identical full run just before (`--skip-install --repeat 3`, 09:11-09:16 UTC,
load 2.2-3.8) passed all six: write_many 3.13x / 3.94x, read_many 2.76x / 2.23x, 1-month read
0.43x / 0.43x. read_many seconds per repeat:

| run | data set | ArcticDB read_batch | curvestore read_many |
| --- | --- | --- | --- |
| 09:11 | random | 0.989, 0.767, 1.111 | 0.436, 0.359, 0.279 |
| 09:11 | load | 1.138, 1.082, 0.942 | 0.485, 0.553, 0.486 |
| 09:17 (tables above) | random | 0.930, 0.888, 1.023 | 0.507, 0.513, 0.550 |
| 09:17 (tables above) | load | 0.712, 1.161, 1.029 | 0.470, 0.449, 0.626 |

On random data read_many moves 42 MB in 51 requests against ArcticDB's 84 MB in 152, and on
this moto a request's cost grows with its size: 50 concurrent GETs took 0.15 s for 10 KB
objects, 0.29 s for 840 KB and 0.46 s for 2.5 MB (measured separately on the same server
setup, load ~3). A cost model fitted to that (~3 ms per request + ~3.3 ms per MB) puts the
best case near 2.5x for random data, so the 2x target sits within this machine's noise there;
the client also decodes 1,800 chunks (payload CRC-32, LZ4, assembly: ~0.1 s on memory://) in
the consuming thread while the pool fetches the next shards.

**What the pass depends on: shard alignment.** Two extra runs (one repeat each, not in the
tables above):

- the same workload shifted to 2021-07-01..2024-07-01 (`--start 2021-07-01 --no-archive`,
  09:17 UTC, load ~2.5): each series then spans the shards 2019-2021 and 2022-2024, 2 objects
  per series: write_many 2.26x / 2.44x (pass), 1-month read 0.44x / 0.43x (pass), read_many
  **1.21x / 1.25x (MISS)** with 101 requests against ArcticDB's 152;
- `--s3-options shard=12` (one calendar year per object; 09:07 UTC, before ranged month reads
  existed, load ~3.5-4): write_many 1.35x / 2.07x (pass), read_many **1.04x / 1.21x (MISS)**
  with 151 requests, 1-month read 0.45x / 0.50x (pass; whole-shard GETs).

So read_many reaches 2x on moto only when a series' span fits in its shards: a 3-year window
straddling a 3-year shard boundary costs 2 GETs per series. Larger default shards would make
straddling rarer at the cost of more write amplification per update (a 10-year shard of 15-min
float64 is 2.3 MB before compression); 2^17 points (1 MiB of float64) per object was kept as
the balance. On real S3 (requests in parallel, no server-side write serialisation, ~20-50 ms
per request) the pool hides much of the per-request latency, and request counts mostly set the
bill.

**Archival** now costs per series: a LIST of the target series (its existing chunks, for
idempotence), the commit (marker PUT, a GET of the shard the commit had not read, here absent,
one shard PUT, log PUT, marker DELETE) and a LIST + GET to verify the read-back: 150 PUTs /
100 GETs / 101 LISTs / 50 DELETEs for 1,800 chunks, against ~77 target requests per series
before (36 chunk PUTs and 36 verification GETs among them). 1,800 chunks take 4-8 s (230-450
chunks/s) from file:// or PostgreSQL, against 34-47 s (38-53 chunks/s) in the old layout's
run; the re-run (a no-op) takes 1-2 s. pcodec archives of load curves are ~5.8x smaller than
LZ4 (2.3 MB vs 13.5 MB); re-encoding and decoding to verify costs CPU on the 2 loaded cores.

**Left open.** Not measured on real S3 or MinIO. A small read by a process that does not know
the shard's index reads the whole shard (a conditional ranged GET needs the cached index, and
reading the index first would add a round trip). `write_many(mode="update")` reads its series'
shards one series after the other (the core reads inside the transaction series by series).
A listing of many series is held in memory (one tuple per shard object) to sort the keys.
"""


if __name__ == "__main__":
    sys.exit(main())
