"""holcstore's ``Store`` and ``TimeseriesStore`` on the adapter: the seeds' README scenarios,
holcstore's own test scenarios (tests_basics, tests_timeseries_store, tests_find_groups,
tests_slice_with_delay, tests_with_attributes), legacy Feather blobs, the curvestore blob
round trip and concurrent versioned writers."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pytest
from django.db import IntegrityError, connections
from testapp.models import LcStore, LcStoreWithYear, SeriesStore

from curvestore.adapters.django import blobs
from curvestore.adapters.django.lc_store import Range
from curvestore.adapters.django.models import Store, TimeseriesChunkStore, TimeseriesStore
from curvestore.adapters.django.series_store import ts_combine_first
from curvestore.errors import BackendNotInstalledError, ConfigurationError
from curvestore.errors import IntegrityError as BlobIntegrityError

UTC = dt.UTC


def gen_serie(start: str, end: str, data: list, freq: str = "1h") -> pd.Series:
    return pd.Series(data, index=pd.date_range(start, end, freq=freq), name="data")


def test_reexports() -> None:
    assert issubclass(LcStore, Store) and issubclass(SeriesStore, TimeseriesStore)
    assert TimeseriesChunkStore._meta.abstract


# ---------------------------------------------------------------- blobs


@pytest.mark.parametrize("ds", [
    pd.Series([1, 2, 3]),
    pd.Series([1.5, np.nan, -0.0], index=[3, 1, 2]),
    pd.Series(np.random.default_rng(0).standard_normal(2000),
              index=pd.date_range("2020-03-01", periods=2000, freq="1h", tz="Europe/Paris")),
    pd.Series(np.arange(60, dtype="float32"),
              index=pd.date_range("2020-03-01", periods=60, freq="D", tz="Europe/Paris")),
    pd.Series([1.0, 2.0], index=pd.date_range("2020-01-01 00:00+01:00", periods=2, freq="h")),
    pd.Series([True, False, True], index=pd.DatetimeIndex(
        ["2020-01-01", "2020-01-03", "2020-01-04"], tz="UTC").as_unit("ns")),
    pd.Series(np.array([1, 2, 3], dtype="int16"),
              index=pd.DatetimeIndex(["2021-01-01", "2021-02-01", "2021-02-02"])),
], ids=["range-int", "int-index", "paris-1h", "paris-1D-f32", "fixed-offset", "bool-explicit",
        "int16-naive"])
def test_blob_round_trip_exact(ds: pd.Series) -> None:
    unit = getattr(ds.index, "unit", None)  # the stored unit, asked for explicitly
    got = blobs.decode_series(blobs.encode_series(ds, name="x"), unit)
    pd.testing.assert_series_equal(got, ds.rename("x"), check_exact=True)


@pytest.mark.parametrize("stored", ["s", "ms", "us", "ns"])
def test_blob_reads_in_pandas_own_unit_where_exact(stored: str) -> None:
    """A blob written under either pandas major reads in the unit pandas makes today; one
    whose instants the target unit cannot hold keeps its own unit rather than round."""
    index = pd.date_range("2020-03-01", periods=50, freq="15min", tz="Europe/Paris")
    ds = pd.Series(np.arange(50.0), index=index.as_unit(stored))
    got = blobs.decode_series(blobs.encode_series(ds, name="x"))
    pd.testing.assert_series_equal(got, pd.Series(np.arange(50.0), index=index, name="x"))
    assert blobs.decode_series(blobs.encode_series(ds), "s").index.unit == "s"
    fine = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(
        [1_600_000_000_000_000_001, 1_600_000_000_000_000_002], tz="UTC"))
    kept = blobs.decode_series(blobs.encode_series(fine), "us")
    assert kept.index.unit == "ns" and kept.index.equals(fine.index)
    assert getattr(got.index, "freq", None) == getattr(ds.index, "freq", None)
    assert str(getattr(got.index, "tz", None)) == str(getattr(ds.index, "tz", None))
    assert got.to_numpy().tobytes() == ds.to_numpy().tobytes()  # bit-exact (NaN, -0.0)


def test_blob_nan_payload_bit_exact() -> None:
    values = np.array([1.0, np.nan, 2.0])
    values.view(np.uint64)[1] = 0x7FF8_0000_DEAD_BEEF
    got = blobs.decode_series(blobs.encode_series(pd.Series(values)))
    assert got.to_numpy().view(np.uint64)[1] == 0x7FF8_0000_DEAD_BEEF


def test_blob_checksum_and_unknown() -> None:
    raw = bytearray(blobs.encode_series(pd.Series([1.0, 2.0, 3.0])))
    raw[-6] ^= 0xFF
    with pytest.raises(BlobIntegrityError, match="checksum"):
        blobs.decode_series(bytes(raw))
    with pytest.raises(BlobIntegrityError, match="neither"):
        blobs.decode_series(b"garbage")
    with pytest.raises(ValueError):
        blobs.encode_series(pd.Series(["a", "b"]))


@pytest.mark.parametrize("index_column", [False, True], ids=["pandas>=2.2", "pandas<2.2"])
def test_feather_blob_read(index_column: bool) -> None:
    ds = gen_serie("2024-01-01 00:00+00:00", "2024-01-02 00:00+00:00", list(range(25)))
    raw = blobs.write_feather_blob(ds, "3000014324556", index_column=index_column)
    assert raw[:6] == b"ARROW1"
    got = blobs.decode_series(raw)
    pd.testing.assert_series_equal(got, ds, check_names=False, check_freq=False,
                                   check_index_type=False)
    assert got.name == "3000014324556"


def test_feather_without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = blobs.write_feather_blob(pd.Series([1.0]))

    def missing() -> None:
        raise BackendNotInstalledError("reading holcstore's Feather series blobs", "parquet")

    monkeypatch.setattr(blobs, "_feather", missing)
    with pytest.raises(BackendNotInstalledError, match=r"curvestore\[parquet\]"):
        blobs.decode_series(raw)


def test_legacy_rows_in_both_models() -> None:
    ds = gen_serie("2020-01-01 00:00+00:00", "2020-01-01 05:00+00:00", [1.0, 2, 3, 4, 5, 6])
    SeriesStore.objects.create(year=2019, kind="legacy", data=blobs.write_feather_blob(ds))
    LcStore.objects.create(client_id=0, prm="p", version=0,
                           data=blobs.write_feather_blob(ds, "p", index_column=True))
    LcStore.objects.create(client_id=0, prm="p", version=1,
                           data=blobs.write_feather_blob(ds.iloc[:2] * 10, "p"))
    got = SeriesStore.get_ts({"year": 2019, "kind": "legacy"}, flat=True)
    pd.testing.assert_series_equal(got, ds, check_names=False, check_freq=False)
    combined = LcStore.get_lc("p", 0)[0]["data"]
    assert combined.tolist() == [10.0, 20.0, 3, 4, 5, 6]
    # update over a legacy row rewrites it in curvestore's format
    SeriesStore.set_ts({"year": 2019, "kind": "legacy"}, ds.iloc[:1] * 0, update=True)
    row = SeriesStore.objects.get(year=2019)
    assert blobs.is_curvestore_blob(row.data)
    assert SeriesStore.get_ts({"year": 2019}, flat=True).tolist() == [0.0, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- TimeseriesStore


@pytest.fixture
def ts_setup() -> dict:
    out = {
        (2020, "a"): gen_serie("2020-01-01 00:00:00+00:00", "2020-01-01 02:00:00+00:00",
                               [1, 2, 3]),
        (2020, "b"): gen_serie("2020-01-01 00:00:00+01:00", "2020-01-01 02:00:00+01:00",
                               [10, 20, 30]),
        (2024, "a"): gen_serie("2024-01-01 00:00:00+00:00", "2024-01-01 02:00:00+00:00",
                               [11, 21, 31]),
    }
    for (year, kind), ds in out.items():
        SeriesStore.set_ts({"year": year, "kind": kind}, ds)
    return out


def test_ts_get(ts_setup: dict) -> None:
    for (year, kind), ds in ts_setup.items():
        data = SeriesStore.get_ts({"year": year, "kind": kind})
        assert len(data) == 1 and data[0]["year"] == year and data[0]["kind"] == kind
        pd.testing.assert_series_equal(data[0]["data"], ds, check_names=False)
        flat = SeriesStore.get_ts({"year": year, "kind": kind}, flat=True)
        pd.testing.assert_series_equal(flat, ds, check_names=False)
        assert str(flat.index.tz) == str(ds.index.tz)


def test_ts_multiple_and_none(ts_setup: dict) -> None:
    data = SeriesStore.get_ts({"kind": "a"})
    assert sorted(d["year"] for d in data) == [2020, 2024]
    with pytest.raises(ValueError, match="Multiple"):
        SeriesStore.get_ts({"kind": "a"}, flat=True)
    assert SeriesStore.get_ts({"kind": "z"}) == []
    with pytest.raises(ValueError, match="No serie"):
        SeriesStore.get_ts({"kind": "z"}, flat=True)


def test_ts_set_modes() -> None:
    attrs = {"year": 2010, "kind": "k"}
    ds0 = gen_serie("2010-01-01 00:00:00+00:00", "2010-01-01 02:00:00+00:00", [1, 2, 3])
    ds1 = gen_serie("2010-01-01 02:00:00+00:00", "2010-01-01 05:00:00+00:00", [999, 10, 20, 30])
    SeriesStore.set_ts(attrs, ds0)
    with pytest.raises(IntegrityError):
        SeriesStore.set_ts(attrs, ds1)
    with pytest.raises(ValueError):  # holcstore's exception type still matches
        SeriesStore.set_ts(attrs, ds1)
    with pytest.raises(ValueError, match="exclusive"):
        SeriesStore.set_ts(attrs, ds1, update=True, replace=True)
    pd.testing.assert_series_equal(SeriesStore.get_ts(attrs, flat=True), ds0, check_names=False)
    SeriesStore.set_ts(attrs, ds1, update=True)
    pd.testing.assert_series_equal(SeriesStore.get_ts(attrs, flat=True),
                                   ts_combine_first([ds1, ds0]), check_names=False)
    SeriesStore.set_ts(attrs, ds1, replace=True)
    pd.testing.assert_series_equal(SeriesStore.get_ts(attrs, flat=True), ds1, check_names=False)
    SeriesStore.set_ts(attrs, ds1 * np.nan, replace=True)  # all-NaN: ignored
    pd.testing.assert_series_equal(SeriesStore.get_ts(attrs, flat=True), ds1, check_names=False)
    with pytest.raises(ValueError):
        SeriesStore.set_ts(attrs, [1, 2])  # type: ignore[arg-type]
    SeriesStore.clear({"year": 2010})
    assert SeriesStore.get_ts(attrs) == []


def test_ts_encode_decode_helpers() -> None:
    ds = gen_serie("2020-01-01 00:00+00:00", "2020-01-01 03:00+00:00", [1.0, 2, 3, 4])
    row = SeriesStore(year=1, kind="x", data=SeriesStore.encode_serie(ds))
    decoded = row.decoded_ts_data
    assert decoded["year"] == 1 and "_state" not in decoded
    pd.testing.assert_series_equal(decoded["data"], ds.rename("name"))
    assert isinstance(row.data, bytes)  # the instance is not mutated


# ---------------------------------------------------------------- Store (README + holcstore)

KEY, CLIENT = "3000014324556", 0


def readme_series() -> pd.Series:
    idx = pd.date_range("2024-01-01 00:00:00+00:00", "2024-01-02 00:00:00+00:00", freq="30min")
    return pd.Series(data=[1] * len(idx), index=idx)


def test_readme_store_scenario() -> None:
    ds = readme_series()
    LcStore.set_lc(KEY, ds, CLIENT)
    LcStore.set_lc(KEY, ds, CLIENT)  # replaced, not versioned
    assert LcStore.count(CLIENT) == 1
    LcStore.set_lc(KEY, ds * 2, CLIENT, versionning=True)
    LcStore.set_lc(KEY, ds.iloc[:10] * 3, CLIENT, versionning=True)
    datas = LcStore.get_lc(KEY, CLIENT)
    assert len(datas) == 1 and datas[0]["version"] == 2
    assert datas[0]["last_modified"] is not None
    expected = ts_combine_first([ds.iloc[:10] * 3, ds * 2, ds])
    pd.testing.assert_series_equal(datas[0]["data"], expected, check_names=False)
    all_versions = LcStore.get_lc(KEY, CLIENT, combined_versions=False)
    assert [d["version"] for d in all_versions] == [2, 1, 0]
    one = LcStore.get_lc(KEY, CLIENT, version=1)
    assert len(one) == 1
    pd.testing.assert_series_equal(one[0]["data"], ds * 2, check_names=False)
    pd.testing.assert_series_equal(LcStore.get_last_version_lc(KEY, CLIENT), ds.iloc[:10] * 3,
                                   check_names=False)
    assert LcStore.get_last_version_lc("nope", CLIENT) is None


def test_readme_set_many_lc() -> None:
    idx = readme_series().index
    df = pd.DataFrame({"key1": [1] * len(idx), "key2": [2] * len(idx)}, index=idx)
    LcStore.set_many_lc(df, CLIENT)
    LcStore.set_many_lc(df, CLIENT, versionning=True)
    res = LcStore.get_many_lc(["key1", "key2", "absent"], CLIENT, combined_versions=False)
    assert sorted(res) == ["key1", "key2"] and res["absent"] == []
    assert [d["version"] for d in res["key1"]] == [1, 0]
    pd.testing.assert_series_equal(res["key2"][0]["data"], df["key2"], check_names=False)
    LcStore.set_many_lc({"p1": pd.Series([1, 2, 3]), "p2": pd.Series([4, 5, 6])}, 5)
    got = LcStore.get_many_lc(["p1", "p2"], 5)
    pd.testing.assert_series_equal(got["p1"][0]["data"], pd.Series([1, 2, 3]),
                                   check_names=False)


def test_store_clear_and_errors() -> None:
    ds = pd.Series([1, 2, 3], index=[0, 1, 2], name="data")
    LcStore.set_lc("a", ds, 1)
    LcStore.set_lc("b", ds, 1, versionning=True)
    LcStore.set_lc("b", ds * 2, 1, versionning=True)
    LcStore.set_lc("c", ds, 2)
    LcStore.clear(["b"], 1, version=0)
    assert [d["version"] for d in LcStore.get_lc("b", 1, combined_versions=False)] == [1]
    LcStore.clear(["a"], 1)
    assert LcStore.get_lc("a", 1) == []
    LcStore.clear_all(client_id=2)
    assert LcStore.count(2) == 0 and LcStore.count(1) == 1
    LcStore.clear_all()
    assert LcStore.objects.count() == 0
    with pytest.raises(ValueError):
        LcStore.set_lc("k", "hello", 1)  # type: ignore[arg-type]
    LcStore.set_lc("k", pd.Series(np.nan, index=range(4)), 1)
    assert LcStore.get_lc("k", 1) == []
    named = pd.Series([1, 2, 3])
    named.index.name = "test"
    LcStore.set_lc("k", named, 1)
    pd.testing.assert_series_equal(LcStore.get_lc("k", 1)[0]["data"], named, check_names=False)


def test_find_holes() -> None:
    sd, ed = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 11, tzinfo=UTC)
    full = pd.Series(10.0, pd.date_range(sd, ed, freq="D"))
    one = full.copy()
    one.loc["2024-01-02":"2024-01-03"] = None
    two = one.copy()
    two.loc["2024-01-05":"2024-01-08"] = None
    for prm, ds in (("no_hole", full), ("one_hole", one), ("two_holes", two)):
        LcStore.set_lc(prm, ds, 1)
    day = dt.timedelta(days=1)
    holes = dict(LcStore.find_holes(1, sd, ed, freq="D",
                                    prms=["no_hole", "one_hole", "two_holes", "absent"]))
    assert holes["no_hole"] == []
    assert holes["one_hole"] == [(sd + day, sd + 2 * day)]
    assert holes["two_holes"] == [(sd + day, sd + 2 * day), (sd + 4 * day, sd + 7 * day)]
    assert holes["absent"] == [(sd, ed)]
    assert len(list(LcStore.find_holes(1, sd, ed, freq="D"))) == 3
    assert list(LcStore.find_holes(1, sd, ed, freq="D", custom_filters={"prm": "x"})) == []


def test_hole_finders_refuse_a_combination_that_leaves_several_entries_per_prm() -> None:
    idx = pd.date_range("2024-01-01 00:00+00:00", "2024-01-03 00:00+00:00", freq="D")
    LcStore.set_lc("p", pd.Series(1.0, index=idx), 1, versionning=True)
    LcStore.set_lc("p", pd.Series(2.0, index=idx), 1, versionning=True)
    sd, ed = idx[0].to_pydatetime(), idx[-1].to_pydatetime()
    with pytest.raises(ConfigurationError, match="2 entries once combined"):
        list(LcStore.find_holes(1, sd, ed, freq="D", combined_by=("prm", "version")))
    with pytest.raises(ConfigurationError, match="2 entries once combined"):
        LcStore.find_groups(1, ["p"], Range(sd, ed), "D", combined_by=("prm", "version"))
    assert dict(LcStore.find_holes(1, sd, ed, freq="D")) == {"p": []}


def test_find_groups() -> None:
    for start, prm, val in (("2024", "prm1", 1), ("2024", "prm2", 2), ("2023", "prm3", 3)):
        idx = pd.date_range(f"{start}-01-01 00:00+00:00", "2025-01-01 00:00+00:00", freq="h")
        LcStore.set_lc(prm, pd.Series(float(val), index=idx), 1)
    LcStore.set_lc("prm4", pd.Series(4.0, index=pd.date_range(
        "2023-01-10", "2023-01-20", freq="h", tz="UTC")), 1)
    drr = Range(dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2023, 2, 1, tzinfo=UTC))
    groups, data = LcStore.find_groups(1, ["prm1", "prm2", "prm3", "prm4", "prm5"], drr, "1h")
    assert sorted(groups[drr]) == ["prm1", "prm2", "prm5"]
    assert sorted(data) == ["prm3", "prm4"]
    prm3 = data["prm3"][0]["data"]
    assert prm3.index[0] == drr.sd and prm3.index[-1] == drr.ed
    assert groups[Range(drr.sd, pd.Timestamp("2023-01-10", tz="UTC"))] == ["prm4"]
    assert groups[Range(pd.Timestamp("2023-01-20", tz="UTC"), drr.ed)] == ["prm4"]


def test_combined_delay() -> None:
    idx = pd.date_range("2024-01-01 00:00+00:00", "2024-02-01 00:00+00:00", freq="h")
    d1, d2 = pd.Series(1.0, index=idx), pd.Series(2.0, index=idx[24:])
    LcStore.set_lc("p", d1, 1, versionning=True)
    LcStore.set_lc("p", d2, 1, versionning=True)
    got = LcStore.get_lc("p", 1, combined_delay=pd.Timedelta(days=1))[0]["data"]
    pd.testing.assert_series_equal(got, ts_combine_first([d2.iloc[24:], d1.iloc[24:]]),
                                   check_names=False)
    many = LcStore.get_many_lc(["p"], 1, combined_delay=pd.Timedelta(days=2))
    pd.testing.assert_series_equal(many["p"][0]["data"],
                                   ts_combine_first([d2.iloc[48:], d1.iloc[48:]]),
                                   check_names=False)


def test_versionning_by_and_combined_by() -> None:
    ds = pd.Series([1, 2, 3], index=[0, 1, 2], name="data")
    now = dt.datetime.now(UTC)
    for year, value in ((2024, ds), (2025, ds)):
        LcStoreWithYear.set_lc("n", value, 1, versionning=True, versionning_by=("prm", "year"),
                               attributes_to_set={"created_at": now, "year": year})
    assert sorted(LcStoreWithYear.objects.values_list("version", flat=True)) == [0, 0]
    assert len(LcStoreWithYear.get_lc("n", 1, combined_by=("prm", "year"))) == 2
    assert len(LcStoreWithYear.get_many_lc(["n"], 1, combined_by=("prm", "year"))["n"]) == 2
    assert len(LcStoreWithYear.get_lc("n", 1, combined_by=("version",))) == 1
    later = now + dt.timedelta(seconds=1)
    LcStoreWithYear.set_lc("n", ds * 2, 1, versionning=True, versionning_by=("prm", "year"),
                           attributes_to_set={"created_at": later, "year": 2024})
    data = LcStoreWithYear.get_lc("n", 1, combined_by=("prm", "year"), order_by=("-created_at",))
    d2024 = next(d for d in data if d["year"] == 2024)
    assert d2024["version"] == 1
    pd.testing.assert_series_equal(d2024["data"], ds * 2, check_names=False)


def test_versioned_conflict_with_constraint_is_reported() -> None:
    ds = pd.Series([1.0])
    LcStore.set_lc("p", ds, 1, versionning=True, versionning_by=("prm", "client_id"),
                   attributes_to_set={})
    # a row version 0 of another scope collides on (prm, client_id, version)
    LcStoreWithYear.objects.all().delete()
    with pytest.raises(IntegrityError):
        LcStore._add_version(1, {"prm": "p", "version__lt": 0}, {"prm": "p", "data": b""})


# ---------------------------------------------------------------- concurrency


def test_concurrent_versioned_set_lc() -> None:
    writers, per_writer = 6, 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                LcStore.set_lc("race", pd.Series([float(n * 100 + i)]), 7, versionning=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = sorted(LcStore.objects.filter(prm="race").values_list("version", flat=True))
    assert versions == list(range(writers * per_writer))
