"""holcstore's TimeseriesChunkStore scenarios (hostore/tests/test_chunk_timeserie_store.py,
test_import_chunks.py) on the adapter, plus class-definition checks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, models
from django.test.utils import isolate_apps
from testapp.models import (
    FramedStore,
    HolcStoreUTC,
    HolcStoreYear,
    HolcStoreYearMonth,
    ReadmeChunkStore,
    SyncStore,
)

from curvestore.adapters.django.models import ChunkChange, ChunkQuerySet, TimeseriesChunkStore

K = "kind_very_long_name_for_testing_purpose"
HOLC_MODELS = [HolcStoreYearMonth, HolcStoreYear, HolcStoreUTC]


def make_series(start: str, periods: int, seed: int = 0, tz: str = "Europe/Paris",
                nan: list[tuple[int, int]] | None = None) -> pd.Series:
    idx = pd.date_range(start=start, periods=periods, freq="1h", tz=tz)
    rng = np.random.default_rng(seed)
    ds = pd.Series(rng.standard_normal(periods), index=idx)
    for a, b in nan or []:
        ds.iloc[a:b] = np.nan
    return ds


def same(got: pd.Series | None, expected: pd.Series) -> None:
    assert got is not None
    pd.testing.assert_series_equal(got.dropna().tz_convert("UTC"),
                                   expected.dropna().tz_convert("UTC"), check_freq=False,
                                   check_index_type=False)


@pytest.fixture(params=[*HOLC_MODELS, FramedStore], ids=lambda m: m.__name__)
def model(request: pytest.FixtureRequest) -> type[TimeseriesChunkStore]:
    return request.param


def attrs_of(model: type, version: int, kind: str) -> dict:
    return {"version": version, ("kind" if model is FramedStore else K): kind}


@pytest.mark.parametrize("nan", [None, [(24 * 20, 24 * 60), (24 * 150, 24 * 200)]])
def test_set_and_get(model: type, nan: list | None) -> None:
    a = make_series("2020-01-01", 24 * 365, nan=nan)
    attrs = attrs_of(model, 1, "A")
    model.set_ts(attrs, a)
    got = model.get_ts(attrs)
    assert str(got.index.tz) == model.STORE_TZ
    assert got.index.freq == model.STORE_FREQ
    same(got, a)
    b = make_series("2020-01-01", 24 * 345, seed=1)
    model.set_ts(attrs_of(model, 1, "B"), b)
    same(model.get_ts(attrs_of(model, 1, "B")), b)
    assert model.get_max_horodate({"version": 1}) == a.dropna().index.max()
    with pytest.raises(IntegrityError):
        model.set_ts(attrs_of(model, 1, "B"), a)
    assert model.get_ts(attrs_of(model, 1, "nonexistent")) is None


def test_partial_attrs_and_invalid_calls(model: type) -> None:
    s = make_series("2025-01-01", 24)
    with pytest.raises(ValueError):
        model.set_ts({"version": 1}, s)
    with pytest.raises(ValueError):
        model.get_ts({"version": 1})
    with pytest.raises(ValueError):
        model.set_ts(attrs_of(model, 7, "I"), s, update=True, replace=True)
    with pytest.raises(ValueError):
        model.set_ts(attrs_of(model, 8, "J"), pd.Series([1, 2, 3]))
    with pytest.raises(ValueError):
        model.yield_many_ts({"nope": 1})


def test_full_nan_is_ignored(model: type) -> None:
    s = pd.Series(np.nan, index=pd.date_range("2020-01-01", periods=48, freq="1h", tz="UTC"))
    attrs = attrs_of(model, 1, "Anan")
    model.set_ts(attrs, s)
    assert model.get_ts(attrs) is None
    assert model.get_max_horodate(attrs) is None
    assert model.objects.count() == 0


def test_range_filter(model: type) -> None:
    s = make_series("2019-01-01", 24 * 365)
    attrs = attrs_of(model, 3, "C")
    model.set_ts(attrs, s)
    start = pd.Timestamp("2019-06-01", tz="Europe/Paris")
    end = pd.Timestamp("2019-06-02 23:59:59.999999", tz="Europe/Paris")
    same(model.get_ts(attrs, start=start, end=end), s[start:end])
    same(model.get_ts(attrs, start=pd.NaT, end=end), s[:end])
    same(model.get_ts(attrs, start=None, end=pd.NaT), s)
    utc_end = pd.Timestamp("2019-06-02", tz="UTC")
    same(model.get_ts(attrs, start=start, end=utc_end),
         s[start:utc_end.tz_convert("Europe/Paris")])
    # strings are wall times in STORE_TZ, as in holcstore
    tz = model.STORE_TZ
    same(model.get_ts(attrs, start="2019-06-01", end="2019-06-03"),
         s[pd.Timestamp("2019-06-01", tz=tz).tz_convert("Europe/Paris"):
           pd.Timestamp("2019-06-03", tz=tz).tz_convert("Europe/Paris")])


def test_update_and_replace(model: type) -> None:
    other = attrs_of(model, 4, "other")
    s4 = make_series("2022-06-01", 380 * 24, seed=42)
    model.set_ts(other, s4)
    attrs = attrs_of(model, 4, "D")
    s1 = make_series("2022-01-01", 365 * 24)
    s2 = make_series("2022-06-01", 380 * 24, seed=42)
    s3 = make_series("2022-07-01", 20 * 24, seed=43)
    model.set_ts(attrs, s1)
    model.set_ts(attrs, s2, update=True)
    same(model.get_ts(attrs), s2.combine_first(s1))
    assert model.get_max_horodate(attrs) == s2.index.max()
    model.set_ts(attrs, s3, replace=True)
    same(model.get_ts(attrs), s3)
    same(model.get_ts(other), s4)


def test_set_many_and_yield_many(model: type) -> None:
    keys = ("version", "kind" if model is FramedStore else K)
    mapping = {
        (6, "G"): make_series("2024-01-01", 24 * 390),
        (6, "H"): make_series("2024-01-01", 24 * 390, seed=1),
        (6, "I"): make_series("2023-01-01", 24 * 366, seed=2),
        (5, "G"): make_series("2028-01-01", 24 * 15, seed=3),
    }
    model.set_many_ts(mapping, keys=keys)
    seen = {(d["version"], d[keys[1]]): s for s, d in model.yield_many_ts({"version": 6})}
    assert set(seen) == {(6, "G"), (6, "H"), (6, "I")}
    for k, s in seen.items():
        same(s, mapping[k])
        assert s.index.freq == model.STORE_FREQ
    assert {d[keys[1]] for _, d in model.yield_many_ts({"version__in": [5]})} == {"G"}
    window = list(model.yield_many_ts({"version": 6}, start="2024-02-01", end="2024-02-02"))
    assert all(s.index[0] >= pd.Timestamp("2024-02-01", tz="Europe/Paris") for s, _ in window)
    with pytest.raises(IntegrityError):
        model.set_many_ts(mapping, keys=keys)
    model.set_many_ts(mapping, keys=keys, kwargs_bulk_create={"ignore_conflicts": True})
    many = model.get_many_max_horodate({}, distinct_on=("version",))
    assert many[(5,)] == mapping[(5, "G")].index.max()


def test_readme_quick_start() -> None:
    """holcstore's README, "Basic usage: TimeseriesChunkStore class", step 2, as written."""
    MyChunkedStore = ReadmeChunkStore  # the README's name
    tz = MyChunkedStore.STORE_TZ
    my_series = make_series("2025-04-01", 24 * 91)
    delta_series = pd.Series(-1.0, index=pd.date_range("2025-05-10", periods=48, freq="1h",
                                                       tz=tz))
    series1, series2 = make_series("2025-01-01", 24 * 40, seed=1), make_series("2024-12-20",
                                                                               24 * 3, seed=2)
    # Set one
    attrs = {"version": 1, "kind": "type1"}
    MyChunkedStore.set_ts(attrs, my_series)  # first write
    same(MyChunkedStore.get_ts(attrs), my_series)
    MyChunkedStore.set_ts(attrs, delta_series, update=True)  # update (combine_first)
    same(MyChunkedStore.get_ts(attrs), delta_series.combine_first(my_series))
    MyChunkedStore.set_ts(attrs, delta_series, replace=True)  # replace
    same(MyChunkedStore.get_ts(attrs), delta_series)
    with pytest.raises(IntegrityError):
        MyChunkedStore.set_ts(attrs, delta_series)  # FAIL (attrs exists)

    # Get one
    MyChunkedStore.set_ts(attrs, my_series, replace=True)
    full = MyChunkedStore.get_ts(attrs)
    same(full, my_series)
    window = MyChunkedStore.get_ts(attrs, start="2025-05-01", end="2025-05-31")
    same(window, my_series[pd.Timestamp("2025-05-01", tz=tz):pd.Timestamp("2025-05-31", tz=tz)])
    with pytest.raises(ValueError):
        MyChunkedStore.get_ts({"version": 1})  # FAIL : must specify all attrs
    assert MyChunkedStore.get_ts({"version": 1, "kind": "nonexisting"}) is None

    # Set many
    mapping = {(5, "type1"): series1, (5, "type2"): series2}
    MyChunkedStore.set_many_ts(mapping, keys=("version", "kind"))

    # Yield many: the 2 (serie, key_dict) from mapping
    got = {(d["version"], d["kind"]): s for s, d in MyChunkedStore.yield_many_ts({"version": 5})}
    assert set(got) == set(mapping)
    for k, s in got.items():
        same(s, mapping[k])

    # CANNOT set many over existing
    with pytest.raises(IntegrityError):
        MyChunkedStore.set_many_ts(mapping, keys=("version", "kind"))
    for k, s in mapping.items():  # and nothing was written
        same(MyChunkedStore.get_ts(dict(zip(("version", "kind"), k, strict=True))), s)


