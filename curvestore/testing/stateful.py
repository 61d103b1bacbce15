"""Random operation sequences checked against a plain-pandas model.

:class:`StoreModelMachine` is a Hypothesis ``RuleBasedStateMachine``: it runs random writes
(insert, update, replace on small windows of an hourly UTC store spanning three months, with
random NaN), deletes, reads and bulk reads against the store under test and against a model
that is just a dict of key -> pandas Series of the valid points, and compares them after every
step. :class:`StatefulConformance` runs it for a backend; subclass it and give a factory of
URLs to empty locations (one store is created per Hypothesis example)::

    class TestMine(StatefulConformance):
        @pytest.fixture
        def backend_url_factory(self, tmp_path_factory):
            return lambda: f"mine://{tmp_path_factory.mktemp('s')}"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import curvestore
from curvestore.errors import SeriesExistsError
from curvestore.testing.store import StoreFixtures, assert_series_exact

__all__ = ["StatefulConformance", "StoreModelMachine", "machine_for"]

KEYS = {"site": str, "n": int}
TZ = "UTC"
FREQ = "1h"
ORIGIN = pd.Timestamp("2024-01-01", tz=TZ)
HOURS = (31 + 29 + 31) * 24  # January to March 2024
MONTH_STARTS = (0, 31 * 24, 60 * 24, HOURS)

keys_st = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([2, 10]))
# small windows, mostly around month boundaries so that writes overlap and cross chunks
starts_st = st.one_of(
    st.sampled_from(MONTH_STARTS[:3]).flatmap(lambda b: st.integers(max(b - 40, 0), b + 20)),
    st.integers(0, HOURS - 1),
)
bounds_st = st.one_of(st.none(), st.integers(-5, HOURS + 30))


def _at(position: int) -> pd.Timestamp:
    return ORIGIN + pd.Timedelta(hours=position)


def _series(start: int, length: int, seed: int, nan: float) -> pd.Series:
    index = pd.date_range(_at(start), periods=length, freq=FREQ).as_unit("ns")
    rng = np.random.default_rng(seed)
    values = np.round(rng.standard_normal(length) * 100, 2)
    values[rng.random(length) < nan] = np.nan
    return pd.Series(values, index=index)


def _expected(valid: pd.Series | None, lo: int | None = None, hi: int | None = None
              ) -> pd.Series | None:
    """What a read returns given the model's valid points: trimmed, dense, NaN in holes."""
    if valid is None:
        return None
    if lo is not None:
        valid = valid[valid.index >= _at(lo)]
    if hi is not None:
        valid = valid[valid.index <= _at(hi)]
    if valid.empty:
        return None
    index = pd.date_range(valid.index[0], valid.index[-1], freq=FREQ).as_unit("ns")
    return valid.reindex(index)


