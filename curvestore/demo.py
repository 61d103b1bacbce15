"""``curvestore demo``: a year of 15-min load curves written, read back, verified and measured.

The data come from :func:`curvestore.sampledata.load_curves`, seeded per meter, so a re-run
writes identical data (and meter ``i`` is the same curve whatever ``--meters`` is). Reusing
an existing demo store rewrites its series (``mode="replace"``), so the store always ends up
equal to what this run generated for its meters.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curvestore.errors import CurvestoreError

if TYPE_CHECKING:
    import pandas as pd

    from curvestore.core.store import Store

__all__ = ["DemoError", "run_demo"]

KEYS = {"meter": str, "kind": str}
FREQ = "15min"
TZ = "Europe/Paris"
CHUNKING = "month"
KIND = "load"
YEAR_START, YEAR_END = "2024-01-01", "2025-01-01"
BATCH = 10
SEED = 20240101


class DemoError(CurvestoreError):
    """The demo could not run, or read back something other than what it wrote."""


@dataclass
class Timing:
    seconds: float = 0.0
    points: int = 0

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds else float("inf")


def meter_name(i: int) -> str:
    return f"M{i:05d}"


def curve(i: int) -> pd.Series:
    """Meter ``i``'s load curve for 2024 (always the same for the same ``i``)."""
    from curvestore.sampledata import load_curves

    return load_curves(1, YEAR_START, YEAR_END, freq=FREQ, tz=TZ, seed=SEED + i)[0]


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Total size of the regular files under ``path``."""
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                total += disk_usage(entry.path)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def store_url(root: Path) -> str:
    return "file://" + root.absolute().as_posix()


def prepare_store(root: Path, fresh: bool, say: Callable[[str], None]) -> tuple[Store, bool]:
    """Create the demo store, or reuse (or with ``fresh`` recreate) one; returns it and
    whether it was reused."""
    from curvestore.opening import create_store, open_store

    url = store_url(root)
    exists = root.exists() and any(root.iterdir())
    if exists and not (root / "manifest.json").is_file():
        raise DemoError(f"{root} exists and is not a curvestore store; choose another --dir")
    if exists and fresh:
        shutil.rmtree(root)
        say(f"--fresh: deleted the existing store at {root}; recreating it")
        exists = False
    if exists:
        store = open_store(url, keys=KEYS, freq=FREQ, tz=TZ, chunking=CHUNKING)
        say(f"reusing the store at {url} ({len(store.keys())} series); "
            "rewriting its series as 'curvestore put --mode replace' does (--fresh starts "
            "from scratch)")
        return store, True
    root.parent.mkdir(parents=True, exist_ok=True)
    store = create_store(url, keys=KEYS, freq=FREQ, tz=TZ, chunking=CHUNKING, codec="lz4")
    say(f"created the store {url}")
    return store, False


def batches(meters: int, size: int = BATCH) -> Iterator[range]:
    for first in range(0, meters, size):
        yield range(first, min(first + size, meters))


def write_all(store: Store, meters: int, mode: str) -> Timing:
    """Write every meter's curve with write_many, ``BATCH`` meters per call."""
    from tqdm import tqdm

    timing = Timing()
    with tqdm(total=meters, desc="write", unit="meter", leave=True) as bar:
        for group in batches(meters):
            mapping = {(meter_name(i), KIND): curve(i) for i in group}
            timing.points += sum(len(s) for s in mapping.values())
            start = time.perf_counter()
            store.write_many(mapping, mode=mode)
            timing.seconds += time.perf_counter() - start
            bar.update(len(group))
    return timing


def same(expected: pd.Series, got: pd.Series) -> str | None:
    """Why ``got`` differs from ``expected``, or None when index and bits are equal."""
    import numpy as np

    if len(got) != len(expected):
        return f"{len(got)} points read, {len(expected)} written"
    if str(got.index.tz) != str(expected.index.tz) or not got.index.equals(expected.index):
        return "the timestamps differ"
    a = np.ascontiguousarray(got.to_numpy(dtype=np.float64)).view(np.int64)
    b = np.ascontiguousarray(expected.to_numpy(dtype=np.float64)).view(np.int64)
    if not np.array_equal(a, b):
        return f"{int((a != b).sum())} values differ"
    return None


