"""The fleet: deterministic, realistic 15-minute meter curves, one wide block per day.

Every value is a function of (seed, meter, local day), so any day can be generated again to
check a read, in any order. A day is one float64 block of (meters x quarter-hours of that local
day in Europe/Paris: 96, or 92/100 on the DST days), built with numpy across all meters at once:

- a daily shape per meter (a morning and an evening peak around its own shifted hours), a
  weekend factor and a heating factor that follows the season;
- multiplicative noise per point, readings rounded to the watt (0.001 kW), never negative;
- missing readings (NaN): about 1 point in 1,000, and about 1 meter in 2,000 silent for a
  whole day (a communication outage), so reads are checked for "NaN where expected" too.

Meter ids are ints (``FIRST_METER + i``). A :class:`Block` stores its values meters-major
(``values[meter, t]``), so that each meter's curve is contiguous and :meth:`Block.frame` is a
zero-copy wide DataFrame (rows: timestamps, one column per meter).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TZ = "Europe/Paris"
FREQ = "15min"
FIRST_METER = 10_000_000
MISSING_POINT_RATE = 0.001
OUTAGE_RATE = 0.0005
#: Meters whose profiles and noise come from one seed (see :class:`Fleet`).
GROUP = 10_000


class FleetMismatch(AssertionError):
    """A system did not read back what was written."""


@dataclass(eq=False)  # compared by identity: it holds arrays
class Block:
    """Consecutive local days of the fleet: ``values[meter, t]`` over ``index``."""

    index: pd.DatetimeIndex  # tz-aware, ns
    meters: np.ndarray  # int64, sorted
    values: np.ndarray  # float64, (meters, len(index)), C order
    days: list[dt.date]
    day_lengths: list[int]

    @property
    def points(self) -> int:
        return int(self.values.size)

    @property
    def raw_bytes(self) -> int:
        """What the points cost as raw float64."""
        return int(self.values.nbytes)

    def frame(self) -> pd.DataFrame:
        """The wide frame (timestamps x meters), sharing this block's memory."""
        return pd.DataFrame(self.values.T, index=self.index, columns=self.meters, copy=False)

    def day_slices(self) -> list[tuple[dt.date, slice]]:
        out, pos = [], 0
        for day, length in zip(self.days, self.day_lengths, strict=True):
            out.append((day, slice(pos, pos + length)))
            pos += length
        return out


def day_index(day: dt.date) -> pd.DatetimeIndex:
    """The quarter-hours of one local day (92, 96 or 100 of them)."""
    start = pd.Timestamp(day, tz=TZ)
    end = pd.Timestamp(day + dt.timedelta(days=1), tz=TZ)
    return pd.date_range(start, end, freq=FREQ, inclusive="left").as_unit("ns")


