"""``InputSemantics``: input the store would alter, or could not store, is refused the same way
on every backend, with a typed error naming the first offending point, and nothing is written.

Mixed into :class:`~curvestore.testing.store.StoreSemantics` (so every backend runs it); it uses
that suite's ``store`` fixture (keys ``site: str, kind: str, n: int``) and its ``freq``/``tz``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import GridError, InvalidDataError

__all__ = ["InputSemantics"]

_LONG_DOUBLE_IS_WIDER = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def _key(n: int) -> dict[str, Any]:
    return {"site": "a", "kind": "load", "n": n}


class InputSemantics:
    """Values float64 cannot hold exactly and timestamps outside the supported years."""

    freq: ClassVar[str]
    tz: ClassVar[str]

    def _index(self, periods: int, start: str = "2024-01-01", unit: str = "ns"
               ) -> pd.DatetimeIndex:
        return pd.date_range(start, periods=periods, freq=self.freq, tz=self.tz, unit=unit)

    def _rounding_cases(self) -> dict[str, Any]:
        """Values whose second point float64 would round (or overflow)."""
        cases: dict[str, Any] = {
            "int64 2**53+1": np.array([1, 2**53 + 1, 3], dtype=np.int64),
            "int64 max": np.array([1, 2**63 - 1, 3], dtype=np.int64),
            "int64 -(2**53)-1": np.array([1, -(2**53) - 1, 3], dtype=np.int64),
            "uint64 max": np.array([1, 2**64 - 1, 3], dtype=np.uint64),
            "nullable Int64": pd.array([None, 2**53 + 1, 3], dtype="Int64"),
            "nullable UInt64": pd.array([None, 2**64 - 1, 3], dtype="UInt64"),
            "python int": np.array([1.5, 2**53 + 1, None], dtype=object),
            "python int beyond float64": np.array([1, 10**400, 3], dtype=object),
            "negative python int beyond float64": np.array([1, -(10**400), 3], dtype=object),
            "decimal": np.array([Decimal("1"), Decimal("0.1"), Decimal("2")], dtype=object),
        }
        if _LONG_DOUBLE_IS_WIDER:
            third = np.array([1, 1, 3], dtype=np.longdouble)
            third[1] /= 3
            cases["longdouble 1/3"] = third
            huge = np.array([1, 1, 3], dtype=np.longdouble)
            huge[1] = np.longdouble(10) ** 400
            cases["longdouble beyond float64"] = huge
        return cases

    def test_values_float64_would_alter_are_refused(self, store: curvestore.Store) -> None:
        kept = pd.Series([1.0, 2.0], index=self._index(2))
        store.write(_key(1), kept)
        cursor = store.changes().cursor
        good = pd.Series([4.0, 5.0, 6.0], index=self._index(3))
        for name, values in self._rounding_cases().items():
            index = self._index(3)
            bad = pd.Series(values, index=index)
            for mode in ("insert", "update", "replace"):
                calls = (  # a new series, the existing one, a batch with a good series first
                    lambda s=bad, m=mode: store.write(_key(2), s, mode=m),
                    lambda s=bad, m=mode: store.write(_key(1), s, mode=m),
                    lambda s=bad, m=mode: store.write_many(
                        {("a", "load", 3): good, ("a", "load", 2): s}, mode=m),
                )
                for call in calls:
                    with pytest.raises(InvalidDataError, match="exactly") as info:
                        call()
                    assert str(index[1]) in str(info.value), (name, str(info.value))
                    assert isinstance(info.value, ValueError)
            assert store.keys() == [_key(1)], name
        assert store.changes(cursor).items == []
        got = store.read(_key(1))
        assert got is not None and got.tolist() == [1.0, 2.0]

    def test_values_float64_holds_exactly_are_stored(self, store: curvestore.Store) -> None:
        cases: list[Any] = [
            np.array([-(2**53), 2**53, 2**62, -(2**63)], dtype=np.int64),
            np.array([0, 2**53, 2**63, 2**64 - 2**11], dtype=np.uint64),
            pd.array([2**53, None, -(2**62), 7], dtype="Int64"),
            np.array([2**70, 0.5, None, -(2**1000)], dtype=object),
            np.array([Decimal("0.25"), Decimal("-3"), Decimal("NaN"), Decimal("1e2")],
                     dtype=object),
            np.array([0.5, -2.0**60, np.nan, 3.0], dtype=np.longdouble),
            np.array([0.1, -2.5, np.nan, 3.0], dtype=np.float32),
        ]
        for n, values in enumerate(cases):
            written = pd.Series(values, index=self._index(4))
            store.write(_key(n), written)
            expected = np.array([float(v) if v is not None and v is not pd.NA else np.nan
                                 for v in values], dtype=np.float64)
            got = store.read(_key(n), drop_bounds_na=False)
            assert got is not None
            got = got.reindex(written.index)
            assert np.array_equal(got.to_numpy(), expected, equal_nan=True), (values, got)

    def test_timestamps_outside_supported_years_are_refused(self, store: curvestore.Store
                                                            ) -> None:
        kept = pd.Series([1.0, 2.0], index=self._index(2, "2199-12-31 23:00"))
        store.write(_key(1), kept)
        cursor = store.changes().cursor
        # past the last instant nanoseconds hold (2262-04-11 23:47 UTC) once in local time
        late = pd.Timestamp("2262-04-11 20:00", tz="UTC").as_unit("us").tz_convert(self.tz)
        cases = {
            "2500": self._index(3, "2500-01-01", unit="us"),
            "2262": self._index(3, "2262-04-11 00:00", unit="us"),
            "end of 2199 into 2200": self._index(3, "2199-12-31 23:30"),
            "1969": self._index(3, "1969-12-31 23:30"),
            "1900": self._index(3, "1900-01-01"),
            "irregular across 2262": pd.DatetimeIndex(
                [pd.Timestamp("2199-12-31 23:45", tz=self.tz).as_unit("us"), late]),
            "unsorted": pd.DatetimeIndex(
                [pd.Timestamp("2100-01-01", tz=self.tz).as_unit("us"), late,
                 pd.Timestamp("2000-01-01", tz=self.tz).as_unit("us")]),
        }
        for name, index in cases.items():
            bad = pd.Series(np.arange(float(len(index))), index=index)
            for mode in ("insert", "update", "replace"):
                with pytest.raises(GridError, match="1970-2199") as info:
                    store.write(_key(2), bad, mode=mode)
                assert "outside the supported years" in str(info.value), name
                with pytest.raises(GridError):
                    store.write_many({("a", "load", 3): kept, ("a", "load", 2): bad}, mode=mode)
        assert store.keys() == [_key(1)]
        assert store.changes(cursor).items == []

    @pytest.mark.parametrize("bounds", [
        ("1000-01-01", "2500-01-01"),
        (pd.Timestamp("1000-01-01", tz="UTC"), pd.Timestamp("2262-04-11 23:00", tz="UTC")),
        (None, pd.Timestamp("2262-04-11 23:00", tz="Asia/Tokyo")),
        (np.datetime64("1677-09-22"), np.datetime64("2262-04-11T00:00")),
    ], ids=["str", "utc", "tokyo", "datetime64"])
    def test_read_bounds_beyond_supported_years(self, store: curvestore.Store,
                                                bounds: tuple[Any, Any]) -> None:
        written = pd.Series([1.0, 2.0, 3.0], index=self._index(3, "2199-12-31 23:00"))
        store.write(_key(1), written)
        start, end = bounds
        got = store.read(_key(1), start, end)
        assert got is not None and got.tolist() == [1.0, 2.0, 3.0]
        assert [k for k, _ in store.read_many(None, start, end)] == [_key(1)]
        assert store.read(_key(1), end, None) is None
        assert list(store.read_many(None, end, None)) == []
        if start is not None:
            assert store.read(_key(1), None, start) is None