def read_and_verify(store: Store, meters: int) -> tuple[Timing, int]:
    """Read every series with read_many and compare this run's meters with what was written;
    returns the timing and how many other series (from earlier runs) the store holds."""
    from tqdm import tqdm

    wanted = {meter_name(i): i for i in range(meters)}
    seen: set[str] = set()
    others = 0
    timing = Timing()
    stream = store.read_many({"kind": KIND})
    with tqdm(total=len(store.keys({"kind": KIND})), desc="read ", unit="series") as bar:
        while True:
            start = time.perf_counter()
            item = next(stream, None)
            timing.seconds += time.perf_counter() - start
            if item is None:
                break
            key, series = item
            bar.update()
            timing.points += len(series)
            i = wanted.get(key["meter"])
            if i is None:
                others += 1
                continue
            problem = same(curve(i), series)
            if problem:
                raise DemoError(f"verification failed for meter={key['meter']}: {problem}")
            seen.add(key["meter"])
    missing = sorted(set(wanted) - seen)
    if missing:
        raise DemoError(f"verification failed: {len(missing)} series were not read back "
                        f"(e.g. meter={missing[0]})")
    return timing, others


def summary(store: Store, root: Path, meters: int, write: Timing, read: Timing
            ) -> list[tuple[str, str]]:
    """The rows printed at the end; sizes cover the whole store (every file under it)."""
    from curvestore._text import human_bytes

    info = store.info()
    disk = disk_usage(root)
    points = info["points"]
    raw = points * 8
    extra = "" if info["series"] == meters else f" (the store holds {info['series']:,})"
    return [
        ("series", f"{meters:,}{extra}"),
        ("points", f"{write.points:,}" + ("" if points == write.points
                                           else f" (the store holds {points:,})")),
        ("raw bytes (float64)", f"{raw:,} ({human_bytes(raw)})"),
        ("bytes on disk", f"{disk:,} ({human_bytes(disk)}, all files incl. manifest and log)"),
        ("compression ratio", f"{raw / disk:.2f}x"),
        ("bytes/point", f"{disk / points:.3f}"),
        ("write", f"{write.seconds:.2f} s ({write.rate:,.0f} points/s, write_many)"),
        ("read", f"{read.seconds:.2f} s ({read.rate:,.0f} points/s, read_many)"),
    ]


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def taste(store: Store, say: Callable[[str], None]) -> None:
    """A one-month window read and one point-wise update, shown."""
    import numpy as np

    key = {"meter": meter_name(0), "kind": KIND}
    start = time.perf_counter()
    june = store.read(key, start="2024-06-01", end="2024-06-30 23:45")
    ms = (time.perf_counter() - start) * 1000
    if june is None:
        raise DemoError(f"the June window of {key} is empty")
    say(f"window read: meter={key['meter']} June 2024 -> {len(june):,} points in {ms:.1f} ms, "
        f"{june.index[0]} .. {june.index[-1]}, mean {june.mean():.2f} kW, "
        f"max {june.max():.1f} kW")

    outage = june["2024-06-15 12:00":"2024-06-15 12:45"]
    before = outage.to_numpy().copy()
    store.write(key, outage * 0.0, mode="update")
    after = store.read(key, start=outage.index[0], end=outage.index[-1])
    if after is None or not np.array_equal(after.to_numpy(), np.zeros(len(outage))):
        raise DemoError("the update did not read back as written")
    around = store.read(key, start="2024-06-15 11:45", end="2024-06-15 13:00")
    unchanged = around is not None and around.iloc[0] == june["2024-06-15 11:45"]
    say(f"update: set 4 points of 2024-06-15 12:00-12:45 to 0 kW (an outage) as "
        f"'curvestore put --mode update' does: {_fmt(before)} -> {_fmt(after.to_numpy())} kW; "
        f"neighbours unchanged: {'yes' if unchanged else 'NO'}")


def run_demo(directory: str | os.PathLike[str] = "./curvestore-data", *, meters: int = 100,
             fresh: bool = False, say: Callable[[str], Any] = print) -> int:
    """Run the demo in ``directory``/demo; returns 0, raises DemoError if verification fails."""
    if meters < 1:
        raise DemoError("--meters must be at least 1")
    root = Path(directory) / "demo"
    store, reused = prepare_store(root, fresh, say)
    with store:
        say(f"generating and writing {meters} meters x 1 year of {FREQ} values "
            f"(write_many, {BATCH} meters per call)")
        write = write_all(store, meters, mode="replace" if reused else "insert")
        read, others = read_and_verify(store, meters)
        say(f"verified: all {meters} series read back bit-exact (values and timestamps)")
        if others:
            say(f"note: the store also holds {others} series from an earlier run with more "
                "meters (untouched; --fresh starts over)")
        rows = summary(store, root, meters, write, read)
        width = max(len(name) for name, _ in rows)
        say("summary:")
        for name, value in rows:
            say(f"  {name:<{width}}  {value}")
        say("")
        taste(store, say)
    return 0
