"""Exact grid math: period lengths across DST, other zones, refused configs, bound conversion."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.core.grid import get_grid, to_utc_ns
from curvestore.errors import ConfigurationError, GridError, InvalidDataError

MIN15 = 15 * 60 * 10**9
HOUR = 3600 * 10**9


def _month(grid, year: int, month: int) -> int:
    return grid.period(year * 12 + month - 1)[1]


@pytest.fixture
def url() -> str:
    return f"memory://{uuid.uuid4().hex}"


@pytest.mark.parametrize(("freq", "month", "points"), [
    (MIN15, 3, 2972), (MIN15, 10, 2980), (MIN15, 1, 2976), (MIN15, 2, 2784),
    (HOUR, 3, 743), (HOUR, 10, 745), (HOUR, 6, 720),
])
def test_paris_month_lengths(freq: int, month: int, points: int) -> None:
    assert _month(get_grid(freq, "Europe/Paris", "month"), 2024, month) == points


def test_paris_dst_sundays_2023_and_2025() -> None:
    grid = get_grid(MIN15, "Europe/Paris", "month")
    assert _month(grid, 2023, 3) == 2972 and _month(grid, 2023, 10) == 2980
    assert _month(grid, 2025, 3) == 2972 and _month(grid, 2025, 10) == 2980
    assert sum(_month(grid, 2024, m) for m in range(1, 13)) == 366 * 96


def test_year_chunking() -> None:
    grid = get_grid(MIN15, "Europe/Paris", "year")
    assert grid.period(2024)[1] == 35136
    assert grid.period(2023)[1] == 35040
    start = pd.Timestamp(grid.period_start_ns(2024), tz="UTC")
    assert start == pd.Timestamp("2024-01-01", tz="Europe/Paris")


def test_period_starts_are_local_midnights() -> None:
    grid = get_grid(MIN15, "Europe/Paris", "month")
    for month in range(1, 13):
        start = pd.Timestamp(grid.period_start_ns(2024 * 12 + month - 1), tz="UTC")
        assert start == pd.Timestamp(2024, month, 1, tz="Europe/Paris")
    assert grid.chunk_label(2024 * 12 + 2) == "2024-03"


def test_utc_months() -> None:
    grid = get_grid(MIN15, "UTC", "month")
    assert [_month(grid, 2024, m) for m in (2, 3, 10)] == [29 * 96, 31 * 96, 31 * 96]
    assert get_grid(HOUR, "UTC", "year").period(2024)[1] == 366 * 24


def test_kolkata_grid_is_at_half_past_utc(url: str) -> None:
    grid = get_grid(HOUR, "Asia/Kolkata", "month")
    start = pd.Timestamp(grid.period_start_ns(2024 * 12), tz="UTC")
    assert start == pd.Timestamp("2023-12-31 18:30", tz="UTC")
    assert _month(grid, 2024, 3) == 31 * 24
    with curvestore.create_store(url, keys=["site"], freq="1h", tz="Asia/Kolkata") as store:
        on_grid = pd.date_range("2024-01-01 00:30", periods=48, freq="1h", tz="UTC")
        store.write({"site": "a"}, pd.Series(np.arange(48.0), index=on_grid))
        got = store.read({"site": "a"})
        assert (got.index == on_grid).all() and str(got.index.tz) == "Asia/Kolkata"
        assert got.index[0].minute == 0  # 06:00 in Kolkata
        off_grid = pd.date_range("2024-02-01 00:00", periods=3, freq="1h", tz="UTC")
        with pytest.raises(GridError):
            store.write({"site": "b"}, pd.Series([1.0, 2.0, 3.0], index=off_grid))
        assert store.keys() == [{"site": "a"}]


def test_full_dst_months_through_a_store(url: str) -> None:
    with curvestore.create_store(url, keys=["site"], freq="15min", tz="Europe/Paris") as store:
        for month in ("2024-03", "2024-10"):
            start = pd.Timestamp(f"{month}-01", tz="Europe/Paris")
            end = start + pd.offsets.MonthBegin(1)
            index = pd.date_range(start, end, freq="15min", inclusive="left")
            store.write({"site": month}, pd.Series(np.arange(len(index), dtype=float),
                                                   index=index))
            got = store.read({"site": month})
            assert len(got) == {"2024-03": 2972, "2024-10": 2980}[month]
            assert (got.index == index).all()
            assert len(store.backend.read_chunks((month,))) == 1


@pytest.mark.parametrize(("freq", "tz", "chunking"), [
    ("1D", "Europe/Paris", "month"),
    ("7min", "UTC", "month"),
    ("7min", "Europe/Paris", "year"),
    ("2h", "Europe/Paris", "month"),  # the March change moves midnight by an odd hour
    ("1h", "Asia/Kathmandu", "month"),  # +05:30 until 1986, +05:45 since
])
def test_periods_off_the_grid_are_refused(url: str, freq: str, tz: str, chunking: str) -> None:
    with pytest.raises(ConfigurationError, match="grid"):
        curvestore.create_store(url, keys=["site"], freq=freq, tz=tz, chunking=chunking)
    with pytest.raises(curvestore.StoreNotFoundError):
        curvestore.open_store(url)


@pytest.mark.parametrize(("freq", "tz", "chunking"), [
    ("1D", "UTC", "month"), ("1D", "UTC", "year"), ("30min", "Asia/Kolkata", "month"),
    ("1h", "Europe/Paris", "year"), ("5min", "America/New_York", "month"),
])
def test_periods_on_the_grid_are_accepted(url: str, freq: str, tz: str, chunking: str) -> None:
    with curvestore.create_store(url, keys=["site"], freq=freq, tz=tz, chunking=chunking) as s:
        periods = [s.grid.period(c)[1] for c in range(s.grid.first_chunk, s.grid.last_chunk + 1)]
        assert min(periods) > 0 and s.grid.bounds[-1] == sum(periods)


# -- bounds ----------------------------------------------------------------------------------

PARIS = "Europe/Paris"
NS_0600 = pd.Timestamp("2024-01-10 06:00", tz=PARIS).value


@pytest.mark.parametrize("value", [
    "2024-01-10 06:00", "2024-01-10T05:00:00Z", "2024-01-10T06:00+01:00",
    dt.datetime(2024, 1, 10, 6), dt.datetime(2024, 1, 10, 5, tzinfo=dt.timezone(dt.timedelta(0))),
    pd.Timestamp("2024-01-10 06:00"), pd.Timestamp("2024-01-10 00:00", tz="America/New_York"),
    np.datetime64("2024-01-10T06:00:00"), np.datetime64("2024-01-10T06:00:00.000000000"),
], ids=lambda v: type(v).__name__ + ":" + str(v))
def test_to_utc_ns_forms(value: object) -> None:
    assert to_utc_ns(value, PARIS) == NS_0600


def test_to_utc_ns_dates_are_local_midnight() -> None:
    assert to_utc_ns(dt.date(2024, 7, 1), PARIS) == pd.Timestamp("2024-07-01", tz=PARIS).value


@pytest.mark.parametrize("empty", [None, pd.NaT, float("nan"), np.datetime64("NaT")],
                         ids=["None", "NaT", "nan", "np-NaT"])
def test_to_utc_ns_unbounded(empty: object) -> None:
    assert to_utc_ns(empty, PARIS) is None


@pytest.mark.parametrize("value", ["2024-03-31 02:30", "2024-10-27 02:30", "not a date", [1]],
                         ids=["nonexistent", "ambiguous", "garbage", "list"])
def test_to_utc_ns_refuses(value: object) -> None:
    with pytest.raises(InvalidDataError):
        to_utc_ns(value, PARIS)


def test_dst_bounds_with_offsets_are_accepted() -> None:
    assert to_utc_ns("2024-10-27 02:30+02:00", PARIS) == pd.Timestamp(
        "2024-10-27 00:30", tz="UTC").value
    assert to_utc_ns("2024-10-27 02:30+01:00", PARIS) == pd.Timestamp(
        "2024-10-27 01:30", tz="UTC").value


def test_positions_round_down_and_up() -> None:
    grid = get_grid(MIN15, PARIS, "month")
    on = pd.Timestamp("2024-01-10 06:00", tz=PARIS).value
    off = on + 7 * 60 * 10**9
    assert grid.position_at_or_after(on) == grid.position_at_or_before(on)
    assert grid.position_at_or_after(off) == grid.position_at_or_before(on) + 1
    assert grid.position_at_or_before(off) == grid.position_at_or_before(on)
    ns = np.array([on, on + MIN15, on + 3 * MIN15], dtype=np.int64)
    pos = grid.positions(ns)
    assert (np.diff(pos) == [1, 2]).all()
    assert (grid.ns_of_positions(pos) == ns).all()
    with pytest.raises(GridError):
        grid.positions(np.array([off], dtype=np.int64))
    with pytest.raises(GridError):
        grid.positions(np.array([pd.Timestamp("1960-01-01", tz="UTC").value], dtype=np.int64))


def test_read_bounds_between_grid_points(url: str) -> None:
    with curvestore.create_store(url, keys=["site"], freq="15min", tz=PARIS) as store:
        index = pd.date_range("2024-01-01", periods=20, freq="15min", tz=PARIS)
        store.write({"site": "a"}, pd.Series(np.arange(20.0), index=index))
        got = store.read({"site": "a"}, "2024-01-01 00:07", "2024-01-01 01:07")
        assert list(got.index) == list(index[1:5])
        # bounds written with an explicit offset at the October change pick the right hour
        oct_index = pd.date_range("2024-10-27 00:00", "2024-10-27 04:00", freq="15min",
                                  tz=PARIS)
        store.write({"site": "b"}, pd.Series(np.arange(len(oct_index), dtype=float),
                                             index=oct_index))
        first = store.read({"site": "b"}, "2024-10-27 02:00+02:00", "2024-10-27 02:45+02:00")
        second = store.read({"site": "b"}, "2024-10-27 02:00+01:00", "2024-10-27 02:45+01:00")
        assert len(first) == len(second) == 4
        assert (second.index - first.index == pd.Timedelta("1h")).all()
        with pytest.raises(InvalidDataError):
            store.read({"site": "b"}, "2024-10-27 02:00", None)
