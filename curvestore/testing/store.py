"""``StoreSemantics``: the store behaviour every backend must reproduce, through the public API.

Subclass it in a backend's test module and provide a ``backend_url`` fixture returning a URL
to an **empty** location (a fresh store is created there for each test)::

    import pytest
    from curvestore.testing.store import StoreSemantics

    class TestMine(StoreSemantics):
        @pytest.fixture
        def backend_url(self, tmp_path):
            return f"mine://{tmp_path}/s"

        @pytest.fixture                 # optional: a second empty location, used to prove
        def other_backend_url(self, tmp_path):   # that cursors do not cross stores
            return f"mine://{tmp_path}/other"

The ``store`` fixture creates a store with keys ``site: str, kind: str, n: int`` at 15 minutes
in Europe/Paris with monthly chunks (so DST changes are exercised), and closes it afterwards.
The tests compare every read with what pandas computes from the written data, bit for bit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    CurvestoreError,
    InvalidCursorError,
    InvalidDataError,
    InvalidKeyError,
    ReadOnlyError,
    SeriesExistsError,
)
from curvestore.testing.cursors import ForgedCursorChecks
from curvestore.testing.inputs import InputSemantics

__all__ = [
    "FREQ",
    "KEYS",
    "PLAIN_NAME_KEYS",
    "TZ",
    "StoreFixtures",
    "StoreSemantics",
    "assert_series_exact",
    "curve",
    "dense",
]

KEYS: dict[str, type] = {"site": str, "kind": str, "n": int}
#: Key names users choose (forecast versions, kinds, ids...) that backends and protocols use for
#: their own columns, fields and parameters: every backend keeps those out of the key namespace
#: (they carry the reserved prefix, ``_``).
PLAIN_NAME_KEYS: dict[str, type] = {
    "version": int, "id": str, "start": str, "end": str, "count": int, "size": int,
    "data": str, "kind": str, "type": str, "value": int, "chunk": int, "key": str,
    "payload": str, "deleted": int, "cursor": str, "limit": int,
}
_UTC = dt.timezone(dt.timedelta(0))
FREQ = "15min"
TZ = "Europe/Paris"


# -- helpers (also used by the other suites) ----------------------------------------------------

def curve(start: Any, periods: int | None = None, end: Any = None, *, freq: str = FREQ,
          tz: str = TZ, seed: int = 0, nan: float = 0.0, value: float | None = None
          ) -> pd.Series:
    """A series on ``freq`` from ``start`` (``periods`` points or up to ``end`` inclusive).

    Values are full-precision random floats (so any lossy step shows), or ``value`` everywhere;
    a fraction ``nan`` of the inner points is NaN; the first and last points are always valid.
    """
    index = pd.date_range(start=pd.Timestamp(start, tz=tz) if not isinstance(start, pd.Timestamp)
                          else start, end=None if end is None else pd.Timestamp(end, tz=tz),
                          periods=periods, freq=freq)
    rng = np.random.default_rng(seed)
    if value is None:
        values = rng.standard_normal(len(index)) * 1000.0
    else:
        values = np.full(len(index), float(value))
    if nan and len(index) > 2:
        holes = rng.random(len(index)) < nan
        holes[0] = holes[-1] = False
        values[holes] = np.nan
    return pd.Series(values, index=index)


def _ns(series: pd.Series, tz: str = TZ) -> pd.Series:
    out = series.copy()
    out.index = pd.DatetimeIndex(out.index).as_unit("ns").tz_convert(tz)
    return out


def dense(series: pd.Series, freq: str = FREQ, tz: str = TZ) -> pd.Series | None:
    """What a read returns for ``series``: first to last valid point, on the full grid."""
    series = _ns(series, tz)
    valid = series.dropna()
    if valid.empty:
        return None
    index = pd.date_range(valid.index[0], valid.index[-1], freq=freq).as_unit("ns")
    return series.reindex(index)


def assert_series_exact(actual: pd.Series | None, expected: pd.Series | None,
                        tz: str = TZ) -> None:
    """Same timestamps, tz-aware in ``tz``, same NaN positions and bit-identical values."""
    if expected is None:
        assert actual is None, f"expected no data, read {actual!r}"
        return
    assert actual is not None, "expected data, read None"
    assert isinstance(actual, pd.Series)
    assert isinstance(actual.index, pd.DatetimeIndex)
    assert str(actual.index.tz) == tz, f"read tz {actual.index.tz}, store tz {tz}"
    assert actual.dtype == np.float64
    a_ns = actual.index.as_unit("ns").asi8
    e_ns = pd.DatetimeIndex(expected.index).as_unit("ns").asi8
    assert len(a_ns) == len(e_ns), f"read {len(a_ns)} points, expected {len(e_ns)}"
    if len(a_ns):
        assert (a_ns == e_ns).all(), (
            f"index differs: read {actual.index[0]}..{actual.index[-1]}, expected "
            f"{expected.index[0]}..{expected.index[-1]}"
        )
    a = actual.to_numpy(dtype=np.float64)
    e = expected.to_numpy(dtype=np.float64)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    assert (a_nan == e_nan).all(), f"NaN positions differ at {np.flatnonzero(a_nan != e_nan)[:5]}"
    diff = a[~a_nan].view(np.uint64) != e[~e_nan].view(np.uint64)
    assert not diff.any(), f"values differ (bitwise) at {np.flatnonzero(diff)[:5]}"


def key(site: str = "a", kind: str = "load", n: int = 1) -> dict[str, Any]:
    return {"site": site, "kind": kind, "n": n}


def plain_name_key(keys: Mapping[str, type], i: int, **changed: Any) -> dict[str, Any]:
    """Series ``i`` of a store keyed by ``keys``: ``"<name>-<i>"`` for a str key, ``i`` for
    an int key (``changed`` overrides some)."""
    return {**{n: (i if t is int else f"{n}-{i}") for n, t in keys.items()}, **changed}


def _month(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def _read(store: curvestore.Store, series_key: Mapping[str, Any], start: Any = None,
          end: Any = None, drop_bounds_na: bool = True) -> pd.Series:
    """``store.read`` where the written data must be found: None fails the test, naming the read."""
    got = store.read(series_key, start, end, drop_bounds_na=drop_bounds_na)
    assert got is not None, (
        f"read of {dict(series_key)} on [{start!r}, {end!r}] (drop_bounds_na={drop_bounds_na}) "
        "returned None, expected the written data")
    return got


class StoreFixtures:
    """Fixtures shared by the suites. A backend's test class defines ``backend_url_factory``
    (a callable giving a URL to a new, empty location on each call); ``backend_url``,
    ``other_backend_url``, ``store`` and ``reopen`` derive from it."""

    keys: ClassVar[dict[str, type]] = KEYS
    freq: ClassVar[str] = FREQ
    tz: ClassVar[str] = TZ
    chunking: ClassVar[str] = "month"

    @pytest.fixture
    def backend_url_factory(self) -> Callable[[], str]:
        """Override: a callable returning a URL to a new, empty location on each call."""

        def missing() -> str:
            pytest.fail(f"{type(self).__name__} must define a `backend_url_factory` fixture "
                        "returning a callable that gives URLs to new, empty locations")

        return missing

    @pytest.fixture
    def backend_url(self, backend_url_factory: Callable[[], str]) -> str:
        """The location of the store under test."""
        return backend_url_factory()

    @pytest.fixture
    def other_backend_url(self, backend_url_factory: Callable[[], str]) -> str | None:
        """A second empty location (None: tests that need one are skipped)."""
        return backend_url_factory()

    @pytest.fixture
    def store(self, backend_url: str) -> Iterator[curvestore.Store]:
        s = curvestore.create_store(backend_url, keys=self.keys, freq=self.freq, tz=self.tz,
                                    chunking=self.chunking)
        yield s
        s.close()

    #: The keys of ``plain_name_store``: a backend whose locations have fixed keys (a Django
    #: model's fields) may drop names its format owns, and say which in its test class.
    plain_name_keys: ClassVar[dict[str, type]] = PLAIN_NAME_KEYS

    @pytest.fixture
    def plain_name_url(self, backend_url_factory: Callable[[], str]) -> str:
        """An empty location for a store keyed by ``plain_name_keys``."""
        return backend_url_factory()

    @pytest.fixture
    def plain_name_store(self, plain_name_url: str) -> Iterator[curvestore.Store]:
        """A store keyed by names backends once took for themselves (``PLAIN_NAME_KEYS``)."""
        s = curvestore.create_store(plain_name_url, keys=self.plain_name_keys, freq=self.freq,
                                    tz=self.tz, chunking=self.chunking)
        yield s
        s.close()

    def reopen(self, url: str, **kwargs: Any) -> curvestore.Store:
        """Open the store at ``url`` again (a new connection, as another process would)."""
        return curvestore.open_store(url, **kwargs)

    def feed(self, store: curvestore.Store, cursor: str | None = None, **kwargs: Any) -> list:
        """Every feed item after ``cursor``, paging until the end."""
        items = []
        for _ in range(100_000):
            page = store.changes(cursor, **kwargs)
            items += page.items
            cursor = page.cursor
            if not page.has_more:
                return items
        raise AssertionError("the change feed never ends (has_more stays true)")


def _with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


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


class StoreSemantics(InputSemantics, ForgedCursorChecks, StoreFixtures):
    """Store semantics (ARCHITECTURE section 2) through the public API, on any backend."""

    # -- round trips -----------------------------------------------------------------------
    def test_round_trip_exact(self, store: curvestore.Store) -> None:
        s = curve("2024-01-05", end="2024-03-20", seed=1, nan=0.1)
        s.iloc[5] = -0.0
        s.iloc[6] = 5e-324
        s.iloc[7] = 1.7976931348623157e308
        assert store.write(key(), s) == 3
        got = _read(store, key())
        assert_series_exact(got, dense(s))
        assert got.index.tz is not None and str(got.index.tz) == TZ
        assert np.signbit(got.iloc[5]) and got.iloc[5] == 0.0

    def test_round_trip_input_in_another_tz(self, store: curvestore.Store) -> None:
        s = curve("2024-01-31 20:00", periods=40, tz="UTC", seed=2)
        store.write(key(), s)
        got = _read(store, key())
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
        got = _read(store, key(n=1), "2024-03-31 01:45", "2024-03-31 03:00")
        assert list(got.index) == [pd.Timestamp("2024-03-31 01:45+01:00"),
                                   pd.Timestamp("2024-03-31 03:00+02:00")]
        # a full March holds 4 points fewer than 31 days, a full October 4 more
        full_march = _read(store, key(n=1), "2024-03-01", "2024-03-31 23:45",
                           drop_bounds_na=False)
        full_october = _read(store, key(n=2), "2024-10-01", "2024-10-31 23:45",
                             drop_bounds_na=False)
        assert len(full_march) == 31 * 96 - 4
        assert len(full_october) == 31 * 96 + 4
        assert full_march.index[0] == _month("2024-03-01")

    def test_unsorted_input_is_read_sorted(self, store: curvestore.Store) -> None:
        s = curve("2024-02-01", periods=50, seed=5)
        store.write(key(), s.iloc[::-1])
        assert_series_exact(store.read(key()), dense(s))

    def test_nullable_and_integer_input(self, store: curvestore.Store) -> None:
        index = pd.date_range("2024-01-01", periods=4, freq=FREQ, tz=TZ)
        store.write(key(n=1), pd.Series([1, 2, 3, 4], index=index))
        store.write(key(n=2), pd.Series([1.5, None, 3.0, 4.0], index=index, dtype="Float64"))
        assert _read(store, key(n=1)).tolist() == [1.0, 2.0, 3.0, 4.0]
        got = _read(store, key(n=2))
        assert got.dtype == np.float64 and np.isnan(got.iloc[1]) and got.iloc[3] == 4.0

    # -- time units: pandas 3 makes microsecond timestamps, pandas 2 nanoseconds -------------
    def test_round_trip_compares_equal_in_pandas_own_unit(self, store: curvestore.Store) -> None:
        written = pd.Series(np.arange(400.0) - 3.5,
                            index=pd.date_range("2024-03-30", periods=400, freq="15min", tz=TZ))
        store.write(key(), written)
        pd.testing.assert_series_equal(_read(store, key()), written)
        [(_, streamed)] = list(store.read_many({"site": "a"}))
        pd.testing.assert_series_equal(streamed, written)
        window = written["2024-03-31 01:00":"2024-03-31 04:00"]
        pd.testing.assert_series_equal(
            _read(store, key(), "2024-03-31 01:00", "2024-03-31 04:00"), window)
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
                      self.reopen(_with_option(backend_url, f"time_unit={unit}"))):
            with other:
                got = _read(other, key())
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
        assert_series_exact(_read(store, key(), drop_bounds_na=False).dropna(), _ns(new))

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

    # -- missing data, keys ------------------------------------------------------------------
    def test_missing_series_reads_none(self, store: curvestore.Store) -> None:
        assert store.read(key()) is None
        store.write(key(n=1), curve("2024-01-01", periods=4))
        assert store.read(key(n=2)) is None
        assert store.read(key(n=1), "2025-01-01", "2025-12-31") is None
        assert list(store.read_many({"n": 2})) == []

    @pytest.mark.parametrize("bad", [
        {"site": "a", "kind": "load"},
        {"site": "a"},
        {},
        {"site": "a", "kind": "load", "n": 1, "extra": "x"},
        {"site": "a", "kind": "load", "n": "1"},
        {"site": 1, "kind": "load", "n": 1},
        {"site": "a", "kind": "load", "n": True},
        {"site": "a", "kind": "load", "n": 1.0},
        {"site": None, "kind": "load", "n": 1},
        {"site": "a\udc80", "kind": "load", "n": 1},
        {"site": "a", "kind": "load", "n": 2**63},
    ], ids=["partial", "site-only", "empty", "unknown", "str-for-int", "int-for-str",
            "bool-for-int", "float-for-int", "none", "lone-surrogate", "beyond-int64"])
    def test_invalid_keys_raise(self, store: curvestore.Store, bad: dict[str, Any]) -> None:
        s = curve("2024-01-01", periods=4)
        for call in (lambda: store.write(bad, s), lambda: store.write(bad, s, mode="update"),
                     lambda: store.read(bad), lambda: store.delete(bad)):
            with pytest.raises(InvalidKeyError) as info:
                call()
            assert isinstance(info.value, ValueError)
        assert store.keys() == []
        assert store.changes().items == []

    @pytest.mark.parametrize("bad", [{"nope": "a"}, {"n": "1"}, {"site": 3}, {"n": False},
                                     {"kind": "\ud800"}, {"n": -(2**63) - 1}])
    def test_invalid_filters_raise(self, store: curvestore.Store, bad: dict[str, Any]) -> None:
        for call in (lambda: list(store.read_many(bad)), lambda: store.keys(bad),
                     lambda: store.delete_many(bad), lambda: store.max_timestamp(bad),
                     lambda: store.changes(filter=bad)):
            with pytest.raises(InvalidKeyError):
                call()

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
        expected = s.loc[_month("2024-01-10 06:00"):_month("2024-02-03 12:00")]
        assert_series_exact(store.read(key(), _STARTS[form], _ENDS[form]), dense(expected))
        assert_series_exact(store.read(key(), _STARTS[form], None),
                            dense(s.loc[_month("2024-01-10 06:00"):]))
        assert_series_exact(store.read(key(), None, _ENDS[form]),
                            dense(s.loc[:_month("2024-02-03 12:00")]))
        (_, many), = store.read_many({"site": "a"}, _STARTS[form], _ENDS[form])
        assert_series_exact(many, dense(expected))

    @pytest.mark.parametrize("none", [None, pd.NaT, float("nan")], ids=["None", "NaT", "nan"])
    def test_read_unbounded(self, store: curvestore.Store, none: Any) -> None:
        s = curve("2024-01-20", end="2024-02-10", seed=27, nan=0.1)
        store.write(key(), s)
        assert_series_exact(store.read(key(), none, none), dense(s))
        assert_series_exact(store.read(key(), none, "2024-01-25"),
                            dense(s.loc[:_month("2024-01-25")]))

    def test_read_end_is_inclusive(self, store: curvestore.Store) -> None:
        s = curve("2024-01-01", periods=100, seed=28)
        store.write(key(), s)
        got = _read(store, key(), s.index[10], s.index[20])
        assert len(got) == 11 and got.index[-1] == s.index[20]
        one = _read(store, key(), s.index[10], s.index[10])
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
        got = _read(store, key(), drop_bounds_na=False)
        # January + February (between) + March (DST: 4 fewer points) in full
        assert len(got) == 31 * 96 + 29 * 96 + 31 * 96 - 4
        assert got.index[0] == _month("2024-01-01")
        assert got.index[-1] == _month("2024-03-31 23:45")
        full = pd.date_range(_month("2024-01-01"), _month("2024-03-31 23:45"), freq=FREQ)
        expected = pd.concat([january, march]).reindex(full)
        assert_series_exact(got, expected)
        # a window inside the padded span is cut exactly; outside it, padding stops at periods
        window = _read(store, key(), "2024-01-02", "2024-05-15", drop_bounds_na=False)
        assert window.index[0] == _month("2024-01-02")
        assert window.index[-1] == _month("2024-03-31 23:45")
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

    # -- keys, max_timestamp, info ---------------------------------------------------------------
    def test_key_names_users_choose(self, plain_name_store: curvestore.Store,
                                    plain_name_url: str) -> None:
        """Keys named version, id, start, count, data, payload, deleted, cursor, limit...
        write, read, filter, update, delete, feed and reopen like any others."""
        store, keys = plain_name_store, self.plain_name_keys
        names = list(keys)
        last = names[-1]
        a, b = plain_name_key(keys, 1), plain_name_key(keys, 2)
        c = {**a, last: plain_name_key(keys, 3)[last]}  # a's twin but for the last key
        written = {
            "a": curve("2024-01-20", end="2024-03-05", seed=1, nan=0.1),
            "b": curve("2024-02-01", periods=500, seed=2),
            "c": curve("2024-03-30", end="2024-04-01", seed=3),
        }
        by_name = {"a": a, "b": b, "c": c}
        assert store.write_many({tuple(by_name[n].values()): s for n, s in written.items()}) \
            == 3 + 1 + 2
        for n, s in written.items():
            assert_series_exact(store.read(by_name[n]), dense(s))
        assert store.keys() == [a, c, b]
        assert store.info()["keys"] == {n: t.__name__ for n, t in keys.items()}
        for name in names:  # each name filters, alone and beside the others
            twins = [a] if name == last else [a, c]
            assert store.keys({name: a[name]}) == twins, name
            assert [k for k, _ in store.read_many({name: b[name]})] == [b], name
            assert store.max_timestamp({name: b[name]}) == written["b"].index[-1], name
            feed = self.feed(store, filter={name: a[name]}, limit=3)
            assert sorted({tuple(i.key.values()) for i in feed}) == sorted(
                tuple(k.values()) for k in twins), name
        assert store.keys({**b, names[0]: a[names[0]]}) == []
        # the write paths that read rows back (update's merge, replace's tombstones, delete)
        update = curve("2024-02-10", periods=50, value=7.0)
        store.write(a, update, mode="update")
        expected = _ns(update).combine_first(_ns(written["a"]))
        assert_series_exact(store.read(a), dense(expected))
        store.write(b, curve("2024-05-01", periods=20, seed=4), mode="replace")
        assert store.delete(c) == 2
        assert store.keys() == [a, b]
        assert [i.key for i in self.feed(store, filter={last: c[last]}) if i.deleted] == [c, c]
        store.close()
        with self.reopen(plain_name_url, keys=keys) as again:
            assert again.keys() == [a, b]
            assert_series_exact(again.read(a), dense(expected))
            assert again.read(c) is None

    def test_keys_filter_and_order(self, store: curvestore.Store) -> None:
        for k in [("b", "x", 10), ("a", "y", 2), ("a", "x", 10), ("a", "x", 2)]:
            store.write(dict(zip(KEYS, k, strict=True)), curve("2024-01-01", periods=3))
        listed = store.keys()
        assert [(d["site"], d["kind"], d["n"]) for d in listed] == [
            ("a", "x", 2), ("a", "x", 10), ("a", "y", 2), ("b", "x", 10)]
        assert store.keys({"n": 10}) == [{"site": "a", "kind": "x", "n": 10},
                                         {"site": "b", "kind": "x", "n": 10}]
        assert store.keys({"site": "a", "kind": "y"}) == [{"site": "a", "kind": "y", "n": 2}]
        assert store.keys({"site": "c"}) == []
        assert store.keys(None) == store.keys({})

    def test_max_timestamp(self, store: curvestore.Store) -> None:
        assert store.max_timestamp() is None
        a = curve("2024-01-01", periods=100, seed=64)
        b = curve("2024-02-01", periods=100, seed=65)
        b.iloc[-1] = b.iloc[-2] = np.nan  # trailing NaN is no value
        store.write(key(n=1), a)
        store.write(key(n=2), b)
        latest = store.max_timestamp()
        assert latest == b.index[-3]
        assert str(latest.tz) == TZ
        assert store.max_timestamp({"n": 1}) == a.index[-1]
        assert store.max_timestamp({"n": 3}) is None
        store.delete(key(n=2))
        assert store.max_timestamp() == a.index[-1]

    def test_verify_reads_back_every_chunk(self, store: curvestore.Store) -> None:
        from curvestore.core.verify import verify_store

        store.write(key("a"), curve("2024-01-30", periods=300, seed=1, nan=0.1))
        store.write(key("b"), curve("2024-03-01", periods=10, seed=2))
        store.delete(key("b"))
        report = verify_store(store)
        assert report.ok and (report.series, report.chunks) == (1, 2)
        assert report.payload_bytes == store.info()["payload_bytes"]

    def test_info_totals(self, store: curvestore.Store) -> None:
        empty = store.info()
        assert (empty["series"], empty["chunks"], empty["points"]) == (0, 0, 0)
        assert empty["freq"] == FREQ and empty["tz"] == TZ and empty["chunking"] == "month"
        assert empty["keys"] == {"site": "str", "kind": "str", "n": "int"}
        a = curve("2024-01-31", periods=200, seed=66, nan=0.25)
        b = curve("2024-03-01", periods=30, seed=67)
        store.write(key(n=1), a)
        store.write(key(n=2), b)
        info = store.info()
        assert info["series"] == 2
        assert info["chunks"] == 3
        assert info["points"] == int(a.notna().sum() + b.notna().sum())
        assert info["payload_bytes"] > 0
        assert info["store_id"] == store.config.store_id

    # -- lifecycle -------------------------------------------------------------------------------
    def test_data_survives_reopen(self, store: curvestore.Store, backend_url: str) -> None:
        a = curve("2024-01-01", end="2024-02-15", seed=68, nan=0.1)
        store.write(key(n=1), a)
        store.write(key(n=2), a * 2)
        store.delete(key(n=2))
        feed = self.feed(store)
        store_id = store.config.store_id
        store.close()
        with self.reopen(backend_url) as again:
            assert again.config.store_id == store_id
            assert (again.config.freq, again.config.tz) == (FREQ, TZ)
            assert again.keys() == [key(n=1)]
            assert_series_exact(again.read(key(n=1)), dense(a))
            assert self.feed(again) == feed
            again.write(key(n=3), a)
        with self.reopen(backend_url, keys=KEYS, freq=FREQ, tz=TZ, chunking="month") as third:
            assert third.keys() == [key(n=1), key(n=3)]

    def test_read_only_refuses_writes(self, store: curvestore.Store, backend_url: str) -> None:
        a = curve("2024-01-01", periods=10, seed=69)
        store.write(key(), a)
        for ro in (self.reopen(backend_url, read_only=True),
                   self.reopen(_with_option(backend_url, "read_only=true"))):
            with ro:
                assert ro.read_only
                for call in (lambda ro=ro: ro.write(key(n=2), a),
                             lambda ro=ro: ro.write(key(), a, mode="update"),
                             lambda ro=ro: ro.write_many({("a", "load", 3): a}),
                             lambda ro=ro: ro.delete(key()),
                             lambda ro=ro: ro.delete_many({"site": "a"})):
                    with pytest.raises(ReadOnlyError) as info:
                        call()
                    assert isinstance(info.value, PermissionError)
                assert_series_exact(ro.read(key()), dense(a))
                assert ro.keys() == [key()]
                assert len(ro.changes().items) == 1
        assert store.keys() == [key()]
        assert_series_exact(store.read(key()), dense(a))

    @pytest.mark.parametrize("conflict", [
        {"freq": "1h"}, {"tz": "UTC"}, {"chunking": "year"},
        {"keys": {"site": str, "kind": str}}, {"keys": {"site": str, "kind": str, "n": str}},
        {"keys": {"kind": str, "site": str, "n": int}},
    ], ids=["freq", "tz", "chunking", "fewer-keys", "key-type", "key-order"])
    def test_conflicting_config_raises(self, store: curvestore.Store, backend_url: str,
                                       conflict: dict[str, Any]) -> None:
        store.write(key(), curve("2024-01-01", periods=3))
        with pytest.raises(ConfigMismatchError) as info:
            self.reopen(backend_url, **conflict)
        assert isinstance(info.value, ValueError)
        assert set(info.value.differences) == set(conflict)
        settings = {"keys": KEYS, "freq": FREQ, "tz": TZ, "chunking": "month", **conflict}
        with pytest.raises(ConfigMismatchError):
            curvestore.create_store(backend_url, exist_ok=True, **settings)
        with self.reopen(backend_url, freq="15min", tz="Europe/Paris") as same:
            assert same.keys() == [key()]
        with curvestore.create_store(backend_url, exist_ok=True, keys=KEYS, freq="15min",
                                     tz=TZ) as same:
            assert same.config.store_id == store.config.store_id

    # -- change feed -------------------------------------------------------------------------------
    def _feed_scenario(self, store: curvestore.Store) -> list[list[tuple[str, str, bool]]]:
        """Run writes; return per commit the set of (site, month, deleted) the feed must show."""
        jan, feb, mar, apr = "2024-01", "2024-02", "2024-03", "2024-04"
        steps: list[list[tuple[str, str, bool]]] = []
        store.write(key("a"), curve("2024-01-20", end="2024-02-10", seed=70))
        steps.append([("a", jan, False), ("a", feb, False)])
        store.write(key("b"), curve("2024-03-01", periods=10, seed=71), mode="update")
        steps.append([("b", mar, False)])
        store.write(key("a"), curve("2024-02-20", end="2024-03-05", seed=72), mode="update")
        steps.append([("a", feb, False), ("a", mar, False)])
        store.write(key("a"), curve("2024-03-10", periods=10, seed=73), mode="replace")
        steps.append([("a", jan, True), ("a", feb, True), ("a", mar, False)])
        store.delete(key("b"))
        steps.append([("b", mar, True)])
        with pytest.raises(SeriesExistsError):
            store.write_many({("c", "load", 1): curve("2024-04-01", periods=5),
                              ("a", "load", 1): curve("2024-04-01", periods=5)})
        store.write_many({("c", "load", 1): curve("2024-04-01", periods=5),
                          ("d", "load", 1): curve("2024-03-31 23:00", periods=8)})
        steps.append([("c", apr, False), ("d", mar, False), ("d", apr, False)])
        store.write(key("b"), curve("2024-01-01", periods=5, seed=74))  # re-insert
        steps.append([("b", jan, False)])
        return steps

    @staticmethod
    def _label(item: Any) -> tuple[str, str, bool]:
        return item.key["site"], item.period_start.strftime("%Y-%m"), item.deleted

    def test_change_feed_every_change_once_in_commit_order(self, store: curvestore.Store
                                                           ) -> None:
        page = store.changes()
        assert page.items == [] and not page.has_more and isinstance(page.cursor, str)
        steps = self._feed_scenario(store)
        items = self.feed(store, None, limit=10_000)
        assert len(items) == sum(len(s) for s in steps)
        position = 0
        for expected in steps:  # commit order: each commit's changes form one block
            block = items[position:position + len(expected)]
            assert sorted(self._label(i) for i in block) == sorted(expected)
            position += len(expected)
        for item in items:
            assert set(item.key) == set(KEYS)
            assert item.period_start.tz is not None and str(item.period_start.tz) == TZ
            assert item.period_start == item.period_start.normalize().replace(day=1)
        versions: dict[Any, int] = {}
        for item in items:
            ident = (tuple(item.key.values()), item.chunk)
            assert item.version > versions.get(ident, -(2**63)), "versions must increase"
            versions[ident] = item.version
        # at the end of the feed: no more items, the cursor stays usable
        last = store.changes(store.changes(limit=10_000).cursor)
        assert last.items == [] and not last.has_more

    def test_change_feed_incremental_pages(self, store: curvestore.Store) -> None:
        cursor = store.changes().cursor
        seen = []
        for expected in self._feed_scenario_steps(store):
            page = store.changes(cursor)
            assert sorted(self._label(i) for i in page.items) == sorted(expected)
            assert not page.has_more
            seen += page.items
            cursor = page.cursor
        assert seen == self.feed(store)

    def _feed_scenario_steps(self, store: curvestore.Store) -> Iterator[list[Any]]:
        s = curve("2024-01-31 23:00", periods=8, seed=75)
        store.write(key("a"), s)
        yield [("a", "2024-01", False), ("a", "2024-02", False)]
        store.write(key("a"), s.iloc[:2], mode="replace")
        yield [("a", "2024-01", False), ("a", "2024-02", True)]
        yield []
        store.delete_many()
        yield [("a", "2024-01", True)]

    @pytest.mark.parametrize("limit", [1, 2, 3, 5])
    def test_change_feed_paging_equals_one_read(self, store: curvestore.Store, limit: int
                                                ) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000)
        assert not whole.has_more
        paged = []
        cursor = None
        for _ in range(1000):
            page = store.changes(cursor, limit=limit)
            # a backend may end pages on commit boundaries, so a page can exceed ``limit``
            assert page.items or not page.has_more, "a page made no progress"
            paged += page.items
            cursor = page.cursor
            if not page.has_more:
                break
        assert paged == whole.items
        again = store.changes(cursor, limit=limit)
        assert again.items == [] and not again.has_more

    def test_change_feed_filter(self, store: curvestore.Store) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000).items
        for where in ({"site": "a"}, {"site": "b"}, {"n": 1}, {"site": "zz"},
                      {"site": "d", "kind": "load", "n": 1}):
            expected = [i for i in whole if all(i.key[k] == v for k, v in where.items())]
            assert self.feed(store, filter=where, limit=10_000) == expected
            assert self.feed(store, filter=where, limit=2) == expected

    def test_change_feed_rejects_bad_limit(self, store: curvestore.Store) -> None:
        bad_limits: tuple[Any, ...] = (0, -1, "10")  # "10": a str, deliberately mistyped
        for limit in bad_limits:
            with pytest.raises(CurvestoreError):
                store.changes(limit=limit)

    def test_change_feed_cursor_from_another_store(self, store: curvestore.Store,
                                                   other_backend_url: str | None) -> None:
        from curvestore.core.cursor import encode_cursor

        store.write(key(), curve("2024-01-01", periods=3))
        foreign = [encode_cursor("0" * 32, (0,)), encode_cursor("not-this-store", (1, 2))]
        if other_backend_url is not None:
            with curvestore.create_store(other_backend_url, keys=KEYS, freq=FREQ, tz=TZ) as other:
                other.write(key(), curve("2024-01-01", periods=3))
                foreign.append(other.changes().cursor)
                foreign.append(other.changes(limit=1).cursor)
                with pytest.raises(InvalidCursorError):
                    other.changes(store.changes().cursor)
        for cursor in foreign:
            with pytest.raises(InvalidCursorError):
                store.changes(cursor)

    def test_change_feed_malformed_cursor(self, store: curvestore.Store) -> None:
        store.write(key(), curve("2024-01-01", periods=3))
        good = store.changes(limit=1).cursor
        flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
        for bad in ("", "garbage", "cv1.", "cv1.!!!!", good[: len(good) // 2], flipped,
                    good + "x", 123, b"bytes"):
            with pytest.raises(InvalidCursorError):
                store.changes(bad)  # type: ignore[arg-type]

    def test_change_feed_cursor_survives_reopen(self, store: curvestore.Store,
                                                backend_url: str) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000).items
        head = store.changes(limit=4)
        middle, done = head.cursor, len(head.items)
        assert 0 < done < len(whole)
        end = store.changes(limit=10_000).cursor
        store.close()
        with self.reopen(backend_url) as again:
            assert self.feed(again, middle) == whole[done:]
            assert again.changes(end).items == []
            again.write(key("e"), curve("2024-05-01", periods=3))
            (new,) = again.changes(end).items
            assert new.key == key("e") and not new.deleted
        with self.reopen(backend_url, read_only=True) as third:
            assert self.feed(third, middle) == [*whole[done:], new]

    # -- codecs ------------------------------------------------------------------------------------
    def test_codec_change_keeps_old_chunks_readable(self, store: curvestore.Store,
                                                    backend_url: str) -> None:
        pytest.importorskip("zstandard")
        assert store.codec == "lz4" and store.info()["codec"] == "lz4"
        a = curve("2024-01-01", periods=500, seed=76)
        store.write(key(n=1), a)
        store.close()
        a_update = curve("2024-02-10", periods=100, seed=77)
        b = curve("2024-01-15", periods=100, seed=78)
        with self.reopen(backend_url, codec="zstd") as zs:
            assert zs.codec == "zstd"
            zs.write(key(n=1), a_update, mode="update")
            zs.write(key(n=2), b)
        c = curve("2024-03-01", periods=10, seed=79)
        with self.reopen(_with_option(backend_url, "codec=none")) as plain:
            assert plain.codec == "none"
            plain.write(key(n=3), c)
        with self.reopen(backend_url) as again:
            assert again.codec == "lz4"  # the store's default is unchanged
            assert_series_exact(again.read(key(n=1)), dense(a_update.combine_first(a)))
            assert_series_exact(again.read(key(n=2)), dense(b))
            assert_series_exact(again.read(key(n=3)), dense(c))
            codecs = {(n, r.meta.codec)
                      for n in (1, 2, 3)
                      for r in again.backend.read_chunks(again.schema.key(key(n=n)))}
            assert codecs == {(1, "lz4"), (1, "zstd"), (2, "zstd"), (3, "none")}
            got = {d["n"]: v for d, v in again.read_many()}
            assert_series_exact(got[1], dense(a_update.combine_first(a)))