def test_year_chunks_indexes() -> None:
    attrs = {"version": 10, K: "A"}
    HolcStoreYear.set_ts(attrs, make_series("2024-01-01", 8760 * 2, seed=1))
    assert list(HolcStoreYear.objects.order_by("chunk_index")
                .values_list("chunk_index", flat=True)) == [2024, 2025]
    HolcStoreYearMonth.set_ts(attrs, make_series("2024-01-31 23:00", 2))
    assert list(HolcStoreYearMonth.objects.order_by("chunk_index")
                .values_list("chunk_index", flat=True)) == [2024 * 12, 2024 * 12 + 1]


def test_naive_input_is_localised_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    s = make_series("2024-01-01", 48)
    naive = s.tz_localize(None)
    with caplog.at_level(logging.WARNING):
        HolcStoreYearMonth.set_ts({"version": 1, K: "n"}, naive)
    assert "without tz" in caplog.text
    same(HolcStoreYearMonth.get_ts({"version": 1, K: "n"}), s)


def test_off_grid_values_raise() -> None:
    s = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-01 00:30"]).tz_localize("UTC"))
    with pytest.raises(ValueError, match="grid"):
        HolcStoreYearMonth.set_ts({"version": 1, K: "x"}, s)
    assert HolcStoreYearMonth.objects.count() == 0


