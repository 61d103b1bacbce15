"""Every read path of the adapter returns its DatetimeIndex in the unit pandas gives new
timestamps (``us`` on pandas 3, ``ns`` on pandas 2), so that a round trip of what a user
builds with ``pd.date_range`` compares equal with ``pd.testing.assert_series_equal``'s
defaults; a model's ``TIME_UNIT`` asks for another unit."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
from testapp.models import (
    FramedStore,
    HolcStoreNanoseconds,
    HolcStoreYearMonth,
    LcStore,
    SeriesStore,
)

from curvestore.adapters.django.admin import chunkstore_series, timeseries_store_series

K = "kind_very_long_name_for_testing_purpose"
PANDAS_UNIT = pd.date_range("2024-01-01", periods=1, freq="h").unit


def hourly(start: str, periods: int, seed: int = 0) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq="1h", tz="Europe/Paris")
    return pd.Series(np.random.default_rng(seed).standard_normal(periods), index=index)


def test_chunk_store_reads_compare_equal() -> None:
    written = hourly("2024-03-30", 24 * 40)
    for model, attrs in ((HolcStoreYearMonth, {"version": 1, K: "a"}),
                         (FramedStore, {"version": 1, "kind": "a"})):
        model.set_ts(attrs, written)
        pd.testing.assert_series_equal(model.get_ts(attrs), written)
        window = written["2024-04-02":"2024-04-03 05:00"]
        pd.testing.assert_series_equal(
            model.get_ts(attrs, start="2024-04-02", end="2024-04-03 05:00"), window)
        [(streamed, _)] = list(model.yield_many_ts({"version": 1}))
        pd.testing.assert_series_equal(streamed, written)
        newest = model.get_max_horodate({"version": 1})
        assert newest == written.index[-1] and newest.unit == PANDAS_UNIT
        [(_, downloaded)] = [p for p in chunkstore_series(model.objects.all())][:1]
        assert downloaded.index.unit == PANDAS_UNIT


def test_time_unit_setting_asks_for_another_unit() -> None:
    written = hourly("2024-01-30", 24 * 5, seed=1)
    HolcStoreYearMonth.set_ts({"version": 2, K: "b"}, written)
    got = HolcStoreNanoseconds.get_ts({"version": 2, K: "b"})
    assert got is not None and got.index.unit == "ns"
    pd.testing.assert_series_equal(got, written.set_axis(written.index.as_unit("ns")))
    [(streamed, _)] = list(HolcStoreNanoseconds.yield_many_ts({"version": 2}))
    assert streamed.index.unit == "ns"
    assert HolcStoreNanoseconds.get_max_horodate({"version": 2}).unit == "ns"


def test_blob_stores_read_in_pandas_own_unit() -> None:
    written = hourly("2024-03-30", 100, seed=2)
    for stored in ("ns", "us"):  # as pandas 2 and pandas 3 wrote them
        as_written = written.set_axis(written.index.as_unit(stored))
        LcStore.set_lc(f"prm-{stored}", as_written, client_id=1)
        got = LcStore.get_lc(f"prm-{stored}", client_id=1)[0]["data"]
        pd.testing.assert_series_equal(got, written, check_names=False)
        last = LcStore.get_last_version_lc(f"prm-{stored}", client_id=1)
        assert last is not None and last.index.unit == PANDAS_UNIT
        [many] = LcStore.get_many_lc([f"prm-{stored}"], client_id=1)[f"prm-{stored}"]
        assert many["data"].index.unit == PANDAS_UNIT
        SeriesStore.set_ts({"year": 2024, "kind": stored}, as_written)
        flat = SeriesStore.get_ts({"year": 2024, "kind": stored}, flat=True)
        pd.testing.assert_series_equal(flat, written, check_names=False)
    for _, series in timeseries_store_series(SeriesStore.objects.all()):
        assert series.index.unit == PANDAS_UNIT


def test_admin_download_of_each_unit_is_the_same_csv() -> None:
    from curvestore.adapters.django.admin import zip_series

    written = hourly("2024-03-30", 30, seed=3)
    HolcStoreYearMonth.set_ts({"version": 3, K: "c"}, written)
    archives = []
    for model in (HolcStoreYearMonth, HolcStoreNanoseconds):
        data, count = zip_series(chunkstore_series(model.objects.filter(version=3)))
        assert count == 1
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            archives.append([z.read(n) for n in z.namelist()])
    assert archives[0] == archives[1] and b"2024-03-31 03:00:00+02:00" in archives[0][0]
