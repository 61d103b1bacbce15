"""Exact grid math.

Points live at ``period_start + i * freq`` in absolute time, where periods are calendar months
or years in the store's time zone. Because every period boundary must itself lie on the grid
(checked when a store is created), one global grid exists, and everything below works in
integer *grid positions* counted from the first supported period: no floating point and no
wall-clock arithmetic, so DST changes (a 15-min March month in Europe/Paris has 4 fewer points)
come out right by construction.

Chunk indices: ``year`` for yearly chunks, ``year * 12 + month - 1`` for monthly chunks.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from curvestore.errors import ConfigurationError, GridError, InvalidDataError

__all__ = ["EARLIEST", "FIRST_YEAR", "LAST_YEAR", "LATEST", "TIME_UNITS", "Grid",
           "default_time_unit", "get_grid", "resolve_time_unit", "to_utc_ns"]

FIRST_YEAR = 1970
LAST_YEAR = 2199
#: units a read may return its DatetimeIndex in, with their length in nanoseconds
TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@lru_cache(maxsize=1)
def default_time_unit() -> str:
    """The unit pandas itself gives new timestamps (``us`` on pandas 3, ``ns`` on pandas 2),
    so that what a user builds with ``pd.date_range`` and what a read returns compare equal."""
    return str(pd.date_range("2000-01-01", periods=1, freq="h").unit)


def resolve_time_unit(unit: str | None) -> str:
    """``unit`` checked, or pandas' own default for None or ``"auto"``."""
    if unit is None or unit == "auto":
        return default_time_unit()
    if unit not in TIME_UNITS:
        raise ConfigurationError(
            f"time_unit must be one of {list(TIME_UNITS)} or 'auto', got {unit!r}")
    return unit


