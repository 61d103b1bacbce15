"""The frame half of :class:`~curvestore.testing.store.StoreSemantics`: ``write_frame`` stores
what ``write_many`` of the same columns stores (same data, same chunks changed, same counts)
in every mode, refuses bad input whole, and ``read_frame`` equals the frame of
``read_many``'s series, on single- and multi-key stores, in every time unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import (
    GridError,
    InvalidDataError,
    InvalidKeyError,
    ReadOnlyError,
    SeriesExistsError,
)
from curvestore.testing.fixtures import (
    FREQ,
    KEYS,
    TZ,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
)

__all__ = ["FrameSemantics", "expected_frame", "wide"]

A, B, C, D = ("a", "load", 1), ("a", "load", 2), ("b", "prod", 1), ("b", "load", 3)


def wide(columns: dict[Any, pd.Series], names: list[str] | None = None) -> pd.DataFrame:
    """The frame of ``columns`` (label -> series), labelled by the key ``names``."""
    frame = pd.DataFrame(columns)
    names = list(KEYS) if names is None else names
    if len(names) == 1:
        frame.columns.name = names[0]
    else:
        frame.columns = pd.MultiIndex.from_tuples(list(frame.columns), names=names)
    return frame


def expected_frame(store: curvestore.Store, filter: Any = None, start: Any = None,
                   end: Any = None) -> pd.DataFrame | None:
    """What ``read_frame`` must return, from ``read_many``: the frame of its series on every
    grid point from their first to their last one (None: no series)."""
    names = list(store.schema.names)
    series = {(k[names[0]] if len(names) == 1 else tuple(k.values())): s
              for k, s in store.read_many(filter, start, end)}
    if not series:
        return None
    frame = wide(series, names)
    index = pd.date_range(frame.index[0], frame.index[-1], freq=store.grid.freq_text,
                          unit=store.time_unit)
    return frame.reindex(index)


def assert_frame_read(store: curvestore.Store, filter: Any = None, start: Any = None,
                      end: Any = None) -> pd.DataFrame:
    """``read_frame`` equals :func:`expected_frame`, bit for bit; returns it."""
    got = store.read_frame(filter, start, end)
    expected = expected_frame(store, filter, start, end)
    assert isinstance(got.index, pd.DatetimeIndex)
    assert str(got.index.tz) == store.config.tz and got.index.unit == store.time_unit
    assert (got.dtypes == np.float64).all()
    if expected is None:
        assert got.shape[1] == 0 and len(got) == 0, got
        return got
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.index.freq == expected.index.freq
    bits = got.to_numpy().view(np.uint64) == expected.to_numpy().view(np.uint64)
    assert (bits | np.isnan(got.to_numpy())).all(), "values differ bitwise (signed zeros?)"
    return got


def _changes(store: curvestore.Store, cursor: str | None) -> tuple[list[Any], str]:
    items, page = [], store.changes(cursor, limit=10_000)
    items += page.items
    assert not page.has_more
    return sorted((tuple(i.key.values()), i.chunk, i.deleted) for i in items), page.cursor


class FrameSemantics(StoreFixtures):
    """``write_frame`` and ``read_frame`` through the public API."""

    single_key_keys: ClassVar[dict[str, type]] = {"meter": str}

    @pytest.fixture
    def single_key_url(self, backend_url_factory: Any) -> str:
        """An empty location for a store keyed by ``single_key_keys`` (override when the
        backend's locations have fixed keys)."""
        return str(backend_url_factory())

    @pytest.fixture
    def single_key_store(self, single_key_url: str) -> Iterator[curvestore.Store]:
        s = curvestore.create_store(single_key_url, keys=self.single_key_keys, freq=self.freq,
                                    tz=self.tz, chunking=self.chunking)
        yield s
        s.close()

    # -- round trips -----------------------------------------------------------------------
    def test_frame_round_trip_multi_key(self, store: curvestore.Store) -> None:
        a = curve("2024-01-20", end="2024-03-05", seed=1, nan=0.1)
        a.iloc[3] = -0.0
        frame = wide({A: a, B: a.loc["2024-02-01":] * 3, C: a * np.nan})
        assert store.write_frame(frame) == 5  # A Jan-Mar, B Feb-Mar; C has no value
        assert store.keys() == [dict(zip(KEYS, A, strict=True)),
                                dict(zip(KEYS, B, strict=True))]
        got = assert_frame_read(store)
        assert list(got.columns.names) == list(KEYS)
        pd.testing.assert_frame_equal(got, frame[[A, B]], check_exact=True, check_freq=False)
        assert np.signbit(got[A].iloc[3])
        assert_series_exact(store.read(key(n=2)), dense(a.loc["2024-02-01":] * 3))
        # what read_frame returns writes back as it is
        assert store.write_frame(got * 2, mode="update") == 5
        pd.testing.assert_frame_equal(store.read_frame(), got * 2, check_exact=True)

    def test_frame_round_trip_single_key(self, single_key_store: curvestore.Store) -> None:
        store = single_key_store
        m1 = curve("2024-02-25", end="2024-03-02", seed=2, nan=0.2)
        frame = pd.DataFrame({"m1": m1, "m2": m1.iloc[::-1].to_numpy() + 1.0})
        assert isinstance(frame.columns, pd.Index) and frame.columns.name is None
        assert store.write_frame(frame) == 4
        got = assert_frame_read(store)
        assert got.columns.name == "meter" and list(got.columns) == ["m1", "m2"]
        pd.testing.assert_frame_equal(got, frame.rename_axis(columns="meter"),
                                      check_exact=True, check_freq=False)
        assert store.write_frame(got.iloc[:10] * 0.5, mode="update") == 2
        assert_frame_read(store, {"meter": "m2"}, "2024-02-25 01:00", "2024-03-01 00:00")
        with pytest.raises(InvalidKeyError):
            store.write_frame(pd.DataFrame({7: m1}))  # an int label for a str key

    def test_frame_across_dst_changes(self, store: curvestore.Store) -> None:
        march = curve("2024-03-01", end="2024-03-31 23:45", seed=3)
        october = curve("2024-10-26", end="2024-10-28 23:45", seed=4)
        assert len(march) == 31 * 96 - 4 and len(october) == 3 * 96 + 4
        frame = wide({A: march, B: march.loc["2024-03-30":] + 1})
        store.write_frame(frame)
        store.write_frame(wide({C: october}))
        got = assert_frame_read(store, None, "2024-03-01", "2024-03-31 23:45")
        assert len(got) == 31 * 96 - 4 and list(got.columns) == [A, B]
        assert got.index[0] == pd.Timestamp("2024-03-01", tz=TZ)
        assert_frame_read(store, None, "2024-03-31 01:45", "2024-03-31 03:00")
        autumn = assert_frame_read(store, {"site": "b"})
        assert len(autumn) == 3 * 96 + 4
        # a frame whose columns are in the store's tz or in another one is the same frame
        store.write_frame(wide({D: october.tz_convert("UTC")}))
        assert_series_exact(store.read(key("b", "load", 3)), dense(october))

    # -- the same as write_many ------------------------------------------------------------
    def test_frame_writes_equal_write_many(self, store: curvestore.Store,
                                           other_backend_url: str | None) -> None:
        if other_backend_url is None:
            pytest.skip("needs a second location")
        twin = curvestore.create_store(other_backend_url, keys=self.keys, freq=self.freq,
                                       tz=self.tz, chunking=self.chunking)
        a = curve("2024-01-20", end="2024-03-10", seed=5, nan=0.1)
        d = curve("2024-01-15", end="2024-01-31 23:45", seed=6, nan=0.1)
        late = curve("2024-03-10 00:15", end="2024-04-02", seed=8, nan=0.2)
        early = curve("2024-01-01", end="2024-01-25", seed=9, nan=0.2)
        march_only = a.loc["2024-02-20":].copy()
        march_only.loc[:"2024-02-29 23:45"] = np.nan
        steps: list[tuple[str, dict[Any, pd.Series]]] = [
            # several chunks, partial periods, B starting later, an all-NaN C skipped
            ("insert", {A: a, B: a.loc["2024-02-01":] + 1, C: a * np.nan, D: d}),
            # overlapping updates; C new, without a value in February
            ("update", {A: curve("2024-02-20", end="2024-03-10", seed=7, nan=0.3),
                        B: curve("2024-02-20", end="2024-03-10", seed=17, nan=0.3),
                        C: march_only}),
            # appends right after the stored end (March) and into a new month (April)
            ("update", {A: late, B: late * 2, C: late - 1}),
            # before the start: a new January for B, an overlap for A, a gap for D
            ("update", {A: early, B: early + 5, C: early * np.nan,
                        D: curve("2024-01-01", end="2024-01-10", seed=10)}),
            # replace: A keeps February only, B is deleted, C shrinks, D is untouched
            ("replace", {A: curve("2024-02-10", end="2024-02-20", seed=11),
                         B: a * np.nan, C: curve("2024-03-05", end="2024-03-06", seed=12)}),
            ("update", {D: curve("2024-01-31 23:00", end="2024-02-01 01:00", seed=13)}),
        ]
        try:
            cursors: list[str | None] = [None, None]
            for mode, columns in steps:
                frame = wide(columns)
                written = store.write_frame(frame, mode=mode)
                assert written == twin.write_many(columns, mode=mode), mode
                changed, cursors[0] = _changes(store, cursors[0])
                expected, cursors[1] = _changes(twin, cursors[1])
                assert changed == expected, mode
                assert store.keys() == twin.keys()
                for (k1, s1), (k2, s2) in zip(store.read_many(), twin.read_many(), strict=True):
                    assert k1 == k2
                    assert_series_exact(s1, s2)
                assert_frame_read(store)
            assert [tuple(k.values()) for k in store.keys()] == [A, D, C]
            assert store.max_timestamp() == twin.max_timestamp()
            info, twin_info = store.info(), twin.info()
            assert (info["series"], info["points"]) == (twin_info["series"],
                                                        twin_info["points"])
        finally:
            twin.close()

    def test_frame_update_skips_chunks_without_a_new_value(self, store: curvestore.Store
                                                           ) -> None:
        old = curve("2024-01-01", end="2024-02-29 23:45", seed=14)
        store.write_frame(wide({A: old, B: old}))
        cursor = store.changes().cursor
        new = old.loc["2024-01-15":"2024-02-15"] + 1
        new.loc[:"2024-01-31 23:45"] = np.nan  # no value in January
        assert store.write_frame(wide({A: new, B: new * np.nan}), mode="update") == 1
        assert [(tuple(i.key.values()), i.chunk) for i in store.changes(cursor).items] == [
            (A, 2024 * 12 + 1)]
        assert_series_exact(store.read(key(n=1)), dense(new.combine_first(old)))
        for mode in ("insert", "update"):
            assert store.write_frame(wide({C: old * np.nan}), mode=mode) == 0
        assert store.write_frame(wide({C: old * np.nan}), mode="replace") == 0
        assert store.write_frame(pd.DataFrame(index=old.index)) == 0
        empty = wide({A: old.iloc[:0], C: old.iloc[:0]})
        assert store.write_frame(empty, mode="replace") == 2  # A's two months deleted
        assert [tuple(k.values()) for k in store.keys()] == [B]

    def test_frame_insert_over_an_existing_series_writes_nothing(
            self, store: curvestore.Store) -> None:
        existing = curve("2024-03-01", periods=10, seed=15)
        store.write_frame(wide({B: existing}))
        cursor = store.changes().cursor
        frame = wide({A: existing, B: existing + 1, C: existing})
        with pytest.raises(SeriesExistsError) as info:
            store.write_frame(frame)
        assert info.value.keys == [key(n=2)]
        assert store.write_frame(wide({B: existing * np.nan, C: existing})) == 1
        with pytest.raises(SeriesExistsError):
            store.write_frame(wide({A: existing, C: existing}), mode="insert")
        assert [(tuple(i.key.values()), i.deleted) for i in store.changes(cursor).items] == [
            (C, False)]
        assert_series_exact(store.read(key(n=2)), dense(existing))

    def test_frame_columns_of_any_numeric_dtype_and_order(self, store: curvestore.Store
                                                          ) -> None:
        index = pd.date_range("2024-05-31 23:00", periods=8, freq=FREQ, tz=TZ)
        frame = pd.DataFrame({
            A: np.arange(8, dtype=np.int64) * 2**50,
            B: np.arange(8, dtype=np.float32) / 4,
            C: pd.array([1.5, None, 3, 4, None, 6, 7, 8], dtype="Float64"),
            D: np.array([2**60, None, 3, 4.5, 5, 6, 7, 8], dtype=object),
            ("c", "x", 5): np.arange(8, dtype=np.uint8),
        }, index=index)
        frame.columns = pd.MultiIndex.from_tuples(list(frame.columns), names=list(KEYS))
        shuffled = frame.iloc[[3, 0, 7, 1, 6, 2, 5, 4]]
        assert store.write_frame(shuffled) == 10
        got = assert_frame_read(store)
        in_key_order = frame[[A, B, D, C, ("c", "x", 5)]].astype(np.float64)
        pd.testing.assert_frame_equal(got, in_key_order, check_freq=False, check_exact=True)
        # a flat Index of tuples names the same series
        flat = frame.astype(np.float64) + 1
        flat.columns = pd.Index(list(frame.columns), tupleize_cols=False)
        assert not isinstance(flat.columns, pd.MultiIndex)
        assert store.write_frame(flat, mode="replace") == 10
        pd.testing.assert_frame_equal(store.read_frame(), in_key_order + 1,
                                      check_freq=False, check_exact=True)

    # -- validation ------------------------------------------------------------------------
    def _bad_frames(self) -> dict[str, tuple[type[Exception], str, Any]]:
        """Frames refused whole: (error, text the message holds, frame); the first column
        is always valid."""
        index = pd.date_range("2024-01-01", periods=3, freq=FREQ, tz=TZ)
        good = np.array([1.0, 2.0, 3.0])

        def frame(other: Any, on: Any = index, labels: Any = (A, B)) -> pd.DataFrame:
            out = pd.DataFrame({0: good, 1: other}, index=on)
            out.columns = (pd.MultiIndex.from_tuples(labels) if isinstance(labels, tuple)
                           else labels)
            return out

        at = str(index[1])
        return {
            "not a frame": (InvalidDataError, "DataFrame", pd.Series(good, index=index)),
            "not a datetime index": (InvalidDataError, "DatetimeIndex", frame(good, [1, 2, 3])),
            "naive": (InvalidDataError, "naive", frame(good, index.tz_localize(None))),
            "NaT": (InvalidDataError, "NaT", frame(good, pd.DatetimeIndex(
                [index[0], pd.NaT, index[2]]))),
            "duplicates": (InvalidDataError, "duplicate", frame(good, index[[0, 1, 1]])),
            "years": (GridError, "supported years",
                      frame(good, pd.date_range("2500-01-01", periods=3, freq=FREQ, tz=TZ,
                                                unit="us"))),
            "off grid": (GridError, "grid", frame(good, index + pd.Timedelta("7min"))),
            "infinite": (InvalidDataError, at, frame([1.0, -np.inf, 3.0])),
            "strings": (InvalidDataError, "numeric", frame(["1", "x", "3"])),
            "inexact": (InvalidDataError, at,
                        frame(np.array([1, 2**53 + 1, 3], dtype=np.int64))),
            "duplicate columns": (InvalidDataError, "twice", frame(good, labels=(A, A))),
            "bad key": (InvalidKeyError, "int", frame(good, labels=(A, ("a", "load", "2")))),
            "short key": (InvalidKeyError, "3", frame(good, labels=pd.Index(
                [A, ("a", "load")], tupleize_cols=False))),
            "level names": (InvalidKeyError, "order", frame(good, labels=pd.MultiIndex.from_tuples(
                [A, B], names=["kind", "site", "n"]))),
        }

    def test_frame_invalid_input_writes_nothing(self, store: curvestore.Store) -> None:
        kept = curve("2024-01-01", periods=4, seed=16)
        store.write(key(n=1), kept)
        cursor = store.changes().cursor
        for name, (error, text, frame) in self._bad_frames().items():
            for mode in ("insert", "update", "replace"):
                with pytest.raises(error) as info:
                    store.write_frame(frame, mode=mode)
                assert text in str(info.value), (name, str(info.value))
                assert isinstance(info.value, ValueError)
                if name in ("infinite", "strings", "inexact"):
                    assert repr(B) in str(info.value), (name, str(info.value))
        assert store.keys() == [key(n=1)]
        assert store.changes(cursor).items == []
        assert_series_exact(store.read(key(n=1)), dense(kept))

    def test_frame_write_to_read_only_store(self, store: curvestore.Store, backend_url: str
                                            ) -> None:
        frame = wide({A: curve("2024-01-01", periods=4)})
        with self.reopen(backend_url, read_only=True) as read_only:
            with pytest.raises(ReadOnlyError):
                read_only.write_frame(frame)
            assert read_only.read_frame().shape == (0, 0)
        with pytest.raises(curvestore.errors.ConfigurationError):
            store.write_frame(frame, mode="upsert")
        assert store.keys() == []

    # -- reads -----------------------------------------------------------------------------
    @pytest.mark.parametrize(("filter", "start", "end"), [
        (None, None, None),
        (None, "2024-02-10 06:00", "2024-03-03 12:00"),
        (None, "2024-02-10 05:50", "2024-03-03 12:10"),  # bounds off the grid
        (None, None, "2024-01-31 23:45"),  # January: A only
        (None, "2024-03-20", None),
        ({"site": "a"}, None, None),
        ({"kind": "load"}, "2024-02-15", "2024-03-20"),
        ({"n": 2}, None, None),
        ({"site": "b", "kind": "prod"}, "2024-02-01", None),
    ])
    def test_read_frame_windows_and_filters(self, store: curvestore.Store, filter: Any,
                                            start: Any, end: Any) -> None:
        store.write_frame(wide({
            A: curve("2024-01-20", end="2024-03-05", seed=20, nan=0.3),
            B: curve("2024-02-01", end="2024-02-10", seed=21, nan=0.3),
            D: curve("2024-03-20", end="2024-03-25", seed=22, nan=0.3),
        }))
        store.write_frame(wide({C: curve("2024-02-01", end="2024-03-31", seed=23, nan=0.3)}))
        assert_frame_read(store, filter, start, end)

    def test_read_frame_gaps_and_empty_results(self, store: curvestore.Store) -> None:
        empty = assert_frame_read(store)
        assert isinstance(empty.columns, pd.MultiIndex)
        assert list(empty.columns.names) == list(KEYS)
        assert empty.index.freq is not None
        store.write_frame(wide({B: curve("2024-02-01", end="2024-02-10", seed=24),
                                D: curve("2024-03-20", end="2024-03-25", seed=25)}))
        got = assert_frame_read(store, {"kind": "load"})
        assert len(got) == len(pd.date_range("2024-02-01", "2024-03-25", freq=FREQ, tz=TZ))
        assert got.loc["2024-02-10 00:15":"2024-03-19 23:45"].isna().all().all()
        for window in (("2024-02-15", "2024-03-01"), ("2025-01-01", None), (None, "2023-12-31"),
                       ("2024-03-02", "2024-03-01")):
            assert_frame_read(store, None, *window)
        assert_frame_read(store, {"site": "zz"})
        with pytest.raises(InvalidKeyError):
            store.read_frame({"nope": 1})
        with pytest.raises(InvalidDataError):
            store.read_frame(None, "not a time")

    @pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
    def test_frame_time_units(self, store: curvestore.Store, backend_url: str, unit: str
                              ) -> None:
        written = curve("2024-03-30", end="2024-04-01", seed=26, nan=0.1)
        written.index = written.index.as_unit(unit)
        frame = wide({A: written, B: written * 2})
        store.write_frame(frame)
        got = assert_frame_read(store)
        assert got.index.unit == pd.date_range("2024-01-01", periods=1, freq="h").unit
        in_store_unit = frame.set_axis(frame.index.as_unit(got.index.unit))
        pd.testing.assert_frame_equal(got, in_store_unit, check_exact=True, check_freq=False)
        with self.reopen(backend_url, time_unit=unit) as other:
            assert other.read_frame().index.unit == unit
            assert_frame_read(other)