def test_sync_refusals_and_soft_delete() -> None:
    attrs = {"version": 1, "kind": "A"}
    s = make_series("2024-01-01", 24 * 40)
    with pytest.raises(ValueError):
        SyncStore.set_ts(attrs, s)
    with pytest.raises(ValueError):
        SyncStore.set_many_ts({(1, "A"): s}, keys=("version", "kind"))
    SyncStore.set_ts(attrs, s, replace=True)
    since = SyncStore.last_updated_at()
    with pytest.raises(ValueError):
        SyncStore.objects.all().delete()
    assert SyncStore.objects.filter(chunk_index=2024 * 12).delete(keep_tracking=True) == 1
    assert SyncStore.objects.filter(is_deleted=True).count() == 1
    tomb = SyncStore.objects.get(is_deleted=True)
    assert tomb.updated_at >= since
    same(SyncStore.get_ts(attrs), s[s.index >= pd.Timestamp("2024-02-01", tz="Europe/Paris")])
    feed = ChunkChange.objects.filter(store=SyncStore._meta.db_table).order_by("version")
    assert [c.deleted for c in feed] == [False, False, True]
    updates = SyncStore.list_updates(since)
    assert updates and updates[-1]["is_deleted"] and updates[-1]["attrs"] == attrs
    SyncStore.objects.get(chunk_index=2024 * 12 + 1).delete(keep_tracking=True)
    assert SyncStore.get_ts(attrs) is None
    SyncStore.objects.all().delete(_disable_sync_safety=True)
    assert SyncStore.objects.count() == 0


