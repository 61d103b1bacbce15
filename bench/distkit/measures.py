"""The measures of bench/distributed.py: (a) the peak of every meter on Dask workers against
``read_many`` in one process, (b) the Arrow reads of ``distkit.arrow_reads`` when it is there,
(c) ``to_store`` into PostgreSQL from the workers against ``ingest`` in one process.

Each timed call runs once untimed first (imports, worker caches, the store opened on each
worker), then ``--runs`` times; the median is kept, with every time recorded. Every answer is
checked: the peaks of both paths bit for bit, each PostgreSQL table against the fleet.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from curvestore.dask import read_dask, to_store

__all__ = ["measure_a", "measure_b", "measure_c"]


def _timed(fn: Callable[[], Any], runs: int, before: Callable[[], Any] | None = None
           ) -> tuple[list[float], Any]:
    """``fn`` once untimed, then ``runs`` timed runs (``before()`` untimed before each);
    returns the times and the last answer."""
    if before is not None:
        before()
    answer = fn()
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        gc.collect()
        t0 = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - t0)
    return times, answer


def _summary(times: list[float], call: str) -> dict[str, Any]:
    return {"median_s": float(np.median(times)), "times_s": times, "call": call}


# -- (a) -------------------------------------------------------------------------------------
def measure_a(store: Any, url: str, args: Any) -> dict[str, Any]:
    """The peak of every meter: Dask workers against ``read_many`` in this process."""
    spp = args.series_per_partition

    def one_process() -> tuple[np.ndarray, np.ndarray]:
        meters, peaks = [], []
        for key, series in store.read_many():
            meters.append(key["meter"])
            peaks.append(series.max())
        return np.asarray(meters), np.asarray(peaks, dtype=np.float64)

    def on_dask(**compute: Any) -> tuple[np.ndarray, np.ndarray]:
        # split_out=1: a tree reduction of per-partition maxima; a meter's points are all in
        # one partition, so the shuffle Dask picks for 10,000 groups would only add work
        peaks = read_dask(url, series_per_partition=spp).groupby("meter").value.max(
            split_out=1)
        got = peaks.compute(**compute).sort_index()
        return got.index.to_numpy(), got.to_numpy(np.float64)

    print("(a) the peak of every meter", flush=True)
    partitions = read_dask(url, series_per_partition=spp).npartitions
    out: dict[str, Any] = {"partitions": partitions,
                           "series_per_partition": spp or -(-args.meters // partitions)}
    times, want = _timed(one_process, args.runs)
    out["read_many"] = _summary(times, "{k: s.max() for k, s in store.read_many()}")
    times, got = _timed(on_dask, args.runs)
    call = "read_dask(url)" if spp is None else "read_dask(url, series_per_partition=...)"
    out["dask"] = _summary(times, call + ".groupby('meter').value.max(split_out=1).compute()")
    _same("(a) read_dask on the cluster", got, want)
    times, got = _timed(lambda: on_dask(scheduler="sync"), args.runs)
    out["dask_here"] = _summary(times, "the same, compute(scheduler='sync'): one process")
    _same("(a) read_dask in this process", got, want)
    out["ratio"] = out["read_many"]["median_s"] / out["dask"]["median_s"]
    print(f"  read_many {out['read_many']['median_s']:.3f} s, Dask "
          f"{out['dask']['median_s']:.3f} s ({out['ratio']:.2f}x), the Dask path in one "
          f"process {out['dask_here']['median_s']:.3f} s", flush=True)
    return out


def _same(what: str, got: tuple[np.ndarray, np.ndarray],
          want: tuple[np.ndarray, np.ndarray]) -> None:
    if not np.array_equal(got[0], want[0]):
        raise AssertionError(f"{what}: meters differ from read_many's")
    if got[1].view(np.uint64).tolist() != want[1].view(np.uint64).tolist():
        at = int(np.flatnonzero(got[1].view(np.uint64) != want[1].view(np.uint64))[0])
        raise AssertionError(f"{what}: meter {want[0][at]}'s peak is {got[1][at]!r}, "
                             f"read_many's {want[1][at]!r}")


# -- (b) -------------------------------------------------------------------------------------
def measure_b(args: Any, workdir: Path, skipped: dict[str, str]) -> dict[str, Any] | None:
    """``distkit.arrow_reads.measure`` when that module is there (None otherwise, noted)."""
    try:
        from distkit import arrow_reads
    except ImportError as exc:
        skipped["(b) read_arrow into DuckDB and Polars"] = (
            f"bench/distkit/arrow_reads.py is not there yet ({exc})")
        print("(b) skipped: bench/distkit/arrow_reads.py is not there yet", flush=True)
        return None
    print("(b) read_arrow into DuckDB and Polars (distkit.arrow_reads)", flush=True)
    wanted = {"meters": args.meters, "repeat": args.runs, "seed": args.seed,
              "workdir": workdir}
    accepted = inspect.signature(arrow_reads.measure).parameters
    result: dict[str, Any] = arrow_reads.measure(
        "file", **{k: v for k, v in wanted.items() if k in accepted})
    return result


# -- (c) -------------------------------------------------------------------------------------
def measure_c(stack: contextlib.ExitStack, block: Any, args: Any,
              results: dict[str, Any]) -> dict[str, Any] | None:
    """The month into fresh PostgreSQL tables: ``to_store`` of the long rows held by the
    workers against ``ingest`` of the same rows in this process (and ``write_frame`` of the
    wide month, for the record)."""
    import curvestore

    print("(c) the month into PostgreSQL", flush=True)
    try:
        from benchkit.postgres import pg_server_facts

        from curvestore.testing.postgres_server import postgres_server

        server = stack.enter_context(postgres_server(shared_buffers="256MB"))
        results["server_facts"] = pg_server_facts(server, True)
    except Exception as exc:  # no server here: reported, the rest stands
        results["skipped"]["(c) to_store into PostgreSQL"] = f"{type(exc).__name__}: {exc}"
        print(f"  skipped: {exc}", flush=True)
        return None

    def new_table() -> str:
        url = server + ("&" if "?" in server else "?") + f"table=t_{uuid.uuid4().hex[:16]}"
        curvestore.create_store(url, keys={"meter": int}, freq="15min", tz="Europe/Paris",
                                chunking="month").close()
        return url

    urls: dict[str, list[str]] = {"to_store": [], "ingest": [], "write_frame": []}
    ddf = read_dask(args.store_url,
                    series_per_partition=args.write_series_per_partition).persist()
    from distributed import wait

    wait(ddf)
    rows = ddf.compute().reset_index()

    def table_for(name: str) -> Callable[[], None]:
        def make() -> None:
            urls[name].append(new_table())
        return make

    def run_to_store() -> Any:
        return to_store(ddf, urls["to_store"][-1])

    def run_ingest() -> Any:
        with curvestore.open_store(urls["ingest"][-1]) as store:
            return store.ingest(rows, key_columns="meter", time_column="ts",
                                value_column="value")

    def run_write_frame() -> Any:
        with curvestore.open_store(urls["write_frame"][-1]) as store:
            return store.write_frame(block.frame())

    out: dict[str, Any] = {"rows": len(rows), "partitions": int(ddf.npartitions)}
    times, report = _timed(run_to_store, args.runs, table_for("to_store"))
    out["to_store"] = _summary(times, "to_store(ddf, url) (ddf persisted on the workers)")
    out["to_store"]["report"] = {k: v for k, v in vars(report).items() if k != "seconds"}
    times, report = _timed(run_ingest, args.runs, table_for("ingest"))
    out["ingest"] = _summary(times, "store.ingest(rows, key_columns='meter', ...)")
    out["ingest"]["commits"] = report.commits
    times, _ = _timed(run_write_frame, args.runs, table_for("write_frame"))
    out["write_frame"] = _summary(times, "store.write_frame(wide month)")
    for name, written in urls.items():
        _check_table(written[-1], block, f"(c) {name}")
    out["ratio"] = out["ingest"]["median_s"] / out["to_store"]["median_s"]
    print(f"  ingest {out['ingest']['median_s']:.3f} s, to_store "
          f"{out['to_store']['median_s']:.3f} s ({out['ratio']:.2f}x), write_frame "
          f"{out['write_frame']['median_s']:.3f} s; every table checked", flush=True)
    return out


def _check_table(url: str, block: Any, what: str) -> None:
    from fleetkit.data import check_wide, index_ns

    import curvestore

    with curvestore.open_store(url, read_only=True) as store:
        wide = store.read_frame()
    check_wide(what, index_ns(wide.index), wide.columns.to_numpy(np.int64),
               wide.to_numpy(np.float64), block)
