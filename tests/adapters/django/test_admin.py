"""The admin download actions: a ZIP of CSV files plus a summary CSV."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.contrib import messages
from django.test import RequestFactory
from testapp.models import FramedStore, HolcStoreYearMonth

from curvestore.adapters.django.admin import (
    download_timeseries_from_chunkstore,
    make_download_action,
    timeseries_store_series,
)


class FakeAdmin:
    """Records ``message_user`` calls (the only ModelAdmin method the actions use)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int]] = []

    def message_user(self, request: Any, message: str, level: int) -> None:
        self.messages.append((message, level))


def read_zip(response: Any) -> dict[str, pd.DataFrame]:
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="export_')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: pd.read_csv(io.BytesIO(archive.read(name)), sep=";", index_col=0)
                for name in archive.namelist()}


def hourly(start: str, periods: int, offset: float = 0.0) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq="1h", tz="Europe/Paris")
    return pd.Series(np.arange(periods, dtype=float) + offset, index=index)


@pytest.mark.parametrize("model", [HolcStoreYearMonth, FramedStore])
def test_chunkstore_action_zips_selected_chunks(model: type) -> None:
    other = "kind_very_long_name_for_testing_purpose" if model is HolcStoreYearMonth else "kind"
    a, b = hourly("2024-01-30", 72), hourly("2024-05-01", 10, 5.0)
    model.set_ts({"version": 1, other: "a"}, a)
    model.set_ts({"version": 2, other: "b"}, b)
    model.objects.filter(version=2).delete(keep_tracking=True)
    request = RequestFactory().post("/admin/")
    response = download_timeseries_from_chunkstore(FakeAdmin(), request, model.objects.all())
    files = read_zip(response)
    summary = files.pop("content_summary.csv")
    assert len(files) == len(summary) == 3  # January and February of a, May of b (deleted)
    assert {"filename", "version", other, "chunk_index", "start_ts", "dtype", "updated_at",
            "is_deleted"} <= set(summary.columns)
    got = []
    for _, line in summary.iterrows():
        frame = files[line["filename"]]
        assert list(frame.columns) == ["data"]
        if line["is_deleted"]:
            assert frame.empty
        else:
            got.append(frame["data"])
    values = pd.concat(got)
    np.testing.assert_allclose(values.to_numpy(), a.to_numpy())
    assert pd.DatetimeIndex(pd.to_datetime(values.index, utc=True)).equals(
        a.index.tz_convert("UTC"))


def test_empty_selection_warns() -> None:
    admin = FakeAdmin()
    result = download_timeseries_from_chunkstore(admin, RequestFactory().post("/admin/"),
                                                 FramedStore.objects.none())
    assert result is None
    assert admin.messages == [("Please select at least one object", messages.WARNING)]


def test_generic_action_takes_a_series_function() -> None:
    FramedStore.set_ts({"version": 3, "kind": "z"}, hourly("2024-01-01", 5))

    def whole_series(queryset: Any) -> list[tuple[Any, pd.Series]]:
        keys = sorted(set(queryset.values_list("version", "kind")))
        return [(f"v{v}-{k}", FramedStore.get_ts({"version": v, "kind": k})) for v, k in keys]

    action = make_download_action(whole_series, "Download whole series")
    assert action.short_description == "Download whole series"
    files = read_zip(action(FakeAdmin(), RequestFactory().post("/"), FramedStore.objects.all()))
    summary = files.pop("content_summary.csv")
    assert summary.to_dict("records") == [{"filename": "export_serie_0.csv", "name": "v3-z"}]
    assert files["export_serie_0.csv"]["data"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_timeseries_store_series_reads_decoded_ts_data() -> None:
    class Row:
        def __init__(self, i: int) -> None:
            self.decoded_ts_data = {"id": i, "prm": f"p{i}", "_state": object(),
                                    "data": hourly("2024-01-01", 3, i)}

    pairs = list(timeseries_store_series([Row(1), Row(2)]))
    assert [info for info, _ in pairs] == [{"prm": "p1"}, {"prm": "p2"}]
    assert pairs[1][1].iloc[0] == 2.0


def test_download_from_versioned_store_rows() -> None:
    from testapp.models import LcStore

    from curvestore.adapters.django.admin import legacy_store_series

    index = pd.date_range("2024-01-01", periods=4, freq="30min", tz="UTC")
    LcStore.set_lc("PRM1", pd.Series([1.0, 2.0, 3.0, 4.0], index=index), 0)
    LcStore.set_lc("PRM1", pd.Series([5.0, 6.0], index=index[:2]), 0, versionning=True)
    pairs = list(legacy_store_series(LcStore.objects.filter(prm="PRM1").order_by("version")))
    assert [attrs["version"] for attrs, _s in pairs] == [0, 1]
    assert pairs[1][1].tolist() == [5.0, 6.0]
