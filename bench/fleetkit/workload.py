"""The fleet workload on one runner: backfill, then daily cycles (append yesterday, read
yesterday for every meter, metadata calls), then single-meter history reads; every read is
checked against what was written.

Times are wall-clock (``time.perf_counter``) around the system's calls only. Disk bytes written
are the process's ``write_bytes`` from ``/proc/self/io`` (bytes it caused to be sent to storage,
counted when pages are dirtied, so also through mmap as LMDB writes): a server's own writes
(PostgreSQL, moto) are not the client's and are not counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from benchkit.moto import request_delta

from .data import TZ, Block, Fleet
from .runners import Runner


@dataclass
class Scenario:
    """One fleet size and history length: the data every runner of it gets."""

    name: str
    fleet: Fleet
    history: Block  # the backfill
    appends: list[Block]  # one block per appended day
    sample: np.ndarray  # meters whose full history is read
    sample_history: Block  # their values, backfill and appends


def make_scenario(name: str, fleet: Fleet, days: int, first_append: dt.date, appends: int,
                  history_reads: int, seed: int) -> Scenario:
    """``days`` stored before ``first_append``, then ``appends`` new days."""
    history = fleet.days(first_append - dt.timedelta(days=days), days)
    new = [fleet.days(first_append + dt.timedelta(days=i), 1) for i in range(appends)]
    rng = np.random.default_rng([seed, 3])
    sample = np.sort(rng.choice(fleet.meters, size=min(history_reads, fleet.n), replace=False))
    rows = np.searchsorted(fleet.meters, sample)
    blocks = [history, *new]
    sample_history = Block(
        blocks[0].index.append([b.index for b in blocks[1:]]) if len(blocks) > 1
        else blocks[0].index,
        sample, np.concatenate([b.values[rows] for b in blocks], axis=1),
        [d for b in blocks for d in b.days], [n for b in blocks for n in b.day_lengths])
    return Scenario(name, fleet, history, new, sample, sample_history)


def write_bytes() -> int | None:
    """This process's ``write_bytes`` (Linux ``/proc/self/io``), None where unavailable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return None


def settle(quiet: float = 0.15, limit_s: float = 10.0) -> dict[str, float]:
    """Flush dirty pages (``sync``) and wait, up to ``limit_s``, until the machine's CPUs are
    less than ``quiet`` busy over a quarter second (``/proc/stat``): earlier phases leave the
    kernel writing back gigabytes and servers (PostgreSQL's checkpointer and autovacuum) busy,
    which takes a core from a parallel call more than from a serial one. Returns the seconds
    waited and the busy fraction last seen."""
    t0 = time.perf_counter()
    os.sync()
    busy = _busy_fraction(0.25)
    while busy >= quiet and time.perf_counter() - t0 < limit_s:
        busy = _busy_fraction(0.25)
    return {"waited_s": time.perf_counter() - t0, "busy": busy}


