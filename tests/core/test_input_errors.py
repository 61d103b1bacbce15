"""One test per bad input: each raises its specific error from curvestore.errors and writes
nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.backends.memory import MemoryBackend
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    GridError,
    InvalidDataError,
    InvalidKeyError,
    StoreExistsError,
    StoreNotFoundError,
    UnknownBackendError,
    UnknownCodecError,
)

KEYS = {"site": str, "n": int}
TZ = "Europe/Paris"
GOOD_KEY = {"site": "a", "n": 1}


@pytest.fixture
def url() -> Iterator[str]:
    name = uuid.uuid4().hex
    yield f"memory://{name}"
    MemoryBackend.forget(name)


@pytest.fixture
def store(url: str) -> Iterator[curvestore.Store]:
    with curvestore.create_store(url, keys=KEYS, freq="15min", tz=TZ) as s:
        yield s


@pytest.fixture
def hourly(url: str) -> Iterator[curvestore.Store]:
    with curvestore.create_store(url, keys=KEYS, freq="1h", tz=TZ) as s:
        yield s


def _index(periods: int = 4, freq: str = "15min", start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq=freq, tz=TZ)


def _good() -> pd.Series:
    return pd.Series([1.0, 2.0, 3.0, 4.0], index=_index())


def assert_nothing_written(store: curvestore.Store) -> None:
    assert store.keys() == []
    assert store.changes().items == []
    assert store.info()["chunks"] == 0


def _refused(store: curvestore.Store, error: type[Exception], series: object,
             key: object = GOOD_KEY, match: str | None = None,
             many_key: tuple | None = ("a", 1)) -> None:
    """Every mode refuses it with exactly ``error``, alone and in a batch; nothing is written."""
    for mode in ("insert", "update", "replace"):
        with pytest.raises(error, match=match) as info:
            store.write(key, series, mode=mode)  # type: ignore[arg-type]
        assert type(info.value) is error
        assert isinstance(info.value, ValueError)
    if many_key is not None:  # in a batch, after a good series
        with pytest.raises(error):
            store.write_many({("a", 0): _good(), many_key: series})
    assert_nothing_written(store)


# -- index ----------------------------------------------------------------------------------

def test_non_datetime_index(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series([1.0, 2.0, 3.0]), match="DatetimeIndex")


def test_period_index(store: curvestore.Store) -> None:
    series = pd.Series([1.0, 2.0], index=pd.period_range("2024-01-01", periods=2, freq="h"))
    _refused(store, InvalidDataError, series, match="DatetimeIndex")


def test_string_index(store: curvestore.Store) -> None:
    series = pd.Series([1.0, 2.0], index=["2024-01-01 00:00", "2024-01-01 00:15"])
    _refused(store, InvalidDataError, series, match="DatetimeIndex")


def test_naive_index(store: curvestore.Store) -> None:
    series = pd.Series([1.0, 2.0], index=pd.date_range("2024-01-01", periods=2, freq="15min"))
    _refused(store, InvalidDataError, series, match="naive")


def test_nat_in_index(store: curvestore.Store) -> None:
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-01", tz=TZ), pd.NaT])
    _refused(store, InvalidDataError, pd.Series([1.0, 2.0], index=index), match="NaT")


def test_duplicate_timestamps(store: curvestore.Store) -> None:
    index = _index().append(_index()[1:2])
    _refused(store, InvalidDataError, pd.Series(np.arange(5.0), index=index), match="duplicate")


def test_duplicate_timestamps_ns_index(store: curvestore.Store) -> None:
    index = _index().as_unit("ns")
    index = index.append(index[1:2])
    _refused(store, InvalidDataError, pd.Series(np.arange(5.0), index=index), match="duplicate")


def test_finer_data_into_hourly_store_raises_not_thins(hourly: curvestore.Store) -> None:
    series = pd.Series(np.arange(8.0), index=_index(8, "15min"))
    _refused(hourly, GridError, series, match="grid")


def test_single_off_grid_point_in_hourly_store(hourly: curvestore.Store) -> None:
    series = pd.Series([1.0], index=[pd.Timestamp("2024-01-01 00:15", tz=TZ)])
    _refused(hourly, GridError, series, match="grid")


def test_timestamps_not_aligned(store: curvestore.Store) -> None:
    series = pd.Series([1.0, 2.0, 3.0], index=_index(3, "15min", "2024-01-01 00:07"))
    _refused(store, GridError, series, match="00:07")


def test_one_misaligned_point_among_good_ones(store: curvestore.Store) -> None:
    index = _index(6).insert(3, pd.Timestamp("2024-01-01 00:50", tz=TZ))
    _refused(store, GridError, pd.Series(np.arange(7.0), index=index))


def test_timestamp_outside_supported_years(store: curvestore.Store) -> None:
    series = pd.Series([1.0], index=[pd.Timestamp("1960-01-01", tz=TZ)])
    _refused(store, GridError, series, match="years")


def test_timestamps_near_2262_in_an_eastern_time_zone(url: str) -> None:
    """Offsets from the grid's origin (1970 in Tokyo, 9 h before UTC's) once wrapped int64
    for instants near the end of the nanosecond range, and split() failed in zip()."""
    with curvestore.create_store(url, keys=KEYS, freq="1h", tz="Asia/Tokyo") as store:
        late = pd.Timestamp("2262-04-11 22:00", tz="UTC").as_unit("us").tz_convert("Asia/Tokyo")
        tokyo_us = pd.DatetimeTZDtype("us", "Asia/Tokyo")
        cases = [
            # microseconds throughout: pandas 2 makes nanoseconds, which end in 2262
            pd.DatetimeIndex([pd.Timestamp("2262-04-11 10:00", tz="Asia/Tokyo"), late],
                             dtype=tokyo_us),
            pd.date_range("2262-04-11 20:00", periods=6, freq="1h", tz="Asia/Tokyo", unit="us"),
            pd.DatetimeIndex([pd.Timestamp("2199-12-31 23:00", tz="Asia/Tokyo"), late],
                             dtype=tokyo_us),
        ]
        for index in cases:
            series = pd.Series(np.arange(float(len(index))), index=index)
            _refused(store, GridError, series, match="outside the supported years 1970-2199")


def test_error_names_the_first_point_outside_the_years(store: curvestore.Store) -> None:
    index = pd.DatetimeIndex([pd.Timestamp("2199-12-31 23:30", tz=TZ),
                              pd.Timestamp("2199-12-31 23:45", tz=TZ),
                              pd.Timestamp("2200-01-01 00:00", tz=TZ)])
    _refused(store, GridError, pd.Series([1.0, 2.0, 3.0], index=index),
             match=r"timestamp 2200-01-01 00:00:00\+01:00 is outside")


# -- values -----------------------------------------------------------------------------------

def test_int64_beyond_2_53_is_refused_not_rounded(store: curvestore.Store) -> None:
    series = pd.Series(np.array([1, 2, 9007199254740993, 4], dtype=np.int64), index=_index())
    _refused(store, InvalidDataError, series,
             match=r"value 9007199254740993 at 2024-01-01 00:30:00\+01:00 cannot be stored "
                   "exactly as float64")


def test_python_int_beyond_float64_is_refused_not_overflow(store: curvestore.Store) -> None:
    series = pd.Series([1, 2, 3, 10**400], index=_index(), dtype=object)
    _refused(store, InvalidDataError, series, match=r"\(401 characters\) at 2024-01-01 00:45")


def test_infinite_value_error_names_its_timestamp(store: curvestore.Store) -> None:
    series = pd.Series([1.0, 2.0, 3.0, -np.inf], index=_index())
    _refused(store, InvalidDataError, series, match=r"infinite value at 2024-01-01 00:45")


def test_large_exact_integers_are_stored(store: curvestore.Store) -> None:
    values = np.arange(-5, 5, dtype=np.int64) * 2**50
    series = pd.Series(values, index=_index(10))
    assert store.write(GOOD_KEY, series) == 1
    got = store.read(GOOD_KEY)
    assert got is not None and got.tolist() == values.astype(float).tolist()


def test_string_values(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series(["1", "2", "x", "4"], index=_index()),
             match="numeric")


def test_object_column_with_strings(store: curvestore.Store) -> None:
    series = pd.Series([1.0, "2.5", 3.0, None], index=_index(), dtype=object)
    _refused(store, InvalidDataError, series, match="numeric")


def test_object_column_of_numeric_strings(store: curvestore.Store) -> None:
    series = pd.Series(["1.0", "2.0", "3.0", "4.0"], index=_index(), dtype=object)
    _refused(store, InvalidDataError, series, match="numeric")


def test_boolean_values(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series([True, False, True, True], index=_index()),
             match="boolean")


def test_nullable_boolean_values(store: curvestore.Store) -> None:
    series = pd.Series([True, None, False, True], index=_index(), dtype="boolean")
    _refused(store, InvalidDataError, series, match="boolean")


def test_object_booleans(store: curvestore.Store) -> None:
    series = pd.Series([True, False, None, True], index=_index(), dtype=object)
    _refused(store, InvalidDataError, series)


def test_inf(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series([1.0, np.inf, 3.0, 4.0], index=_index()),
             match="infinite")


def test_minus_inf(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series([1.0, 2.0, -np.inf, 4.0], index=_index()),
             match="infinite")


def test_complex_values(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series(np.arange(4) + 1j, index=_index()))


def test_datetime_values(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.Series(_index(), index=_index()))


def test_not_a_series(store: curvestore.Store) -> None:
    _refused(store, InvalidDataError, pd.DataFrame({"v": [1.0, 2.0]}, index=_index(2)))


def test_write_many_not_a_mapping(store: curvestore.Store) -> None:
    with pytest.raises(InvalidDataError):
        store.write_many([(("a", 1), _good())])  # type: ignore[arg-type]
    assert_nothing_written(store)


def test_write_many_same_key_twice(url: str) -> None:
    """A bare value and a 1-tuple name the same series of a single-key store."""
    with curvestore.create_store(url, keys=["site"], freq="15min", tz=TZ) as store:
        with pytest.raises(InvalidDataError, match="twice"):
            store.write_many({"a": _good(), ("a",): _good()})
        assert_nothing_written(store)


# -- keys ------------------------------------------------------------------------------------

def test_missing_key_attribute(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": "a"}, match="missing",
             many_key=("a",))


def test_unknown_key_attribute(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": "a", "n": 1, "kind": "x"},
             match="unknown", many_key=None)


def test_int_for_str_key(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": 1, "n": 1}, match="str",
             many_key=(1, 1))


def test_str_for_int_key(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": "a", "n": "1"}, match="int",
             many_key=("a", "1"))


def test_bool_for_int_key(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": "a", "n": True}, match="int",
             many_key=("a", True))


def test_float_for_int_key(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key={"site": "a", "n": 1.0}, match="int",
             many_key=("a", 1.0))


def test_key_not_a_dict(store: curvestore.Store) -> None:
    _refused(store, InvalidKeyError, _good(), key=("a", 1), many_key=None)


def test_write_many_key_of_wrong_length(store: curvestore.Store) -> None:
    with pytest.raises(InvalidKeyError, match="expected 2"):
        store.write_many({("a", 1): _good(), ("a", 1, 2): _good()})
    assert_nothing_written(store)


# -- modes, stores, URLs, codecs ---------------------------------------------------------------

def test_bad_mode(store: curvestore.Store) -> None:
    for call in (lambda: store.write(GOOD_KEY, _good(), mode="upsert"),
                 lambda: store.write_many({("a", 1): _good()}, mode="append"),
                 lambda: store.write(GOOD_KEY, _good(), mode="")):
        with pytest.raises(ConfigurationError, match="mode") as info:
            call()
        assert isinstance(info.value, ValueError)
    assert_nothing_written(store)


def test_open_with_conflicting_config(store: curvestore.Store, url: str) -> None:
    store.write(GOOD_KEY, _good())
    before = store.backend.read_manifest()
    with pytest.raises(ConfigMismatchError, match="freq") as info:
        curvestore.open_store(url, freq="1h", tz=TZ)
    assert info.value.differences == {"freq": ("15min", "1h")}
    with pytest.raises(ConfigMismatchError, match="tz"):
        curvestore.create_store(url, keys=KEYS, freq="15min", tz="UTC", exist_ok=True)
    assert store.backend.read_manifest() == before
    assert store.keys() == [GOOD_KEY] and len(store.changes().items) == 1


def test_unknown_url_scheme() -> None:
    with pytest.raises(UnknownBackendError) as info:
        curvestore.create_store("nosuch://x", keys=KEYS, freq="15min", tz=TZ)
    assert info.value.scheme == "nosuch"
    assert "memory" in str(info.value) and "file" in str(info.value)
    assert {"memory", "file"} <= set(info.value.available)
    with pytest.raises(UnknownBackendError, match="available schemes"):
        curvestore.open_store("nosuch://x")


def test_unknown_codec(url: str) -> None:
    with pytest.raises(UnknownCodecError) as info:
        curvestore.create_store(url, keys=KEYS, freq="15min", tz=TZ, codec="nope")
    assert info.value.codec_id == "nope"
    assert "lz4" in str(info.value) and "lz4" in info.value.available
    with pytest.raises(StoreNotFoundError):
        curvestore.open_store(url)  # nothing was created


def test_unknown_codec_at_open(store: curvestore.Store, url: str) -> None:
    with pytest.raises(UnknownCodecError, match=r"available codecs.*lz4"):
        curvestore.open_store(url, codec="nope")
    with pytest.raises(UnknownCodecError):
        curvestore.open_store(url + "?codec=nope")
    assert_nothing_written(store)


def test_create_over_existing_store(store: curvestore.Store, url: str) -> None:
    store.write(GOOD_KEY, _good())
    before = store.backend.read_manifest()
    with pytest.raises(StoreExistsError):
        curvestore.create_store(url, keys=KEYS, freq="15min", tz=TZ)
    with pytest.raises(StoreExistsError):  # even with another config
        curvestore.create_store(url, keys={"x": str}, freq="1h", tz="UTC")
    assert store.backend.read_manifest() == before
    assert store.keys() == [GOOD_KEY]


def test_open_empty_location(url: str) -> None:
    with pytest.raises(StoreNotFoundError) as info:
        curvestore.open_store(url)
    assert isinstance(info.value, LookupError)
    with pytest.raises(StoreNotFoundError):
        curvestore.open_store(url, read_only=True)


@pytest.mark.parametrize("config", [
    {"freq": "1M"}, {"freq": "0min"}, {"freq": "-15min"}, {"freq": "1500ms"},
    {"tz": "Mars/Olympus"}, {"chunking": "week"}, {"keys": {}}, {"keys": {"Site": str}},
    {"keys": {"site": float}}, {"keys": {"_chunk": str}}, {"keys": {"_": str}},
    {"dtype": "float32"},
])
def test_bad_store_config(url: str, config: dict) -> None:
    settings = {"keys": KEYS, "freq": "15min", "tz": TZ, **config}
    with pytest.raises(ConfigurationError):
        curvestore.create_store(url, **settings)
    with pytest.raises(StoreNotFoundError):
        curvestore.open_store(url)
