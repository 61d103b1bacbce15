"""A month of daily appends, then its compaction (curvestore stores that compact).

On a fresh store holding September, every day of October is appended (``write_frame``,
update), then: one meter's history is read over the month of uncompacted appends;
``store.compact(before="2025-11-01")`` joins October's fragments (timed, with the disk bytes
it writes); the history is read again; October is read back for every meter and checked; and
the same October is written fresh, in one ``write_frame`` into an empty store, the cost the
compaction is compared with. The whole is repeated (``--month-repeats``) and the median
compaction is compared with the median fresh write.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np

from .data import Block, Fleet
from .runners import CurvestoreRunner
from .workload import _history_reads, _timed_write, make_scenario

MONTH = dt.date(2025, 10, 1)
NEXT_MONTH = "2025-11-01"


def _month_block(blocks: list[Block]) -> Block:
    return Block(blocks[0].index.append([b.index for b in blocks[1:]]), blocks[0].meters,
                 np.concatenate([b.values for b in blocks], axis=1),
                 [d for b in blocks for d in b.days], [n for b in blocks for n in b.day_lengths])


def run_month(runner: CurvestoreRunner, fleet: Fleet, history_reads: int, budget_s: float,
              seed: int, log: Any = print, repeats: int = 3) -> dict[str, Any]:
    """The month ``repeats`` times over (a fresh store each time; the reads are measured in
    the first): a single compaction is one measurement of well under a second, which the
    state of the machine's memory moves by 10 % either way, so the medians are compared."""
    sc = make_scenario("month", fleet, 30, MONTH, 31, history_reads, seed)
    month = _month_block(sc.appends)
    res: dict[str, Any] = {"label": runner.label, "meters": fleet.n, "days": len(sc.appends),
                           "scheme": getattr(runner, "scheme", "file"), "repeats": repeats}
    appends: list[float] = []
    compact: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []
    for run in range(repeats):
        runner.open(f"month{run}")
        try:
            runner.backfill(sc.history)
            appends += [_timed_write(runner, runner.append, block)["s"] for block in sc.appends]
            if not run:
                res["history_uncompacted"] = _history_reads(runner, sc, budget_s)
            compact.append(_timed_write(
                runner, lambda _block: runner.store.compact(before=NEXT_MONTH), month,
                quiet=True))
            if not run:
                res["history_compacted"] = _history_reads(runner, sc, budget_s)
                t0 = time.perf_counter()
                got = runner.store.read_frame(start=str(MONTH), end=f"{NEXT_MONTH} 00:00")
                res["read_month_s"] = time.perf_counter() - t0
                runner.check_day(got, month, f"{runner.label} October after its compaction")
                del got
        finally:
            runner.close()
        runner.open(f"month_fresh{run}")
        try:
            fresh.append(_timed_write(runner, runner.backfill, month, quiet=True))
        finally:
            runner.close()
    res["append_s_median"] = float(np.median(appends))
    res["compact"], res["fresh"] = _median_run(compact), _median_run(fresh)
    res["compact_runs_s"] = [r["s"] for r in compact]
    res["fresh_runs_s"] = [r["s"] for r in fresh]
    res["compact_over_fresh_s"] = res["compact"]["s"] / res["fresh"]["s"]
    if "write_bytes" in res["compact"] and "write_bytes" in res["fresh"]:
        res["compact_over_fresh_bytes"] = (res["compact"]["write_bytes"]
                                           / res["fresh"]["write_bytes"])
    log(f"    a month of appends (median {res['append_s_median']:.3f} s each): history "
        f"{res['history_uncompacted']['median_ms']:.2f} ms uncompacted, "
        f"{res['history_compacted']['median_ms']:.2f} ms compacted; compaction "
        f"{res['compact']['s']:.2f} s vs write_frame of the month fresh {res['fresh']['s']:.2f} s"
        f" ({res['compact_over_fresh_s']:.2f}x; medians of {repeats}: compaction "
        f"{' / '.join(f'{x:.2f}' for x in res['compact_runs_s'])} s, fresh "
        f"{' / '.join(f'{x:.2f}' for x in res['fresh_runs_s'])} s)")
    return res


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (the lower middle one of an even number)."""
    return sorted(runs, key=lambda r: r["s"])[(len(runs) - 1) // 2]
