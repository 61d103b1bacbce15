"""Timing one system through the whole workload, the median of repeated runs, and the machine
the numbers come from. Needs numpy: import it once the script runs in bench/.venv."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import check_same
from .env import WORK
from .system import BenchError, Dataset, System


def stats_ms(times: list[float]) -> dict[str, float]:
    arr = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(arr)), "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()), "count": len(arr)}


def run_system(system: System, ds: Dataset, windows: list, updates: list) -> dict[str, Any]:
    res: dict[str, Any] = {}
    n_points = ds.points
    print(f"  {system.label}: setup", flush=True)
    system.setup(ds)
    mapping = dict(zip(ds.keys, ds.series, strict=True))

    gc.collect()
    t0 = time.perf_counter()
    system.write_many(mapping)
    res["write_many_s"] = time.perf_counter() - t0
    res["after_write"] = system.after_write()
    b = system.bytes()
    res["bytes"] = {"measured": b.measured, "how": b.how, **b.extra}
    res["bytes_per_point"] = b.measured / n_points
    print(f"    write_many {res['write_many_s']:.3f} s, {res['bytes_per_point']:.2f} B/point",
          flush=True)

    gc.collect()
    total = 0.0
    for key, expected in mapping.items():
        t0 = time.perf_counter()
        got = system.read(key)
        total += time.perf_counter() - t0
        check_same(got, expected, f"{system.name} read {key}")
    res["read_each_s"] = total

    gc.collect()
    total = 0.0
    seen: set[tuple[str, str]] = set()
    iterator = iter(system.read_many())
    while True:
        t0 = time.perf_counter()
        try:
            key, got = next(iterator)
        except StopIteration:
            total += time.perf_counter() - t0
            break
        total += time.perf_counter() - t0
        if key in seen or key not in mapping:
            raise BenchError(f"{system.name} read_many: unexpected or repeated key {key}")
        seen.add(key)
        check_same(got, mapping[key], f"{system.name} read_many {key}")
    if len(seen) != len(mapping):
        raise BenchError(f"{system.name} read_many: {len(seen)} series, {len(mapping)} written")
    res["read_many_s"] = total
    print(f"    read_each {res['read_each_s']:.3f} s, read_many {res['read_many_s']:.3f} s",
          flush=True)

    gc.collect()
    times = []
    for i, start, end in windows:
        t0 = time.perf_counter()
        got = system.read_window(ds.keys[i], start, end)
        times.append(time.perf_counter() - t0)
        check_same(got, ds.series[i].loc[start:end], f"{system.name} month {ds.keys[i]} {start}")
    res["read_month"] = stats_ms(times)

    gc.collect()
    times = []
    for key, upd in zip(ds.keys, updates, strict=True):
        t0 = time.perf_counter()
        system.update(key, upd)
        times.append(time.perf_counter() - t0)
    res["update_week"] = stats_ms(times)
    for key, expected, upd in zip(ds.keys, ds.series, updates, strict=True):
        want = expected.copy()
        want.loc[upd.index] = upd.to_numpy()
        check_same(system.read(key), want, f"{system.name} read after update {key}")
    b = system.bytes()
    res["bytes_after_update"] = {"measured": b.measured, **b.extra}
    print(f"    month read median {res['read_month']['median_ms']:.2f} ms, update median "
          f"{res['update_week']['median_ms']:.2f} ms; all reads verified", flush=True)
    system.teardown()
    return res


def median_of(runs: list[Any]) -> Any:
    """The per-number median of several results of the same shape."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs]) for k in first}
    if isinstance(first, int | float) and not isinstance(first, bool):
        return float(np.median(runs))
    return first


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    ram = "unknown"
    with contextlib.suppress(OSError):  # not Linux: leave "unknown"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    fs = "unknown"
    with contextlib.suppress(OSError):
        best = ""
        work = str(WORK.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mnt, kind, *_ = line.split()
            if (work == mnt or work.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fs = mnt, kind
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "filesystem of bench/.work": fs,
    }