class Fleet:
    """Meters ``first .. first + n - 1`` of the fleet, each with its own load profile;
    :meth:`days` generates blocks of days.

    Profiles and noise are drawn per group of :data:`GROUP` meters from that group's own seed, so
    a meter's curve depends only on (seed, meter, day): the first 10,000 meters of a
    million-meter fleet are the 10,000-meter fleet. ``first`` is a multiple of ``GROUP``.
    """

    def __init__(self, n: int, seed: int = 0, first: int = 0) -> None:
        if first % GROUP:
            raise ValueError(f"first must be a multiple of {GROUP}")
        self.n, self.seed, self.first = n, seed, first
        self.meters = FIRST_METER + np.arange(first, first + n, dtype=np.int64)
        groups = range(first // GROUP, -(-(first + n) // GROUP))
        profiles = np.concatenate([self._profiles(g) for g in groups], axis=1)[:, :n]
        (self.base, self.morning, self.evening, self.shift, self.weekend, self.heating,
         self.noise) = profiles

    def _profiles(self, group: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0, group])
        return np.stack([
            rng.lognormal(np.log(0.45), 0.6, GROUP),  # base load, kW
            rng.uniform(0.2, 1.2, GROUP),  # morning peak
            rng.uniform(0.5, 2.5, GROUP),  # evening peak
            rng.normal(0.0, 0.8, GROUP),  # the meter's hours shift
            rng.uniform(0.9, 1.35, GROUP),  # weekend factor
            rng.uniform(0.0, 0.9, GROUP),  # heating: how much winter adds
            rng.uniform(0.05, 0.3, GROUP),  # noise, relative
        ])

    def _fill(self, day: dt.date, index: pd.DatetimeIndex, out: np.ndarray) -> None:
        """Write ``day`` (all meters) into ``out`` (meters x len(index))."""
        hours = (index.hour + index.minute / 60.0).to_numpy(np.float64)
        doy = day.timetuple().tm_yday
        weekend = day.weekday() >= 5
        for lo in range(0, self.n, GROUP):
            group = (self.first + lo) // GROUP
            rows = slice(lo, min(lo + GROUP, self.n))
            h = hours[None, :] - self.shift[rows, None]
            shape = (1.0 + self.morning[rows, None] * np.exp(-((h - 7.5) ** 2) / 2.9)
                     + self.evening[rows, None] * np.exp(-((h - 19.5) ** 2) / 6.5))
            season = np.maximum(0.3, 1.0 + self.heating[rows]
                                * np.cos(2 * np.pi * (doy - 15) / 365.25))
            if weekend:
                season = season * self.weekend[rows]
            shape *= (self.base[rows] * season)[:, None]
            rng = np.random.default_rng([self.seed, 1, day.toordinal(), group])
            noise = rng.standard_normal((GROUP, len(index)))[:shape.shape[0]]
            noise *= self.noise[rows, None]
            noise += 1.0
            block = out[rows]
            np.multiply(shape, noise, out=block)
            np.maximum(block, 0.0, out=block)
            np.round(block, 3, out=block)
            block[rng.random((GROUP, len(index)))[:len(block)] < MISSING_POINT_RATE] = np.nan
            block[rng.random(GROUP)[:len(block)] < OUTAGE_RATE, :] = np.nan

    def days(self, first: dt.date, count: int) -> Block:
        """``count`` consecutive local days from ``first``, as one block."""
        days = [first + dt.timedelta(days=i) for i in range(count)]
        indexes = [day_index(d) for d in days]
        lengths = [len(i) for i in indexes]
        values = np.empty((self.n, sum(lengths)), dtype=np.float64)
        pos = 0
        for day, index in zip(days, indexes, strict=True):
            self._fill(day, index, values[:, pos:pos + len(index)])
            pos += len(index)
        index = indexes[0].append(indexes[1:]) if len(indexes) > 1 else indexes[0]
        return Block(pd.DatetimeIndex(index).as_unit("ns"), self.meters, values, days, lengths)


