"""The data sets and the operations' inputs (1-month windows, 1-week updates), and the check
that a read returned exactly what was written. Needs numpy and pandas: import it once the
script runs in its final interpreter (bench/.venv)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .system import FREQ, KINDS, TZ, BenchError, Dataset


def _index(start: str, end: str) -> Any:
    return pd.date_range(pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ), freq=FREQ,
                         inclusive="left").as_unit("ns")


def make_dataset(name: str, n: int, start: str, end: str, seed: int) -> Dataset:
    keys = [(f"site{i:04d}", KINDS[i % len(KINDS)]) for i in range(n)]
    if name == "random":
        index = _index(start, end)
        series = [pd.Series(np.random.default_rng([seed, i]).random(len(index)), index=index,
                            name="value") for i in range(n)]
        description = "seeded uniform random float64 (incompressible)"
    elif name == "load":
        from curvestore import sampledata

        series = [s.rename("value") for s in
                  sampledata.load_curves(n, start, end, freq=FREQ, tz=TZ, seed=seed)]
        description = "curvestore.sampledata.load_curves: realistic meter curves, 0.1 kW steps"
    else:
        raise SystemExit(f"unknown data set {name!r}")
    month_starts = pd.date_range(pd.Timestamp(start, tz=TZ), pd.Timestamp(end, tz=TZ),
                                 freq="MS")
    return Dataset(name, description, keys, series, month_starts)


def check_same(got: Any, expected: Any, what: str) -> None:
    """Fail loudly unless ``got`` has exactly the instants and float64 values of ``expected``."""
    if got is None:
        raise BenchError(f"{what}: read returned None")
    index = got.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise BenchError(f"{what}: expected a tz-aware DatetimeIndex, got {type(index)} "
                         f"tz={getattr(index, 'tz', None)}")
    if len(got) != len(expected):
        raise BenchError(f"{what}: {len(got)} points read, {len(expected)} expected "
                         f"(read {index[:1].tolist()}..{index[-1:].tolist()})")
    if not np.array_equal(index.as_unit("ns").asi8, expected.index.as_unit("ns").asi8):
        raise BenchError(f"{what}: timestamps differ")
    values = np.asarray(got.to_numpy(), dtype="float64")
    if not np.array_equal(values, expected.to_numpy(), equal_nan=True):
        bad = int(np.sum(~((values == expected.to_numpy()) |
                           (np.isnan(values) & np.isnan(expected.to_numpy())))))
        raise BenchError(f"{what}: {bad} values differ")



def month_windows(ds: Dataset, count: int, seed: int) -> list[tuple[int, Any, Any]]:
    rng = np.random.default_rng([seed, 1])
    step = pd.Timedelta(FREQ)
    out = []
    for _ in range(count):
        i = int(rng.integers(len(ds.series)))
        m = int(rng.integers(len(ds.month_starts) - 1))
        out.append((i, ds.month_starts[m], ds.month_starts[m + 1] - step))
    return out


def week_updates(ds: Dataset, seed: int) -> list[Any]:
    """For each series, 7 days of new values starting 4 days before a random month boundary."""
    rng = np.random.default_rng([seed, 2])
    updates = []
    for _ in ds.series:
        b = int(rng.integers(1, len(ds.month_starts) - 1))
        start = ds.month_starts[b] - pd.Timedelta(days=4)
        index = pd.date_range(start, periods=7 * 96, freq=FREQ).as_unit("ns")
        updates.append(pd.Series(rng.random(len(index)) + 10.0, index=index, name="value"))
    return updates

