"""The Arrow part of :class:`~curvestore.testing.store.StoreSemantics`: ``read_arrow`` streams
what ``read_many`` reads (long layout: a row per stored point) and what ``read_frame`` reads
(wide layout), bit for bit, in bounded batches, with its schema when nothing matches; Polars
and DuckDB consume the reader as it is; and ``ingest`` takes the long layout back exactly,
from the reader, a Polars DataFrame or a DuckDB relation.

Skipped when pyarrow (or, for their tests, Polars or DuckDB) is not installed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import ConfigurationError, InvalidKeyError
from curvestore.testing.fixtures import TZ, StoreFixtures, assert_series_exact, curve

__all__ = ["ArrowSemantics"]

A, B, C, D = ("a", "load", 1), ("a", "load", 2), ("b", "prod", 1), ("b", "load", 3)


def _write(store: curvestore.Store) -> None:
    """Four series: across a DST change and a month end, with holes, a signed zero, a gap
    of weeks between the months some of them hold, and an update over part of one."""
    a = curve("2024-03-20", end="2024-04-03", seed=1, nan=0.1)
    a.iloc[5] = -0.0
    store.write_many({A: a, B: curve("2024-04-01", periods=50, seed=2),
                      C: curve("2024-01-10", periods=20, seed=3, nan=0.2),
                      D: curve("2024-03-31 01:00", periods=9, seed=4)})
    # over part of A, and after its end (backends that append keep fragments of a chunk)
    store.write(dict(zip(store.schema.names, A, strict=True)),
                curve("2024-04-02 12:00", end="2024-04-04", seed=5, nan=0.3), mode="update")


def _micros(index: Any) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(index).as_unit("us").asi8)


def _same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == expected.shape
    nan = np.isnan(expected)
    assert (np.isnan(got) == nan).all()
    assert (got[~nan].view(np.uint64) == expected[~nan].view(np.uint64)).all()


def assert_long_read(store: curvestore.Store, filter: Any = None, start: Any = None,
                     end: Any = None, **kwargs: Any) -> Any:
    """``read_arrow`` (long) holds the valid points of ``read_many``, in its order, with
    the schema the docs give; returns the batches."""
    import pyarrow as pa

    reader = store.read_arrow(filter, start, end, **kwargs)
    batches = list(reader)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    names, types = store.schema.names, store.schema.types
    assert table.schema.names == [*names, "ts", "value"]
    for name, kind in zip(names, types, strict=True):
        want = pa.int64() if kind == "int" else pa.dictionary(pa.int32(), pa.string())
        assert table.schema.field(name).type == want
    assert table.schema.field("ts").type == pa.timestamp("us", tz=store.config.tz)
    assert table.schema.field("value").type == pa.float64()
    keys, ts, values = [], [], []
    for key, series in store.read_many(filter, start, end):
        valid = series.dropna()
        keys += [tuple(key.values())] * len(valid)
        ts.append(_micros(valid.index))
        values.append(valid.to_numpy())
    got_keys = list(zip(*(table.column(n).to_pylist() for n in names), strict=True))
    assert got_keys == keys
    got_ts = table.column("ts").cast(pa.int64()).to_numpy()
    assert (got_ts == (np.concatenate(ts) if ts else np.empty(0, np.int64))).all()
    _same_bits(table.column("value").to_numpy(),
               np.concatenate(values) if values else np.empty(0))
    return batches


def assert_wide_read(store: curvestore.Store, filter: Any = None, start: Any = None,
                     end: Any = None, **kwargs: Any) -> Any:
    """``read_arrow`` (wide) holds what ``read_frame`` holds (its series all hold a value
    in the window), NaN (null) where it has NaN; returns the batches."""
    import pyarrow as pa

    reader = store.read_arrow(filter, start, end, "wide", **kwargs)
    batches = list(reader)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    frame = store.read_frame(filter, start, end)
    labels = [str(c) if not isinstance(c, tuple) else "/".join(map(str, c))
              for c in frame.columns]
    assert table.schema.names == ["ts", *labels]
    assert table.schema.field("ts").type == pa.timestamp("us", tz=store.config.tz)
    assert (table.column("ts").cast(pa.int64()).to_numpy() == _micros(frame.index)).all()
    for label, column in zip(labels, frame.columns, strict=True):
        field = table.schema.field(label)
        assert field.type == pa.float64()
        key = json.loads(field.metadata[b"curvestore.key"])
        assert tuple(key.values()) == (column if isinstance(column, tuple) else (column,))
        got = table.column(label)
        assert got.null_count == int(frame[column].isna().sum())
        _same_bits(got.to_numpy(), frame[column].to_numpy())
    return batches


class ArrowSemantics(StoreFixtures):
    """``Store.read_arrow`` and ``ingest`` of Arrow streams through the public API."""

    def test_read_arrow_long_and_wide(self, store: curvestore.Store) -> None:
        pytest.importorskip("pyarrow")
        for layout in ("long", "wide"):  # nothing stored: the schema, no rows
            empty = store.read_arrow(layout=layout)
            assert empty.read_all().num_rows == 0
        _write(store)
        batches = assert_long_read(store, batch_points=100)
        assert len(batches) > 1
        owners = [{tuple(r.values()) for r in b.select(["site", "kind", "n"]).to_pylist()}
                  for b in batches]
        assert sum(map(len, owners)) == len(set().union(*owners)) == 4  # series never split
        assert_long_read(store, {"site": "a"}, "2024-03-31 01:30", "2024-04-01 00:15")
        empty = assert_long_read(store, {"site": "zz"})
        assert sum(b.num_rows for b in empty) == 0
        # the weeks between C's January and A's March are NaN rows, as in read_frame; a
        # batch holds a month at most (a chunk period of every column is read at once)
        batches = assert_wide_read(store, batch_points=4 * 500)
        assert len(batches) > 3 and max(b.num_rows for b in batches) <= 31 * 96
        assert len(assert_wide_read(store)) == 1  # by default, the four months at once
        assert_wide_read(store, {"kind": "load"}, "2024-03-31", "2024-04-01 12:00",
                         batch_points=2 * 7)
        assert store.read_arrow({"site": "zz"}, layout="wide").schema.names == ["ts"]
        later = store.read_arrow(None, "2025-01-01", None, "wide")
        assert later.schema.names == ["ts"] and later.read_all().num_rows == 0
        # C (January) is no column of April: the metadata says its span ends before
        april = store.read_arrow(None, "2024-04-01", None, "wide").schema.names
        assert april == ["ts", "a/load/1", "a/load/2"]
        for bad in ({"layout": "tall"}, {"batch_points": 0}, {"time_column": "site"},
                    {"value_column": "ts"}):
            with pytest.raises(ConfigurationError):
                store.read_arrow(**bad)
        with pytest.raises(InvalidKeyError):
            store.read_arrow({"nope": 1})

    def test_polars_and_duckdb_read_the_reader(self, store: curvestore.Store) -> None:
        pytest.importorskip("pyarrow")
        pl = pytest.importorskip("polars")
        duckdb = pytest.importorskip("duckdb")
        _write(store)
        start, end = "2024-03-25", "2024-04-01 06:00"
        expected = sorted((*k.values(), float(s.max()), int(s.count()))
                          for k, s in store.read_many(None, start, end))
        frame = pl.from_arrow(store.read_arrow(None, start, end, batch_points=200))
        got = frame.group_by(["site", "kind", "n"]).agg(
            pl.col("value").max().alias("max"), pl.len().alias("count"))
        assert sorted(got.with_columns(pl.col("site").cast(pl.String),
                                       pl.col("kind").cast(pl.String)).rows()) == expected
        assert frame.schema["ts"] == pl.Datetime("us", TZ)
        reader = store.read_arrow(None, start, end)  # noqa: F841 (DuckDB finds it by name)
        con = duckdb.connect()
        try:
            rows = con.sql("select site, kind, n, max(value), count(*) from reader "
                           "group by all order by all").fetchall()
            assert rows == expected
            wide = store.read_arrow(None, start, end, "wide")  # noqa: F841
            maxima = con.sql('select max("a/load/1"), count("a/load/1") from wide').fetchall()
            assert maxima == [next(r[3:] for r in expected if r[:3] == A)]
        finally:
            con.close()

    def test_long_layout_ingests_back_exactly(self, store: curvestore.Store,
                                              other_backend_url: str | None) -> None:
        pytest.importorskip("pyarrow")
        if other_backend_url is None:
            pytest.skip("needs a second location")
        _write(store)
        twin = curvestore.create_store(other_backend_url, keys=self.keys, freq=self.freq,
                                       tz=self.tz, chunking=self.chunking)
        try:
            columns: dict[str, Any] = {"time_column": "ts", "value_column": "value"}
            report = twin.ingest(store.read_arrow(batch_points=64), **columns)
            assert report.series == 4
            _same_store(store, twin)
            for kind in ("polars", "duckdb"):
                module = pytest.importorskip(kind)
                reader = store.read_arrow()
                if kind == "polars":
                    source = module.from_arrow(reader)
                    twin.ingest(source, mode="replace", **columns)
                else:
                    con = module.connect()
                    try:
                        twin.ingest(con.sql("select * from reader"), mode="replace",
                                    **columns)
                    finally:
                        con.close()
                _same_store(store, twin)
        finally:
            twin.close()


def _same_store(store: curvestore.Store, twin: curvestore.Store) -> None:
    assert store.keys() == twin.keys()
    for (k1, s1), (k2, s2) in zip(store.read_many(), twin.read_many(), strict=True):
        assert k1 == k2
        assert_series_exact(s2, s1, tz=store.config.tz)
