"""Fixtures and helpers shared by the shipped suites: the store every test starts from, the
curves it writes and the exact comparison of what it reads.

A backend's test class defines one fixture, ``backend_url_factory``: a callable returning a
URL to a new, **empty** location on each call (``backend_url``, ``other_backend_url``,
``store`` and ``reopen`` derive from it)::

    import pytest
    from curvestore.testing import StoreSemantics

    class TestMine(StoreSemantics):
        @pytest.fixture
        def backend_url_factory(self, tmp_path):
            names = iter(range(1_000_000))
            return lambda: f"mine://{tmp_path}/s{next(names)}"

The ``store`` fixture creates a store with keys ``site: str, kind: str, n: int`` at 15 minutes
in Europe/Paris with monthly chunks (so DST changes are exercised), and closes it afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import curvestore

__all__ = [
    "FREQ",
    "KEYS",
    "PLAIN_NAME_KEYS",
    "TZ",
    "StoreFixtures",
    "assert_series_exact",
    "curve",
    "dense",
    "key",
    "month",
    "ns_index",
    "plain_name_key",
    "read_expected",
    "with_option",
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


def ns_index(series: pd.Series, tz: str = TZ) -> pd.Series:
    out = series.copy()
    out.index = pd.DatetimeIndex(out.index).as_unit("ns").tz_convert(tz)
    return out


def dense(series: pd.Series, freq: str = FREQ, tz: str = TZ) -> pd.Series | None:
    """What a read returns for ``series``: first to last valid point, on the full grid."""
    series = ns_index(series, tz)
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


def month(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def read_expected(store: curvestore.Store, series_key: Mapping[str, Any], start: Any = None,
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


def with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option
