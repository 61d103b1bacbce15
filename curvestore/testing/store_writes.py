"""The write half of :class:`~curvestore.testing.store.StoreSemantics`: round trips, the
three write modes (insert, update, replace), ``write_many``'s all-or-nothing batches and
deletes, each compared bit for bit with what pandas computes from the written data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import (
    InvalidDataError,
    InvalidKeyError,
    SeriesExistsError,
)
from curvestore.testing.fixtures import (
    FREQ,
    TZ,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
    month,
    ns_index,
    read_expected,
)

__all__ = ["WriteSemantics"]


class WriteSemantics(StoreFixtures):
    """Writes through the public API: round trips, insert/update/replace, write_many,
    delete."""

    # -- round trips -----------------------------------------------------------------------
    def test_round_trip_exact(self, store: curvestore.Store) -> None:
        s = curve("2024-01-05", end="2024-03-20", seed=1, nan=0.1)
        s.iloc[5] = -0.0
        s.iloc[6] = 5e-324
        s.iloc[7] = 1.7976931348623157e308
        assert store.write(key(), s) == 3
        got = read_expected(store, key())
        assert_series_exact(got, dense(s))
        assert got.index.tz is not None and str(got.index.tz) == TZ
        assert np.signbit(got.iloc[5]) and got.iloc[5] == 0.0

    def test_round_trip_input_in_another_tz(self, store: curvestore.Store) -> None:
        s = curve("2024-01-31 20:00", periods=40, tz="UTC", seed=2)
        store.write(key(), s)
        got = read_expected(store, key())
        assert_series_exact(got, dense(s))
        assert got.index[0] == pd.Timestamp("2024-01-31 21:00", tz=TZ)

    def test_round_trip_across_dst_changes(self, store: curvestore.Store) -> None:
        march = curve("2024-03-30", end="2024-04-01 23:45", seed=3)
        october = curve("2024-10-26", end="2024-10-28 23:45", seed=4)
        assert len(march) == 3 * 96 - 4 and len(october) == 3 * 96 + 4
        store.write(key(n=1), march)
        store.write(key(n=2), october)
        assert_series_exact(store.read(key(n=1)), dense(march))
        assert_series_exact(store.read(key(n=2)), dense(october))
        # naive bounds on either side of the missing hour: 01:45 CET is followed by 03:00 CEST
        got = read_expected(store, key(n=1), "2024-03-31 01:45", "2024-03-31 03:00")
        assert list(got.index) == [pd.Timestamp("2024-03-31 01:45+01:00"),
                                   pd.Timestamp("2024-03-31 03:00+02:00")]
        # a full March holds 4 points fewer than 31 days, a full October 4 more
        full_march = read_expected(store, key(n=1), "2024-03-01", "2024-03-31 23:45",
                           drop_bounds_na=False)
        full_october = read_expected(store, key(n=2), "2024-10-01", "2024-10-31 23:45",
                             drop_bounds_na=False)
        assert len(full_march) == 31 * 96 - 4
        assert len(full_october) == 31 * 96 + 4
        assert full_march.index[0] == month("2024-03-01")

    def test_unsorted_input_is_read_sorted(self, store: curvestore.Store) -> None:
        s = curve("2024-02-01", periods=50, seed=5)
        store.write(key(), s.iloc[::-1])
        assert_series_exact(store.read(key()), dense(s))

    def test_nullable_and_integer_input(self, store: curvestore.Store) -> None:
        index = pd.date_range("2024-01-01", periods=4, freq=FREQ, tz=TZ)
        store.write(key(n=1), pd.Series([1, 2, 3, 4], index=index))
        store.write(key(n=2), pd.Series([1.5, None, 3.0, 4.0], index=index, dtype="Float64"))
        assert read_expected(store, key(n=1)).tolist() == [1.0, 2.0, 3.0, 4.0]
        got = read_expected(store, key(n=2))
        assert got.dtype == np.float64 and np.isnan(got.iloc[1]) and got.iloc[3] == 4.0

    # -- insert ------------------------------------------------------------------------------
    def test_insert_over_existing_raises_and_changes_nothing(self, store: curvestore.Store
                                                             ) -> None:
        s = curve("2024-01-01", periods=100, seed=6)
        store.write(key(), s)
        cursor = store.changes().cursor
        for other in (curve("2024-01-01", periods=100, seed=7),  # same span
                      curve("2024-05-01", periods=10, seed=8)):  # another month
            with pytest.raises(SeriesExistsError) as info:
                store.write(key(), other)
            assert isinstance(info.value, ValueError)
            assert info.value.keys == [key()]
            with pytest.raises(SeriesExistsError):
                store.write(key(), other, mode="insert")
        assert_series_exact(store.read(key()), dense(s))
        assert store.changes(cursor).items == []

    def test_insert_after_all_nan_series_is_new(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", periods=10, seed=9)
        assert store.write(key(), s * np.nan) == 0
        assert store.write(key(), s) == 1
        assert_series_exact(store.read(key()), dense(s))

    # -- update ------------------------------------------------------------------------------
    def test_update_new_wins_old_kept_where_new_is_nan(self, store: curvestore.Store) -> None:
        old = curve("2024-01-01", periods=960, seed=10, nan=0.2)
        new = curve("2024-01-05", periods=960, seed=11, nan=0.3)
        store.write(key(), old)
        store.write(key(), new, mode="update")
        assert_series_exact(store.read(key()), dense(new.combine_first(old)))

    def test_update_spanning_several_months(self, store: curvestore.Store) -> None:
        old = curve("2024-01-01", end="2024-04-30 23:45", seed=12, nan=0.05)
        new = curve("2024-01-20", end="2024-03-10", seed=13, nan=0.5)
        new.loc["2024-02-01":"2024-02-29"] = np.nan  # a whole month of "no value" keeps old
        store.write(key(), old)
        store.write(key(), new, mode="update")
        expected = new.combine_first(old)
        assert_series_exact(store.read(key()), dense(expected))
        feb = store.read(key(), "2024-02-01", "2024-02-29 23:45")
        assert_series_exact(feb, dense(old.loc["2024-02-01":"2024-02-29 23:45"]))

    def test_update_creating_new_months(self, store: curvestore.Store) -> None:
        old = curve("2024-01-10", periods=300, seed=14)
        new = curve("2024-03-30", end="2024-05-02", seed=15, nan=0.1)
        store.write(key(), old)
        store.write(key(), new, mode="update")
        assert_series_exact(store.read(key()), dense(new.combine_first(old)))
        chunks = [r.chunk for r in store.backend.read_chunks(store.schema.key(key()))]
        assert len(chunks) == 4  # Jan, Mar, Apr, May: no chunk for the empty February
        assert store.read(key(), "2024-02-01", "2024-02-29 23:45") is None

    def test_update_on_missing_series_creates_it(self, store: curvestore.Store) -> None:
        s = curve("2024-06-01", periods=20, seed=16, nan=0.2)
        store.write(key(), s, mode="update")
        assert_series_exact(store.read(key()), dense(s))

    def test_update_with_all_nan_changes_nothing(self, store: curvestore.Store) -> None:
        s = curve("2024-06-01", periods=20, seed=17)
        store.write(key(), s)
        cursor = store.changes().cursor
        assert store.write(key(), s * np.nan, mode="update") == 0
        assert_series_exact(store.read(key()), dense(s))
        assert store.changes(cursor).items == []

    # -- replace -----------------------------------------------------------------------------
    def test_replace_leaves_exactly_the_new_data(self, store: curvestore.Store) -> None:
        old = curve("2024-01-01", end="2024-04-30 23:45", seed=18)
        new = curve("2024-02-10", end="2024-03-05", seed=19, nan=0.3)
        store.write(key(), old)
        store.write(key(), new, mode="replace")
        assert_series_exact(store.read(key()), dense(new))
        assert store.read(key(), "2024-01-01", "2024-02-09 23:45") is None
        assert store.read(key(), "2024-03-05 00:15", None) is None
        metas = [r.meta for r in store.backend.read_chunks(store.schema.key(key()))]
        assert len(metas) == 2  # January and April are gone
        assert store.max_timestamp() == new.index[-1]

    def test_replace_inside_one_month_drops_old_points_of_that_month(
            self, store: curvestore.Store) -> None:
        old = curve("2024-01-01", periods=2000, seed=20)
        new = curve("2024-01-10", periods=10, seed=21)
        store.write(key(), old)
        store.write(key(), new, mode="replace")
        assert_series_exact(store.read(key()), dense(new))
        assert_series_exact(read_expected(store, key(), drop_bounds_na=False).dropna(),
                            ns_index(new))

    def test_replace_on_missing_series_creates_it(self, store: curvestore.Store) -> None:
        s = curve("2024-06-01", periods=20, seed=22)
        store.write(key(), s, mode="replace")
        assert_series_exact(store.read(key()), dense(s))

    def test_replace_with_no_value_deletes_the_series(self, store: curvestore.Store) -> None:
        s = curve("2024-05-20", end="2024-06-10", seed=23)
        other = curve("2024-06-01", periods=20, seed=24)
        store.write(key(n=1), s)
        store.write(key(n=2), other)
        store.write(key(n=3), other)
        cursor = store.changes().cursor
        assert store.write(key(n=1), s * np.nan, mode="replace") == 2  # May and June
        assert store.read(key(n=1)) is None
        assert [(i.key["n"], i.deleted) for i in store.changes(cursor).items] == [
            (1, True), (1, True)]
        empty = pd.Series([], index=pd.DatetimeIndex([], tz=TZ), dtype=float)
        assert store.write(key(n=1), empty, mode="replace") == 0  # nothing left to delete
        assert store.write_many({("a", "load", 2): empty, ("a", "load", 4): other,
                                 ("a", "load", 5): other * np.nan}, mode="replace") == 2
        assert store.keys() == [key(n=3), key(n=4)]
        assert_series_exact(store.read(key(n=4)), dense(other))
        # insert and update without a value still write nothing
        for mode in ("insert", "update"):
            assert store.write(key(n=3), other * np.nan, mode=mode) == 0
        assert_series_exact(store.read(key(n=3)), dense(other))

    # -- write_many ------------------------------------------------------------------------------
    def test_write_many_writes_all(self, store: curvestore.Store) -> None:
        mapping = {("a", "load", n): curve("2024-01-25", periods=1000, seed=n) for n in range(5)}
        assert store.write_many(mapping) == 10
        for (site, kind, n), s in mapping.items():
            assert_series_exact(store.read(key(site, kind, n)), dense(s))
        new = curve("2024-02-25", periods=10, seed=50, nan=0.5)
        store.write_many({("a", "load", 0): new}, mode="update")
        assert_series_exact(store.read(key(n=0)),
                            dense(new.combine_first(mapping[("a", "load", 0)])))

    @pytest.mark.parametrize("bad", ["naive", "strings", "inf", "off-grid", "bad-key",
                                     "short-key", "not-a-series"])
    def test_write_many_one_invalid_writes_nothing(self, store: curvestore.Store, bad: str
                                                   ) -> None:
        mapping: dict[Any, Any] = {
            ("a", "load", n): curve("2024-01-25", periods=1000, seed=n) for n in range(4)}
        index = pd.date_range("2024-01-01", periods=3, freq=FREQ, tz=TZ)
        # the bad key of some cases is deliberately not (str, str, int)
        bad_key: tuple[Any, ...] = ("b", "load", 9)
        bad_value: Any = None
        if bad == "naive":
            bad_value = pd.Series([1.0, 2.0, 3.0], index=index.tz_localize(None))
        elif bad == "strings":
            bad_value = pd.Series(["1", "x", "3"], index=index)
        elif bad == "inf":
            bad_value = pd.Series([1.0, np.inf, 3.0], index=index)
        elif bad == "off-grid":
            bad_value = pd.Series([1.0, 2.0, 3.0], index=index + pd.Timedelta("7min"))
        elif bad == "bad-key":
            bad_key, bad_value = ("b", "load", "9"), mapping[("a", "load", 0)]
        elif bad == "short-key":
            bad_key, bad_value = ("b", "load"), mapping[("a", "load", 0)]
        else:
            bad_value = [1.0, 2.0]
        mapping[bad_key] = bad_value
        mapping[("z", "load", 1)] = curve("2024-01-01", periods=5)  # after the bad one
        with pytest.raises((InvalidDataError, InvalidKeyError)) as info:
            store.write_many(mapping)
        assert isinstance(info.value, ValueError)
        assert store.keys() == []
        assert store.changes().items == []
        assert list(store.read_many()) == []

    def test_write_many_insert_with_one_existing_writes_nothing(self, store: curvestore.Store
                                                                ) -> None:
        existing = curve("2024-03-01", periods=10, seed=60)
        store.write(key(n=3), existing)
        cursor = store.changes().cursor
        mapping = {("a", "load", n): curve("2024-01-25", periods=1000, seed=n) for n in range(6)}
        with pytest.raises(SeriesExistsError) as info:
            store.write_many(mapping)
        assert info.value.keys == [key(n=3)]
        assert store.keys() == [key(n=3)]
        assert_series_exact(store.read(key(n=3)), dense(existing))
        assert store.changes(cursor).items == []

    # -- delete --------------------------------------------------------------------------------
    def test_delete_tombstones(self, store: curvestore.Store) -> None:
        old = curve("2024-01-01", end="2024-02-10", seed=61)
        other = curve("2024-01-01", periods=10, seed=62)
        store.write(key(n=1), old)
        store.write(key(n=2), other)
        cursor = store.changes().cursor
        assert store.delete(key(n=1)) == 2
        assert store.read(key(n=1)) is None
        assert store.keys() == [key(n=2)]
        assert [d for d, _ in store.read_many()] == [key(n=2)]
        deleted = store.changes(cursor).items
        assert len(deleted) == 2 and all(i.deleted and i.key == key(n=1) for i in deleted)
        assert store.delete(key(n=1)) == 0  # nothing left to delete
        assert store.delete(key(n=5)) == 0  # never existed
        # re-insert after delete: a new series, the old months do not come back
        new = curve("2024-02-05", periods=10, seed=63)
        store.write(key(n=1), new)
        assert_series_exact(store.read(key(n=1)), dense(new))
        assert store.keys() == [key(n=1), key(n=2)]
        assert_series_exact(store.read(key(n=2)), dense(other))

    def test_delete_many(self, store: curvestore.Store) -> None:
        for site in ("a", "b"):
            for n in (1, 2):
                store.write(key(site, n=n), curve("2024-01-01", periods=5, seed=n))
        assert store.delete_many({"site": "a", "n": 2}) == 1
        assert store.keys() == [key("a", n=1), key("b", n=1), key("b", n=2)]
        assert store.delete_many({"n": 1}) == 2
        assert store.keys() == [key("b", n=2)]
        assert store.delete_many({"site": "zz"}) == 0
        assert store.delete_many() == 1
        assert store.keys() == []
        assert store.max_timestamp() is None
        assert list(store.read_many()) == []
        deleted = [i for i in store.changes(limit=100).items if i.deleted]
        assert len(deleted) == 4

    # -- writes without a value -------------------------------------------------------
    def test_all_nan_input_writes_nothing(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", end="2024-02-15") * np.nan
        for mode in ("insert", "update", "replace"):
            assert store.write(key(), s, mode=mode) == 0
            assert store.write_many({("a", "load", 1): s, ("b", "load", 2): s[:3]},
                                    mode=mode) == 0
        empty = pd.Series([], index=pd.DatetimeIndex([], tz=TZ), dtype=float)
        assert store.write(key(), empty) == 0
        assert store.read(key()) is None
        assert store.keys() == []
        assert store.changes().items == []
        assert store.info()["chunks"] == 0
