"""The read half of :class:`~curvestore.testing.store.StoreSemantics`: time units, missing
series, gaps between chunks, read windows (every accepted bound form) and ``read_many``'s
ordered streaming.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import ConfigurationError
from curvestore.testing.fixtures import (
    _UTC,
    FREQ,
    KEYS,
    TZ,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
    month,
    read_expected,
    with_option,
)

__all__ = ["ReadSemantics"]

# Bounds given in every accepted form; all name the same instants.
_STARTS = {
    "str-naive": "2024-01-10 06:00",
    "str-aware": "2024-01-10T06:00:00+01:00",
    "datetime-naive": dt.datetime(2024, 1, 10, 6),
    "datetime-utc": dt.datetime(2024, 1, 10, 5, tzinfo=_UTC),
    "timestamp-naive": pd.Timestamp("2024-01-10 06:00"),
    "timestamp-utc": pd.Timestamp("2024-01-10 05:00", tz="UTC"),
    "timestamp-new-york": pd.Timestamp("2024-01-10 00:00", tz="America/New_York"),
    "datetime64": np.datetime64("2024-01-10T06:00"),
    "off-grid": "2024-01-10 05:50",
}
_ENDS = {
    "str-naive": "2024-02-03 12:00",
    "str-aware": "2024-02-03T12:00:00+01:00",
    "datetime-naive": dt.datetime(2024, 2, 3, 12),
    "datetime-utc": dt.datetime(2024, 2, 3, 11, tzinfo=_UTC),
    "timestamp-naive": pd.Timestamp("2024-02-03 12:00"),
    "timestamp-utc": pd.Timestamp("2024-02-03 11:00", tz="UTC"),
    "timestamp-new-york": pd.Timestamp("2024-02-03 06:00", tz="America/New_York"),
    "datetime64": np.datetime64("2024-02-03T12:00"),
    "off-grid": "2024-02-03 12:10",
}


class ReadSemantics(StoreFixtures):
    """Reads through the public API: time units, gaps, windows, read_many."""

    # -- time units: pandas 3 makes microsecond timestamps, pandas 2 nanoseconds -------------
    def test_round_trip_compares_equal_in_pandas_own_unit(self, store: curvestore.Store) -> None:
        written = pd.Series(np.arange(400.0) - 3.5,
                            index=pd.date_range("2024-03-30", periods=400, freq="15min", tz=TZ))
        store.write(key(), written)
        pd.testing.assert_series_equal(read_expected(store, key()), written)
        [(_, streamed)] = list(store.read_many({"site": "a"}))
        pd.testing.assert_series_equal(streamed, written)
        window = written["2024-03-31 01:00":"2024-03-31 04:00"]
        pd.testing.assert_series_equal(
            read_expected(store, key(), "2024-03-31 01:00", "2024-03-31 04:00"), window)
        newest = store.max_timestamp()
        assert newest == written.index[-1] and newest is not None
        assert newest.unit == written.index.unit
        assert {item.period_start.unit for item in store.changes().items} == {written.index.unit}
        assert store.info()["time_unit"] == written.index.unit

    @pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
    def test_time_unit_asked_for(self, store: curvestore.Store, backend_url: str,
                                 unit: str) -> None:
        written = curve("2024-01-30", periods=300, seed=41)
        store.write(key(), written)
        for other in (self.reopen(backend_url, time_unit=unit),
                      self.reopen(with_option(backend_url, f"time_unit={unit}"))):
            with other:
                got = read_expected(other, key())
                assert got.index.unit == unit and str(got.index.tz) == TZ
                assert_series_exact(got, dense(written))
                [(_, streamed)] = list(other.read_many())
                assert streamed.index.unit == unit
                newest = other.max_timestamp()
                assert newest is not None and newest.unit == unit
                assert newest == written.index[-1]

    def test_time_unit_refused(self, store: curvestore.Store, backend_url: str) -> None:
        for bad in ("minutes", "D", ""):
            with pytest.raises(ConfigurationError, match="time_unit"):
                self.reopen(backend_url, time_unit=bad).close()

    # -- missing data --------------------------------------------------------------------
    def test_missing_series_reads_none(self, store: curvestore.Store) -> None:
        assert store.read(key()) is None
        store.write(key(n=1), curve("2024-01-01", periods=4))
        assert store.read(key(n=2)) is None
        assert store.read(key(n=1), "2025-01-01", "2025-12-31") is None
        assert list(store.read_many({"n": 2})) == []

    # -- gaps ----------------------------------------------------------------------------------
    def test_missing_months_round_trip(self, store: curvestore.Store) -> None:
        january = curve("2024-01-03", periods=500, seed=24)
        april = curve("2024-04-02", periods=700, seed=25)
        s = pd.concat([january, april])
        store.write(key(n=1), s)
        store.write(key(n=2), april)
        assert_series_exact(store.read(key(n=1)), dense(s))
        assert len(store.backend.read_chunks(store.schema.key(key(n=1)))) == 2
        got = dict((d["n"], v) for d, v in store.read_many({"site": "a"}))
        assert sorted(got) == [1, 2]
        assert_series_exact(got[1], dense(s))
        assert_series_exact(got[2], dense(april))
        assert store.read(key(n=1), "2024-02-01", "2024-03-31 23:45") is None
        # a window over the gap and the next month starts at the first valid point
        assert_series_exact(store.read(key(n=1), "2024-02-01", None), dense(april))
        many = dict((d["n"], v) for d, v in store.read_many(None, "2024-02-01", "2024-03-31"))
        assert many == {}

    # -- read windows --------------------------------------------------------------------------
    @pytest.mark.parametrize("form", list(_STARTS))
    def test_read_window_bound_forms(self, store: curvestore.Store, form: str) -> None:
        s = curve("2024-01-01", end="2024-02-29 23:45", seed=26)
        store.write(key(), s)
        expected = s.loc[month("2024-01-10 06:00"):month("2024-02-03 12:00")]
        assert_series_exact(store.read(key(), _STARTS[form], _ENDS[form]), dense(expected))
        assert_series_exact(store.read(key(), _STARTS[form], None),
                            dense(s.loc[month("2024-01-10 06:00"):]))
        assert_series_exact(store.read(key(), None, _ENDS[form]),
                            dense(s.loc[:month("2024-02-03 12:00")]))
        (_, many), = store.read_many({"site": "a"}, _STARTS[form], _ENDS[form])
        assert_series_exact(many, dense(expected))

    @pytest.mark.parametrize("none", [None, pd.NaT, float("nan")], ids=["None", "NaT", "nan"])
    def test_read_unbounded(self, store: curvestore.Store, none: Any) -> None:
        s = curve("2024-01-20", end="2024-02-10", seed=27, nan=0.1)
        store.write(key(), s)
        assert_series_exact(store.read(key(), none, none), dense(s))
        assert_series_exact(store.read(key(), none, "2024-01-25"),
                            dense(s.loc[:month("2024-01-25")]))

    def test_read_end_is_inclusive(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", periods=100, seed=28)
        store.write(key(), s)
        got = read_expected(store, key(), s.index[10], s.index[20])
        assert len(got) == 11 and got.index[-1] == s.index[20]
        one = read_expected(store, key(), s.index[10], s.index[10])
        assert len(one) == 1 and one.iloc[0] == s.iloc[10]

    def test_read_empty_or_reversed_window(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", periods=100, seed=29)
        store.write(key(), s)
        assert store.read(key(), s.index[20], s.index[10]) is None
        assert store.read(key(), "2024-01-01 00:05", "2024-01-01 00:10") is None  # no grid point
        assert store.read(key(), "2023-01-01", "2023-12-31") is None
        assert list(store.read_many(None, s.index[20], s.index[10])) == []

    def test_read_window_trims_nan_at_the_window_edges(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", periods=100, seed=30)
        s.iloc[10:20] = np.nan
        store.write(key(), s)
        got = store.read(key(), s.index[12], s.index[30])
        assert_series_exact(got, dense(s.iloc[20:31]))

    def test_drop_bounds_na_false_pads_to_chunk_periods(self, store: curvestore.Store) -> None:
        january = curve("2024-01-10", periods=50, seed=31)
        march = curve("2024-03-05", periods=20, seed=32)
        store.write(key(), pd.concat([january, march]))
        got = read_expected(store, key(), drop_bounds_na=False)
        # January + February (between) + March (DST: 4 fewer points) in full
        assert len(got) == 31 * 96 + 29 * 96 + 31 * 96 - 4
        assert got.index[0] == month("2024-01-01")
        assert got.index[-1] == month("2024-03-31 23:45")
        full = pd.date_range(month("2024-01-01"), month("2024-03-31 23:45"), freq=FREQ)
        expected = pd.concat([january, march]).reindex(full)
        assert_series_exact(got, expected)
        # a window inside the padded span is cut exactly; outside it, padding stops at periods
        window = read_expected(store, key(), "2024-01-02", "2024-05-15", drop_bounds_na=False)
        assert window.index[0] == month("2024-01-02")
        assert window.index[-1] == month("2024-03-31 23:45")
        (_, many), = store.read_many(None, drop_bounds_na=False)
        assert_series_exact(many, expected)

    # -- read_many ---------------------------------------------------------------------------
    def test_read_many_streams_matches_ordered_by_key(self, store: curvestore.Store) -> None:
        written = {}
        order = [("b", "load", 1), ("a", "prod", 10), ("a", "load", 10), ("a", "load", 2),
                 ("c", "load", 2), ("a", "load", 1)]
        for i, parts in enumerate(order):
            written[parts] = curve("2024-01-01", periods=10 + i, seed=100 + i)
            store.write(dict(zip(KEYS, parts, strict=True)), written[parts])
        stream = store.read_many({"site": "a"})
        assert isinstance(stream, Iterator) and iter(stream) is stream
        assert not isinstance(stream, (list, tuple))
        first_key, first = next(stream)
        assert first_key == {"site": "a", "kind": "load", "n": 1}
        rest = list(stream)
        keys = [first_key] + [k for k, _ in rest]
        assert [tuple(k.values()) for k in keys] == [
            ("a", "load", 1), ("a", "load", 2), ("a", "load", 10), ("a", "prod", 10)]
        for k, v in [(first_key, first), *rest]:
            assert_series_exact(v, dense(written[tuple(k.values())]))
        everything = [tuple(k.values()) for k, _ in store.read_many()]
        assert everything == sorted(written)
        assert [tuple(k.values()) for k, _ in store.read_many({"n": 2})] == [
            ("a", "load", 2), ("c", "load", 2)]
        assert [k for k, _ in store.read_many({"site": "a", "kind": "prod", "n": 10})] == [
            {"site": "a", "kind": "prod", "n": 10}]
        assert list(store.read_many({"site": "zz"})) == []

    def test_read_many_skips_series_without_data_in_window(self, store: curvestore.Store
                                                           ) -> None:
        store.write(key(n=1), curve("2024-01-01", periods=10, seed=33))
        store.write(key(n=2), curve("2024-01-01 03:00", periods=10, seed=34))
        got = [d["n"] for d, _ in store.read_many(None, "2024-01-01 02:45", None)]
        assert got == [2]
        store.delete(key(n=2))
        assert [d["n"] for d, _ in store.read_many()] == [1]

    # -- long reads (partitioned readers: curvestore.dask) -----------------------------------
    @pytest.mark.parametrize("window", [(None, None), ("2024-01-30 22:00", "2024-03-02 01:15")])
    def test_long_reads_of_listed_series_equal_read_many(
            self, store: curvestore.Store, window: tuple[Any, Any]) -> None:
        """A group of series read in bulk (the backend's ``scan_keys``, or the core's fetch
        or per-series fallback) as long columns equals ``read_many`` of those series, NaN
        dropped, key-major or time-major; a listed series without data is left out."""
        from curvestore.core.long_read import long_block, scan_keys

        written = {(site, n): curve("2024-01-20", end=f"2024-03-{n:02d} 10:00", seed=n,
                                    nan=0.1) for site in ("a", "b") for n in (1, 2, 3)}
        written[("b", 2)] = curve("2024-02-10", periods=50, seed=9, nan=0.1)
        store.write_many({(site, "load", n): s for (site, n), s in written.items()})
        listed = [("a", "load", 3), ("b", "load", 2), ("a", "load", 1), ("zz", "load", 1)]
        expected: list[tuple[tuple[Any, ...], int, float]] = []
        for k, s in store.read_many(None, *window):
            if tuple(k.values()) in listed:
                s = s.dropna()
                expected += [(tuple(k.values()), int(t), float(v)) for t, v in
                             zip(s.index.as_unit("ns").asi8, s.to_numpy(), strict=True)]
        w = store.window(*window)
        for time_major in (False, True):
            block = long_block(store, scan_keys(store, listed, w), w, time_major=time_major)
            owners = block.owners()
            got = [(block.keys[o], int(t), float(v)) for o, t, v in zip(
                owners, store.grid.ns_of_positions(block.positions), block.values,
                strict=True)]
            order = (lambda r: (r[1], r[0])) if time_major else (lambda r: (r[0], r[1]))
            assert got == sorted(got, key=order)
            assert sorted(got) == sorted(expected)
            assert block.keys == sorted({k for k, _, _ in expected})

    def test_long_read_of_appended_days_equals_read_many(self, store: curvestore.Store) -> None:
        """Series grown day by day (fragments, on backends that keep appends apart), one of
        them deleted, read as long columns over a window cut inside both end chunks."""
        from curvestore.core.long_read import long_block, scan_keys

        days = [curve(f"2024-01-{d:02d}", periods=96, seed=d, nan=0.2) for d in range(28, 32)]
        days += [curve(f"2024-02-{d:02d}", periods=96, seed=d, nan=0.2) for d in (1, 2)]
        for day in days:
            store.write_many({("a", "load", n): day + n for n in (1, 2, 3)}, mode="update")
        store.delete(key("a", "load", 2))
        window = ("2024-01-29 10:15", "2024-02-01 07:45")
        expected = []
        for k, s in store.read_many(None, *window):
            s = s.dropna()
            expected += [(tuple(k.values()), int(t), float(v)) for t, v in
                         zip(s.index.as_unit("ns").asi8, s.to_numpy(), strict=True)]
        w = store.window(*window)
        block = long_block(store, scan_keys(store, [("a", "load", n) for n in (3, 2, 1)], w), w)
        got = [(block.keys[o], int(t), float(v)) for o, t, v in zip(
            block.owners(), store.grid.ns_of_positions(block.positions), block.values,
            strict=True)]
        assert got == expected and len(got) > 400
        assert block.keys == [("a", "load", 1), ("a", "load", 3)]