class Grid:
    """The grid of one store: freq (ns), time zone and chunking."""

    def __init__(self, freq_ns: int, tz: str, chunking: str) -> None:
        self.freq_ns = int(freq_ns)
        self.freq_text = freq_text(self.freq_ns)
        self.tz = tz
        self.chunking = chunking
        years = np.arange(FIRST_YEAR, LAST_YEAR + 2)
        if chunking == "year":
            naive = pd.to_datetime({"year": years, "month": 1, "day": 1})
            self.first_chunk = FIRST_YEAR
        else:
            yy = np.repeat(years[:-1], 12)
            mm = np.tile(np.arange(1, 13), len(years) - 1)
            yy = np.append(yy, LAST_YEAR + 1)
            mm = np.append(mm, 1)
            naive = pd.to_datetime({"year": yy, "month": mm, "day": 1})
            self.first_chunk = FIRST_YEAR * 12
        local = pd.DatetimeIndex(naive).tz_localize(
            tz, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward"
        )
        starts = local.as_unit("ns").asi8.astype(np.int64)
        self.origin_ns = int(starts[0])
        rel = starts - self.origin_ns
        misaligned = rel % self.freq_ns != 0
        if misaligned.any():
            bad = local[int(np.argmax(misaligned))]
            raise ConfigurationError(
                f"periods do not fall on the {self.freq_text} grid in {tz}: the "
                f"period starting at {bad} is not a whole number of steps from the previous "
                "ones; choose a shorter freq or another chunking/time zone"
            )
        #: grid position of each period start; entry i is chunk first_chunk + i, last is an end
        self.bounds = rel // self.freq_ns
        self.last_chunk = self.first_chunk + len(self.bounds) - 2

    # -- chunks -------------------------------------------------------------------------
    def _slot(self, chunk: int) -> int:
        slot = chunk - self.first_chunk
        if not 0 <= slot <= len(self.bounds) - 2:
            raise GridError(
                f"chunk {chunk} is outside the supported years {FIRST_YEAR}-{LAST_YEAR}"
            )
        return slot

    def period(self, chunk: int) -> tuple[int, int]:
        """Grid position of the chunk's first point and its number of points."""
        slot = self._slot(chunk)
        return int(self.bounds[slot]), int(self.bounds[slot + 1] - self.bounds[slot])

    def period_starts(self, chunks: np.ndarray) -> np.ndarray:
        """Grid position of each chunk's first point (vectorised :meth:`period`)."""
        slots = np.asarray(chunks, dtype=np.int64) - self.first_chunk
        if len(slots) and (slots.min() < 0 or slots.max() > len(self.bounds) - 2):
            raise GridError(f"chunks outside the supported years {FIRST_YEAR}-{LAST_YEAR}")
        return self.bounds[slots]

    def period_start_ns(self, chunk: int) -> int:
        return self.origin_ns + self.period(chunk)[0] * self.freq_ns

    def chunk_of_positions(self, positions: np.ndarray) -> np.ndarray:
        slots = np.searchsorted(self.bounds, positions, side="right") - 1
        return slots + self.first_chunk

    def chunk_label(self, chunk: int) -> str:
        if self.chunking == "year":
            return str(chunk)
        year, month = divmod(chunk, 12)
        return f"{year}-{month + 1:02d}"

    # -- timestamps <-> positions ----------------------------------------------------------
    def positions(self, ns: np.ndarray) -> np.ndarray:
        """Grid positions of sorted UTC nanosecond timestamps; GridError if any is off the grid
        or outside the supported years."""
        if not len(ns):
            return np.empty(0, dtype=np.int64)
        rel = ns - self.origin_ns
        first, last = int(rel[0]), int(rel[-1])
        steps = np.diff(rel)
        # Regular input (the common case) avoids int64 division, the slow part here.
        if first % self.freq_ns == 0 and (steps == self.freq_ns).all():
            pos = np.arange(first // self.freq_ns, first // self.freq_ns + len(rel))
        elif first % self.freq_ns == 0 and not (steps % self.freq_ns).any():
            pos = rel // self.freq_ns
        else:
            off = rel % self.freq_ns
            bad = pd.Timestamp(int(ns[int(np.argmax(off != 0))]), tz="UTC").tz_convert(self.tz)
            raise GridError(
                f"timestamp {bad} is not on the store's {self.freq_text} grid "
                "(data finer than or not aligned to the store's freq); resample it first"
            )
        if first < 0 or last // self.freq_ns >= self.bounds[-1]:
            outside = (rel < 0) | (rel // self.freq_ns >= self.bounds[-1])
            bad = pd.Timestamp(int(ns[int(np.argmax(outside))]), tz="UTC").tz_convert(self.tz)
            raise GridError(
                f"timestamp {bad} is outside the supported years {FIRST_YEAR}-{LAST_YEAR}")
        return pos

    def ns_of_positions(self, pos: np.ndarray | int) -> Any:
        return self.origin_ns + np.asarray(pos, dtype=np.int64) * self.freq_ns

    def position_at_or_after(self, ns: int) -> int:
        """First grid position whose time is >= ``ns``."""
        return -((self.origin_ns - ns) // self.freq_ns)

    def position_at_or_before(self, ns: int) -> int:
        return (ns - self.origin_ns) // self.freq_ns

    def chunk_range(self, lo_pos: int | None, hi_pos: int | None) -> tuple[int | None, int | None]:
        """Chunks overlapping grid positions ``[lo_pos, hi_pos]`` (None: unbounded)."""
        lo = None if lo_pos is None else int(self.chunk_of_positions(np.array([lo_pos]))[0])
        hi = None if hi_pos is None else int(self.chunk_of_positions(np.array([hi_pos]))[0])
        return lo, hi

    def check_unit(self, unit: str) -> None:
        """Refuse a time unit coarser than the grid (its instants would be rounded)."""
        step = TIME_UNITS[unit]
        if self.freq_ns % step or self.origin_ns % step:
            raise ConfigurationError(
                f"time_unit {unit!r} cannot hold the {self.freq_text} grid in {self.tz} "
                "exactly; choose a finer unit")

    def index(self, first_pos: int, count: int, unit: str) -> pd.DatetimeIndex:
        """The tz-aware index of ``count`` points from grid position ``first_pos``, in
        ``unit`` (one of :data:`TIME_UNITS` that :meth:`check_unit` accepted), with ``freq``
        set as ``pd.date_range`` sets it, so that a round trip compares equal.

        Each caller gets its own shallow copy (renaming one never renames another) of an
        index kept in a small cache: a bulk read over one window builds it once."""
        return self._cached_index(first_pos, count, unit).copy()

    @lru_cache(maxsize=16)  # noqa: B019  (grids live as long as the process, see get_grid)
    def _cached_index(self, first_pos: int, count: int, unit: str) -> pd.DatetimeIndex:
        # Built in UTC, where the grid is a fixed step, then converted: setting ``freq`` on
        # an existing index would validate it against every instant (~6 ms for three years
        # of 15-min points) instead of ~30 us more than an index without ``freq``.
        start = pd.Timestamp((self.origin_ns + first_pos * self.freq_ns) // TIME_UNITS[unit],
                             unit=unit, tz="UTC")
        return pd.date_range(start=start, periods=count, freq=self.freq_text,
                             unit=unit).tz_convert(self.tz)

    def timestamp(self, ns: int, unit: str) -> pd.Timestamp:
        """The instant ``ns`` (UTC epoch nanoseconds) in the grid's time zone and ``unit``."""
        return pd.Timestamp(ns, tz="UTC").tz_convert(self.tz).as_unit(unit)


def freq_text(freq_ns: int) -> str:
    """Canonical text of a duration: '15min', '1h', '1D', '90s'."""
    seconds, rest = divmod(freq_ns, 1_000_000_000)
    if rest:
        return f"{freq_ns}ns"
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@lru_cache(maxsize=64)
def get_grid(freq_ns: int, tz: str, chunking: str) -> Grid:
    return Grid(freq_ns, tz, chunking)


#: Instants a day or more outside the grid's first and last periods in every time zone:
#: between them, nanoseconds and grid offsets cannot overflow int64.
EARLIEST = pd.Timestamp(f"{FIRST_YEAR - 1}-12-30", tz="UTC")
LATEST = pd.Timestamp(f"{LAST_YEAR + 1}-01-03", tz="UTC")
_NAIVE_EDGES = (EARLIEST.tz_localize(None), LATEST.tz_localize(None))


def to_utc_ns(value: Any, tz: str, *, name: str = "timestamp") -> int | None:
    """A bound given as str, datetime, date, Timestamp, numpy datetime64, None or NaT, as UTC
    nanoseconds. Naive values are taken in the store time zone ``tz``. A bound beyond the
    supported years is moved to just beyond them (it selects the same points)."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidDataError(f"{name} {value!r} is not a timestamp") from exc
    if stamp is pd.NaT or pd.isna(stamp):
        return None
    # A bound far outside the supported years selects the same as one just outside them,
    # and would overflow nanoseconds (or its time zone conversion) near 2262.
    edges = (EARLIEST, LATEST) if stamp.tzinfo is not None else _NAIVE_EDGES
    if stamp < edges[0]:
        return int(EARLIEST.value)
    if stamp > edges[1]:
        return int(LATEST.value)
    if stamp.tzinfo is None:
        try:
            stamp = stamp.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except Exception as exc:  # pytz/zoneinfo raise different types
            raise InvalidDataError(
                f"{name} {value!r} does not exist or is ambiguous in {tz} (a DST change); "
                "give it with an explicit offset"
            ) from exc
    return int(stamp.as_unit("ns").value)
