"""Synthetic but realistic load curves, for the demo, the benchmarks and the tests.

Each meter gets a base load, a daily shape (night trough, morning and evening peaks), a weekly
shape (weekends differ), a seasonal swing (heating in winter) and noise, rounded to 0.1 kW as
meters report it. Everything is vectorised and seeded, so the same call gives the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["load_curve", "load_curves", "random_curve"]


def _index(start: str, end: str, freq: str, tz: str) -> pd.DatetimeIndex:
    return pd.date_range(
        pd.Timestamp(start, tz=tz), pd.Timestamp(end, tz=tz), freq=freq, inclusive="left"
    ).as_unit("ns")


def load_curve(
    index: pd.DatetimeIndex, rng: np.random.Generator, *, resolution: float = 0.1
) -> pd.Series:
    """One meter's load curve in kW on ``index`` (tz-aware)."""
    local = index.tz_convert(index.tz) if index.tz is not None else index
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    weekday = local.day_of_week.to_numpy()
    doy = local.day_of_year.to_numpy()
    base = rng.uniform(0.3, 3.0)
    daily = (
        0.6 * np.exp(-((hour - 8.0) ** 2) / 3.0)
        + 1.0 * np.exp(-((hour - 19.5) ** 2) / 4.0)
        + 0.25 * np.exp(-((hour - 13.0) ** 2) / 2.0)
    )
    weekend = np.where(weekday >= 5, rng.uniform(0.9, 1.3), 1.0)
    seasonal = 1.0 + rng.uniform(0.2, 0.6) * np.cos(2 * np.pi * (doy - 15) / 365.25)
    noise = rng.normal(0.0, 0.08 * base, size=len(index))
    kw = np.clip(base * (0.35 + daily) * weekend * seasonal + noise, 0.0, None)
    return pd.Series(np.round(kw / resolution) * resolution, index=index, name="kW")


def load_curves(
    n: int,
    start: str = "2024-01-01",
    end: str = "2025-01-01",
    *,
    freq: str = "15min",
    tz: str = "Europe/Paris",
    seed: int = 0,
) -> list[pd.Series]:
    """``n`` load curves on ``[start, end)`` at ``freq`` in ``tz``, reproducible from ``seed``."""
    index = _index(start, end, freq, tz)
    rng = np.random.default_rng(seed)
    return [load_curve(index, rng) for _ in range(n)]


def random_curve(
    start: str = "2022-01-01",
    end: str = "2025-01-01",
    *,
    freq: str = "15min",
    tz: str = "Europe/Paris",
    seed: int = 0,
) -> pd.Series:
    """Seeded uniform random float64 values: the incompressible worst case."""
    index = _index(start, end, freq, tz)
    return pd.Series(np.random.default_rng(seed).random(len(index)), index=index)