def _busy_fraction(window_s: float) -> float:
    """Share of all CPUs' time not idle (nor waiting on I/O) over ``window_s``; 0 where
    ``/proc/stat`` is unavailable."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    try:
        total0, idle0 = sample()
        time.sleep(window_s)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def _timed_write(runner: Runner, call: Any, block: Block, *, quiet: bool = False
                 ) -> dict[str, Any]:
    settled = settle() if quiet else None
    gc.collect()
    requests_before = runner.requests()
    io_before = write_bytes()
    t0 = time.perf_counter()
    call(block)
    elapsed = time.perf_counter() - t0
    io_after = write_bytes()
    out: dict[str, Any] = {"s": elapsed, "points": block.points, "raw_bytes": block.raw_bytes,
                           "points_per_s": block.points / elapsed}
    if settled is not None:
        out["settled"] = settled
    if runner.local_writes and io_before is not None and io_after is not None:
        out["write_bytes"] = io_after - io_before
        out["write_amplification"] = out["write_bytes"] / block.raw_bytes
    if requests_before is not None:
        delta = request_delta(runner.requests() or {}, requests_before)
        out["requests"] = {m: d["requests"] for m, d in delta.items()}
        out["requests_total"] = sum(out["requests"].values())
    return out


def run_scenario(runner: Runner, sc: Scenario, history_budget_s: float = 30.0,
                 metadata_repeat: int = 3, log: Any = print) -> dict[str, Any]:
    """The whole workload on ``runner`` (fresh store); returns the measured numbers."""
    res: dict[str, Any] = {"label": runner.label, "meters": sc.fleet.n,
                           "days_stored": len(sc.history.days), "calls": runner.calls}
    runner.open(sc.name)
    try:
        res["backfill"] = _timed_write(runner, runner.backfill, sc.history)
        res["stored_bytes_after_backfill"] = runner.stored_bytes()
        b = res["backfill"]
        log(f"    backfill {b['points']:,} points in {b['s']:.2f} s "
            f"({b['points_per_s'] / 1e6:.2f} M points/s)")
        res["days"] = []
        for block in sc.appends:
            res["days"].append(_daily_cycle(runner, sc, block, metadata_repeat, log))
        stored = runner.stored_bytes()
        res["stored_bytes"] = stored
        points = sc.history.points + sum(b.points for b in sc.appends)
        res["stored_bytes_per_point"] = None if stored is None else stored / points
        res["history"] = _history_reads(runner, sc, history_budget_s)
        log(f"    history of one meter: median {res['history']['median_ms']:.2f} ms over "
            f"{res['history']['reads']} reads")
    finally:
        runner.close()
        gc.collect()
    res["summary"] = summarise(res)
    return res


def _daily_cycle(runner: Runner, sc: Scenario, block: Block, metadata_repeat: int,
                 log: Any) -> dict[str, Any]:
    day = block.days[0]
    out: dict[str, Any] = {"day": day.isoformat(), "quarter_hours": len(block.index)}
    out["append"] = _timed_write(runner, runner.append, block)
    gc.collect()
    t0 = time.perf_counter()
    got = runner.read_day(day)
    out["read_day_s"] = time.perf_counter() - t0
    runner.check_day(got, block, f"{runner.label} read of {day} after its append")
    del got
    meters, last = _expected_metadata(sc, block)
    out["metadata"] = {}
    for name, call in runner.metadata().items():
        times = []
        for i in range(metadata_repeat):
            t0 = time.perf_counter()
            value = call()
            times.append(time.perf_counter() - t0)
            runner.check_metadata(name, value, meters, last, f"{runner.label} {name}() #{i}")
        out["metadata"][name] = {"first_s": times[0], "median_s": float(np.median(times))}
    a = out["append"]
    extra = (f", {a['write_amplification']:.1f}x raw bytes written"
             if "write_amplification" in a else "")
    if "requests_total" in a:
        extra += f", {a['requests_total']} requests {a['requests']}"
    log(f"    append {day} ({len(block.index)} quarter-hours): {a['s']:.3f} s{extra}; "
        f"read it back {out['read_day_s']:.3f} s; " + ", ".join(
            f"{k} {v['median_s'] * 1e3:.1f} ms" for k, v in out["metadata"].items()))
    return out


def _expected_metadata(sc: Scenario, upto: Block) -> tuple[int, pd.Timestamp]:
    """Meters with a value and the latest valid timestamp once ``upto`` is appended."""
    blocks = [sc.history, *sc.appends[:sc.appends.index(upto) + 1]]
    seen = np.zeros(sc.fleet.n, dtype=bool)
    last: pd.Timestamp | None = None
    for block in blocks:
        valid = ~np.isnan(block.values)
        seen |= valid.any(axis=1)
        cols = np.flatnonzero(valid.any(axis=0))
        if len(cols):
            last = block.index[cols[-1]]
    assert last is not None
    return int(seen.sum()), pd.Timestamp(last).tz_convert(TZ)


def _history_reads(runner: Runner, sc: Scenario, budget_s: float) -> dict[str, Any]:
    """One full read per sampled meter, until the sample or the time budget is spent (at
    least 5 reads)."""
    times: list[float] = []
    spent = 0.0
    for meter in sc.sample.tolist():
        t0 = time.perf_counter()
        got = runner.read_history(meter)
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        spent += elapsed
        runner.check_history(got, meter, sc.sample_history,
                             f"{runner.label} history of meter {meter}")
        if spent > budget_s and len(times) >= 5:
            break
    arr = np.asarray(times) * 1e3
    return {"reads": len(times), "median_ms": float(np.median(arr)),
            "p95_ms": float(np.percentile(arr, 95)), "first_ms": float(arr[0]),
            "points": len(sc.sample_history.index)}


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """The numbers the report's table shows (medians over the daily cycles)."""
    days = res["days"]

    def median(values: list[Any]) -> float | None:
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    out: dict[str, Any] = {
        "backfill_points_per_s": res["backfill"]["points_per_s"],
        "backfill_s": res["backfill"]["s"],
        "backfill_write_amplification": res["backfill"].get("write_amplification"),
        "append_s": median([d["append"]["s"] for d in days]),
        "append_s_each": [d["append"]["s"] for d in days],
        "append_write_amplification": median(
            [d["append"].get("write_amplification") for d in days]),
        "append_requests": median([d["append"].get("requests_total") for d in days]),
        "read_day_s": median([d["read_day_s"] for d in days]),
        "history_ms": res["history"]["median_ms"],
        "history_reads": res["history"]["reads"],
        "stored_bytes_per_point": res["stored_bytes_per_point"],
        "metadata_s": {},
    }
    out["metadata_first_s"] = {}
    for name in days[0]["metadata"] if days else []:
        out["metadata_s"][name] = median([d["metadata"][name]["median_s"] for d in days])
        out["metadata_first_s"][name] = median([d["metadata"][name]["first_s"] for d in days])
    return out