# -- checking reads ------------------------------------------------------------------------------
def index_ns(index: Any) -> np.ndarray:
    """int64 UTC nanoseconds of a tz-aware DatetimeIndex (any unit) or timestamp array."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


def check_wide(what: str, got_ns: np.ndarray, got_meters: np.ndarray, got_values: np.ndarray,
               expected: Block, meters: np.ndarray | None = None) -> None:
    """Fail loudly unless ``got_values[t, m]`` over (``got_ns``, ``got_meters``) holds exactly
    the values of ``expected`` (restricted to ``meters``): same float64 bits, NaN where NaN was
    written. Timestamps or meters that hold only NaN may be missing from the read."""
    if meters is None:
        rows = np.arange(len(expected.meters))
    else:
        rows = np.searchsorted(expected.meters, meters)
    want = expected.values[rows].T  # (t, meters)
    want_ns = index_ns(expected.index)
    want_meters = expected.meters[rows]
    t_pos = np.searchsorted(want_ns, got_ns)
    m_pos = np.searchsorted(want_meters, got_meters)
    bad_t = (t_pos >= len(want_ns)) | (want_ns[np.minimum(t_pos, len(want_ns) - 1)] != got_ns)
    bad_m = (m_pos >= len(want_meters)) | (
        want_meters[np.minimum(m_pos, len(want_meters) - 1)] != got_meters)
    if bad_t.any():
        raise FleetMismatch(f"{what}: {int(bad_t.sum())} timestamps read that were not written "
                            f"(first {pd.Timestamp(int(got_ns[bad_t][0]), tz=TZ)})")
    if bad_m.any():
        raise FleetMismatch(f"{what}: meters read that were not written: "
                            f"{got_meters[bad_m][:5].tolist()}")
    if got_values.shape != (len(got_ns), len(got_meters)):
        raise FleetMismatch(f"{what}: values of shape {got_values.shape} for "
                            f"{len(got_ns)} timestamps x {len(got_meters)} meters")
    full = np.full(want.shape, np.nan)
    full[np.ix_(t_pos, m_pos)] = got_values
    same = (full == want) | (np.isnan(full) & np.isnan(want))
    if not same.all():
        t, m = np.argwhere(~same)[0]
        raise FleetMismatch(
            f"{what}: {int((~same).sum())} of {same.size} values differ; first at meter "
            f"{int(want_meters[m])} {pd.Timestamp(int(want_ns[t]), tz=TZ)}: read "
            f"{full[t, m]!r}, written {want[t, m]!r}")


def check_long(what: str, meters: np.ndarray, ts_ns: np.ndarray, values: np.ndarray,
               expected: Block, only: np.ndarray | None = None) -> None:
    """:func:`check_wide` for long-format rows (meter, timestamp, value), in any order."""
    got_ns, t_pos = np.unique(ts_ns, return_inverse=True)
    got_meters, m_pos = np.unique(meters, return_inverse=True)
    wide = np.full((len(got_ns), len(got_meters)), np.nan)
    wide[t_pos, m_pos] = values
    if len(t_pos) and np.bincount(t_pos * len(got_meters) + m_pos).max() > 1:
        raise FleetMismatch(f"{what}: a (meter, timestamp) pair is read more than once")
    check_wide(what, got_ns, got_meters, wide, expected, only)


# -- the long-format ingest file -----------------------------------------------------------------
def make_ingest_file(path: Path, meters: int = 1_000_000, day: dt.date = dt.date(2025, 10, 27),
                     seed: int = 0, meters_per_group: int = 2 * GROUP) -> dict[str, Any]:
    """Write one day of ``meters`` meters (:class:`Fleet`'s curves) as a long-format Parquet
    file for ``curvestore ingest``: columns meter int64, ts timestamp[us, Europe/Paris], kw
    float64 (null for a missing reading), ordered by meter then time; 96 M rows for a million
    meters on a 96-quarter-hour day. Written one row group of ``meters_per_group`` meters
    (~1.9 M rows) at a time, so memory stays bounded by one group whatever ``meters``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if meters_per_group % GROUP:
        raise ValueError(f"meters_per_group must be a multiple of {GROUP}")
    index = day_index(day)
    ts_us = index_ns(index) // 1000
    schema = pa.schema([("meter", pa.int64()), ("ts", pa.timestamp("us", tz=TZ)),
                        ("kw", pa.float64())])
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for lo in range(0, meters, meters_per_group):
            fleet = Fleet(min(meters_per_group, meters - lo), seed, first=lo)
            values = np.empty((fleet.n, len(index)))
            fleet._fill(day, index, values)
            flat = values.ravel()
            table = pa.table({
                "meter": pa.array(np.repeat(fleet.meters, len(index))),
                "ts": pa.array(np.tile(ts_us, fleet.n), type=pa.timestamp("us", tz=TZ)),
                "kw": pa.array(flat, mask=np.isnan(flat)),
            }, schema=schema)
            writer.write_table(table, row_group_size=len(table))
            rows += len(table)
            del values, flat, table
    return {"path": str(path), "meters": meters, "rows": rows, "day": day.isoformat(),
            "bytes": path.stat().st_size}
