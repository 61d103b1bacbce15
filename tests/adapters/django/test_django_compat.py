"""Storage compatibility with holcstore 0.6.7: the exact byte layout of chunk rows, rows
built by hand as holcstore writes them, and holcstore itself (bench/.venv) reading rows the
adapter wrote and writing rows the adapter reads, in the same database (SQLite or PostgreSQL)."""

from __future__ import annotations

import lz4.frame
import numpy as np
import pandas as pd
import pytest
from holcstore_env import run_holcstore
from testapp.models import FramedStore, HolcStoreYearMonth

from curvestore.adapters.django import compat
from curvestore.errors import IntegrityError as CurvestoreIntegrityError

K = "kind_very_long_name_for_testing_purpose"
ATTRS = {"version": 1, K: "A"}
PARIS = "Europe/Paris"


def period(year: int, month: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(year=year, month=month, day=1, tz=PARIS)
    return pd.date_range(start, start + pd.offsets.MonthBegin(), freq="1h", inclusive="left")


def test_adapter_rows_use_holcstore_byte_layout() -> None:
    s = pd.Series(np.arange(50, dtype=float),
                  index=pd.date_range("2024-03-30 12:00", periods=50, freq="1h", tz=PARIS))
    HolcStoreYearMonth.set_ts(ATTRS, s)
    rows = list(HolcStoreYearMonth.objects.order_by("chunk_index"))
    assert [r.chunk_index for r in rows] == [2024 * 12 + 2, 2024 * 12 + 3]
    for row, (y, m) in zip(rows, [(2024, 3), (2024, 4)], strict=True):
        idx = period(y, m)  # March has 743 hours in Paris (DST)
        full = s.reindex(idx).to_numpy()
        assert row.dtype == "float64"
        assert pd.Timestamp(row.start_ts) == idx[0]
        assert bytes(row.data) == lz4.frame.compress(full.tobytes())
        assert not row.is_deleted
    assert len(np.frombuffer(lz4.frame.decompress(bytes(rows[0].data)))) == 743


def test_hand_built_holcstore_rows_are_read() -> None:
    idx = period(2024, 1)
    values = np.full(len(idx), np.nan)
    values[10:20] = np.arange(10.0)
    now = pd.Timestamp.now(tz="UTC")
    HolcStoreYearMonth.objects.bulk_create([HolcStoreYearMonth(
        version=1, kind_very_long_name_for_testing_purpose="A", chunk_index=2024 * 12,
        start_ts=idx[0], dtype="float64", data=lz4.frame.compress(values.tobytes()),
        updated_at=now, is_deleted=False)])
    got = HolcStoreYearMonth.get_ts(ATTRS)
    expected = pd.Series(values, index=idx).dropna()
    pd.testing.assert_series_equal(got, expected, check_freq=False, check_index_type=False)
    assert HolcStoreYearMonth.get_max_horodate(ATTRS) == idx[19]
    # an update merges into the holcstore row, which stays in holcstore's format
    HolcStoreYearMonth.set_ts(ATTRS, pd.Series([100.0], index=idx[[25]]), update=True)
    row = HolcStoreYearMonth.objects.get()
    merged = values.copy()
    merged[25] = 100.0
    assert bytes(row.data) == lz4.frame.compress(merged.tobytes())
    (serie, key), = HolcStoreYearMonth.yield_many_ts({"version": 1})
    assert key == ATTRS and serie.iloc[-1] == 100.0


def test_framed_rows_carry_codec_and_checksum() -> None:
    attrs = {"version": 1, "kind": "A"}
    s = pd.Series([1.0, 2.0], index=pd.date_range("2024-01-10", periods=2, freq="1h", tz=PARIS))
    FramedStore.set_ts(attrs, s)
    row = FramedStore.objects.get()
    data = bytes(row.data)
    assert data.startswith(compat.MAGIC)
    frame = compat.unpack_frame(data)
    assert (frame.codec, frame.length, frame.count) == ("lz4", 2, 2)
    assert pd.Timestamp(row.start_ts) == s.index[0]
    row.data = data[:-1] + bytes([data[-1] ^ 0xFF])
    row.save()
    with pytest.raises(CurvestoreIntegrityError):
        FramedStore.get_ts(attrs)


_HOLC_SCRIPT = r"""
import pandas as pd
from django.db import models
from hostore.models import TimeseriesChunkStore

class HolcStoreYearMonth(TimeseriesChunkStore):
    version = models.IntegerField()
    kind_very_long_name_for_testing_purpose = models.CharField(max_length=50)
    CHUNK_AXIS = ("year", "month")
    class Meta:
        app_label = "testapp"

attrs = {"version": 1, "kind_very_long_name_for_testing_purpose": "A"}
if sys.argv[2] == "read":
    s = HolcStoreYearMonth.get_ts(attrs)
    print(json.dumps({"table": HolcStoreYearMonth._meta.db_table,
                      "index": [t.isoformat() for t in s.index], "values": s.tolist()}))
else:
    idx = pd.date_range("2024-10-20", periods=24 * 15, freq="1h", tz="Europe/Paris")
    attrs["kind_very_long_name_for_testing_purpose"] = "H"
    HolcStoreYearMonth.set_ts(attrs, pd.Series(range(len(idx)), index=idx, dtype=float))
    print(json.dumps({"table": HolcStoreYearMonth._meta.db_table}))
"""


def _run_holcstore(database: str, mode: str) -> dict:
    return run_holcstore(database, _HOLC_SCRIPT, mode)


def test_holcstore_reads_adapter_rows(database: str) -> None:
    s = pd.Series(np.random.default_rng(0).standard_normal(24 * 70),
                  index=pd.date_range("2024-03-01", periods=24 * 70, freq="1h", tz=PARIS))
    s.iloc[100:200] = np.nan
    HolcStoreYearMonth.set_ts(ATTRS, s)
    HolcStoreYearMonth.set_ts(ATTRS, s.iloc[:10] * 2, update=True)
    out = _run_holcstore(database, "read")
    assert out["table"] == HolcStoreYearMonth._meta.db_table
    got = pd.Series(out["values"], index=pd.to_datetime(out["index"], utc=True)).dropna()
    expected = (s.iloc[:10] * 2).combine_first(s).dropna()
    assert (got.index == expected.index.tz_convert("UTC")).all()
    assert np.array_equal(got.to_numpy(), expected.to_numpy())


def test_adapter_reads_holcstore_rows(database: str) -> None:
    _run_holcstore(database, "write")
    attrs = {"version": 1, K: "H"}
    got = HolcStoreYearMonth.get_ts(attrs)
    idx = pd.date_range("2024-10-20", periods=24 * 15, freq="1h", tz=PARIS)
    pd.testing.assert_series_equal(got, pd.Series(range(len(idx)), index=idx, dtype=float),
                                   check_freq=False, check_index_type=False)
    assert HolcStoreYearMonth.objects.get(chunk_index=2024 * 12 + 9).row_version is None
    HolcStoreYearMonth.set_ts(attrs, pd.Series([-1.0], index=idx[[0]]), update=True)
    assert HolcStoreYearMonth.get_ts(attrs).iloc[0] == -1.0