class StoreModelMachine(RuleBasedStateMachine):
    """The store under test against a dict of pandas Series; set ``url_factory``."""

    url_factory: ClassVar[Callable[[], str]]

    def __init__(self) -> None:
        super().__init__()
        self.store = curvestore.create_store(type(self).url_factory(), keys=KEYS, freq=FREQ,
                                             tz=TZ)
        #: key -> the valid (non-NaN) points of the series; absent when it holds none
        self.model: dict[tuple[str, int], pd.Series] = {}

    def teardown(self) -> None:
        self.store.close()

    @staticmethod
    def _key(k: tuple[str, int]) -> dict[str, Any]:
        return {"site": k[0], "n": k[1]}

    @rule(k=keys_st, mode=st.sampled_from(["insert", "update", "replace"]), start=starts_st,
          length=st.integers(1, 80), seed=st.integers(0, 2**32 - 1),
          nan=st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    def write(self, k: tuple[str, int], mode: str, start: int, length: int, seed: int,
              nan: float) -> None:
        new = _series(start, length, seed, nan)
        valid = new.dropna()
        old = self.model.get(k)
        if mode == "insert" and old is not None and not valid.empty:
            try:
                self.store.write(self._key(k), new, mode=mode)
            except SeriesExistsError:
                return
            raise AssertionError("insert over an existing series did not raise")
        written = self.store.write(self._key(k), new, mode=mode)
        if valid.empty:
            if mode == "replace" and old is not None:  # replaced by nothing: deleted
                assert written >= 1
                del self.model[k]
            else:
                assert written == 0
            return
        assert written >= 1
        if mode == "update" and old is not None:
            self.model[k] = valid.combine_first(old)
        else:
            self.model[k] = valid

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), mode=st.sampled_from(["insert", "update", "replace"]),
          seed=st.integers(0, 2**32 - 1), nan=st.sampled_from([0.0, 0.3, 0.9]))
    def overwrite(self, data: st.DataObject, mode: str, seed: int, nan: float) -> None:
        """A write over points an existing series holds (random windows rarely overlap)."""
        k = data.draw(st.sampled_from(sorted(self.model)), label="key")
        held = self.model[k].index
        first = int((held[0] - ORIGIN) // pd.Timedelta(hours=1))
        last = int((held[-1] - ORIGIN) // pd.Timedelta(hours=1))
        start = data.draw(st.integers(max(first - 10, 0), last), label="start")
        length = data.draw(st.integers(1, last - start + 20), label="length")
        self.write(k, mode, start, length, seed, nan)

    @rule(k=keys_st)
    def delete(self, k: tuple[str, int]) -> None:
        deleted = self.store.delete(self._key(k))
        assert (deleted > 0) == (k in self.model)
        self.model.pop(k, None)

    @precondition(lambda self: len(self.model) > 1)
    @rule(site=st.sampled_from(["a", "b"]))
    def delete_many(self, site: str) -> None:
        self.store.delete_many({"site": site})
        self.model = {k: v for k, v in self.model.items() if k[0] != site}

    @rule(k=keys_st, lo=bounds_st, hi=bounds_st)
    def read(self, k: tuple[str, int], lo: int | None, hi: int | None) -> None:
        got = self.store.read(self._key(k), None if lo is None else _at(lo),
                              None if hi is None else _at(hi))
        assert_series_exact(got, _expected(self.model.get(k), lo, hi), tz=TZ)

    @rule(site=st.none() | st.sampled_from(["a", "b"]), lo=bounds_st, hi=bounds_st)
    def read_many(self, site: str | None, lo: int | None, hi: int | None) -> None:
        where = None if site is None else {"site": site}
        got = list(self.store.read_many(where, None if lo is None else _at(lo),
                                        None if hi is None else _at(hi)))
        expected = []
        for k in sorted(self.model):
            if site is None or k[0] == site:
                series = _expected(self.model[k], lo, hi)
                if series is not None:
                    expected.append((self._key(k), series))
        assert [d for d, _ in got] == [d for d, _ in expected]
        for (_, have), (_, want) in zip(got, expected, strict=True):
            assert_series_exact(have, want, tz=TZ)

    @invariant()
    def keys_and_max_timestamp_agree(self) -> None:
        assert self.store.keys() == [self._key(k) for k in sorted(self.model)]
        latest = max((v.index[-1] for v in self.model.values()), default=None)
        assert self.store.max_timestamp() == latest


def machine_for(url_factory: Callable[[], str]) -> type[StoreModelMachine]:
    """A :class:`StoreModelMachine` subclass creating its stores with ``url_factory``."""
    return type("StoreModel", (StoreModelMachine,), {"url_factory": staticmethod(url_factory)})


class StatefulConformance(StoreFixtures):
    """Runs :class:`StoreModelMachine` on the backend; provide ``backend_url_factory``."""

    #: Hypothesis budget: examples and steps per example (kept small: this runs in CI).
    stateful_max_examples: ClassVar[int] = 25
    stateful_step_count: ClassVar[int] = 20

    def test_stateful_store_matches_pandas_model(self, backend_url_factory: Callable[[], str]
                                                 ) -> None:
        run_state_machine_as_test(
            machine_for(backend_url_factory),
            settings=settings(
                max_examples=self.stateful_max_examples,
                stateful_step_count=self.stateful_step_count,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