def test_import_chunks_is_atomic() -> None:
    attrs = {"version": 1, "kind": "A"}
    s = pd.Series(range(40 * 24), index=pd.date_range("2024-01-01", periods=40 * 24,
                                                      freq="1h", tz="UTC"), dtype=float)
    SyncStore.set_ts(attrs, s, replace=True)
    spec = [{"attrs": attrs, "chunk_index": r.chunk_index} for r in SyncStore.objects.all()]
    payload = SyncStore.export_chunks(spec)
    assert all(isinstance(b, bytes) and "chunk_index" in a for b, a, _ in payload)
    SyncStore.objects.all().delete(_disable_sync_safety=True)
    bad = dict(payload[1][1])
    bad.pop("chunk_index")
    with pytest.raises(ValueError):
        SyncStore.import_chunks([payload[0], (payload[1][0], bad, payload[1][2])])
    assert SyncStore.objects.count() == 0
    SyncStore.import_chunks(payload)
    assert SyncStore.objects.count() == len(payload)
    same(SyncStore.get_ts(attrs), s)


def test_versions_grow_per_chunk() -> None:
    attrs = {"version": 1, K: "v"}
    seen = []
    for i in range(3):
        HolcStoreYearMonth.set_ts(attrs, make_series("2024-01-10", 5, seed=i), update=True)
        seen.append(HolcStoreYearMonth.objects.get().row_version)
    assert seen == sorted(set(seen))


def test_table_name_and_constraints() -> None:
    meta = HolcStoreYearMonth._meta
    # 68 characters: cut to 54 and suffixed with blake2b's 8 hex digits, as holcstore does
    assert meta.db_table == "testapp_holcstoreyearmonth__cayear_month_f1h_tzEurope__efd1b41a"
    assert SyncStore._meta.db_table == "testapp_syncstore__cayear_month_f1h_tzEurope_Paris_sync"
    (unique,) = meta.constraints
    assert list(unique.fields) == ["kind_very_long_name_for_testing_purpose", "version",
                                   "chunk_index"]
    assert {tuple(i.fields) for i in meta.indexes} == {
        (K, "version", "chunk_index"), ("updated_at",)}
    assert HolcStoreYearMonth.get_model_keys() == {"version", K}
    assert HolcStoreYearMonth.get_model_keys(allow_id=True) == {"id", "version", K}
    long = "testapp_framedconformancea__cayear_month_f15min_tzEuro_912fd9b2"
    from testapp.models import FramedConformanceA
    assert FramedConformanceA._meta.db_table == long and len(long) == 63


def test_settings_are_frozen() -> None:
    for name in ("CHUNK_AXIS", "STORE_TZ", "STORE_FREQ", "ALLOW_CLIENT_SERVER_SYNC"):
        with pytest.raises(AttributeError):
            setattr(HolcStoreYearMonth, name, getattr(HolcStoreYearMonth, name))


@pytest.mark.parametrize("setting", [
    {"CHUNK_AXIS": ("month",)}, {"STORE_FREQ": "banana"}, {"STORE_TZ": "Mars/Olympus"},
    {"STORE_FREQ": "7min"}, {"ALLOW_CLIENT_SERVER_SYNC": "yes"}, {"CACHED_INDEX_SIZE": -1},
])
def test_invalid_settings_raise_at_definition(setting: dict) -> None:
    with pytest.raises(ValueError, match="Bad"):
        type("Bad", (TimeseriesChunkStore,), {
            "__module__": "testapp.models", "k": models.IntegerField(),
            "Meta": type("Meta", (), {"app_label": "testapp"}), **setting})


@isolate_apps("testapp")  # the models defined here stay out of the app registry
def test_custom_manager_must_derive_from_chunk_queryset() -> None:
    class Fine(ChunkQuerySet):
        """A custom queryset built on the adapter's: accepted."""

    type("GoodManager", (TimeseriesChunkStore,), {
        "__module__": "testapp.models", "k": models.IntegerField(), "objects": Fine.as_manager(),
        "Meta": type("Meta", (), {"app_label": "testapp"})})
    with pytest.raises(ImproperlyConfigured, match="ChunkQuerySet"):
        type("BadManager", (TimeseriesChunkStore,), {
            "__module__": "testapp.models", "k": models.IntegerField(),
            "objects": models.Manager(), "Meta": type("Meta", (), {"app_label": "testapp"})})


def test_models_and_migrations_agree() -> None:
    """The adapter's own app and the test app have every model change in a migration."""
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
