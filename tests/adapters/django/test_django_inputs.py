"""Input the core refuses reaches holcstore's API as ``ValueError`` with nothing written; all-NaN
or empty input to ``set_ts(..., replace=True)`` keeps holcstore 0.6.7's outcome (ignored)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from testapp.models import FramedStore, HolcStoreYearMonth

from curvestore.adapters.django.models import TimeseriesChunkStore
from curvestore.errors import CurvestoreError

K = "kind_very_long_name_for_testing_purpose"


@pytest.fixture(params=[HolcStoreYearMonth, FramedStore], ids=lambda m: m.__name__)
def model(request: pytest.FixtureRequest) -> type[TimeseriesChunkStore]:
    return request.param


def attrs(model: type, kind: str = "A", version: int = 1) -> dict[str, Any]:
    return {"version": version, ("kind" if model is FramedStore else K): kind}


def hourly(values: Any, start: str = "2024-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="1h",
                                                 tz="Europe/Paris"))


BAD_SERIES = {
    "int64 beyond 2**53": lambda: hourly(np.array([1, 2**53 + 1, 3], dtype=np.int64)),
    "python int beyond float64": lambda: hourly(np.array([1, 10**400, 3], dtype=object)),
    # built in microseconds: pandas 2 makes nanoseconds, which end in 2262
    "year 2500": lambda: pd.Series([1.0, 2.0], index=pd.date_range(
        "2500-01-01", periods=2, freq="1h", tz="Europe/Paris", unit="us")),
}


@pytest.mark.parametrize("bad", BAD_SERIES, ids=list(BAD_SERIES))
def test_set_ts_refuses_what_it_would_alter(model: type, bad: str) -> None:
    kept = hourly([1.0, 2.0])
    model.set_ts(attrs(model, "kept"), kept)
    rows = model.objects.count()
    series = BAD_SERIES[bad]()
    for flags in ({}, {"update": True}, {"replace": True}):
        with pytest.raises(ValueError) as info:
            model.set_ts(attrs(model), series, **flags)
        assert isinstance(info.value, CurvestoreError), info.value
        with pytest.raises(ValueError):
            model.set_ts(attrs(model, "kept"), series, **flags)
    with pytest.raises(ValueError):
        model.set_many_ts({(1, "B"): hourly([5.0, 6.0]), (1, "A"): series},
                          keys=("version", "kind" if model is FramedStore else K))
    assert model.objects.count() == rows
    assert model.get_ts(attrs(model)) is None
    assert model.get_ts(attrs(model, "B")) is None
    assert model.get_ts(attrs(model, "kept")).tolist() == [1.0, 2.0]


def test_set_ts_refuses_a_key_no_database_can_store(model: type) -> None:
    with pytest.raises(ValueError, match="Unicode"):
        model.set_ts(attrs(model, "a\ud800"), hourly([1.0, 2.0]))
    assert model.objects.count() == 0


@pytest.mark.parametrize("empty", ["all-nan", "empty"])
def test_replace_with_no_value_keeps_the_series_as_holcstore_does(model: type, empty: str
                                                                  ) -> None:
    """holcstore 0.6.7's set_ts returns before touching the table when the input is empty or
    all-NaN (``_normalize_serie`` gives None), even with replace=True."""
    kept = hourly(np.arange(48.0))
    model.set_ts(attrs(model), kept)
    rows = list(model.objects.values_list("pk", flat=True))
    series = kept * np.nan if empty == "all-nan" else kept.iloc[:0]
    model.set_ts(attrs(model), series, replace=True)
    model.set_ts(attrs(model), series, update=True)
    assert list(model.objects.values_list("pk", flat=True)) == rows
    assert model.get_ts(attrs(model)).tolist() == kept.tolist()
