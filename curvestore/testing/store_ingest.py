"""The long-format half of :class:`~curvestore.testing.store.StoreSemantics`: ``ingest`` of
rows (key columns, time, value; any order, in batches) stores what ``write_frame`` of the same
data pivoted stores, in every mode; bad input (types, keys, naive or off-grid times, duplicate
points) is refused whole; input beyond ``buffer_bytes`` is written group by group when each
series' rows come together, refused otherwise; every source type reads the same rows.

It uses :class:`~curvestore.testing.store_frames.FrameSemantics`' ``single_key_store`` (a
store keyed by ``meter: str``), as the two are mixed into ``StoreSemantics`` together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.errors import (
    ConfigurationError,
    DuplicatePointError,
    GridError,
    InvalidDataError,
    InvalidKeyError,
    ReadOnlyError,
    SeriesExistsError,
)
from curvestore.testing.fixtures import KEYS, TZ, StoreFixtures, assert_series_exact, curve, key
from curvestore.testing.store_frames import assert_frame_read, wide

__all__ = ["IngestSemantics", "long_rows"]

A, B, C, D = ("a", "load", 1), ("a", "load", 2), ("b", "prod", 1), ("b", "load", 3)
COLUMNS: dict[str, Any] = {"key_columns": ["site", "kind", "n"], "time_column": "ts",
                           "value_column": "kw"}


def long_rows(columns: dict[Any, pd.Series], names: list[str] | None = None,
              seed: int | None = 0) -> pd.DataFrame:
    """The rows of ``columns`` (label -> series) in long format: one column per key name,
    then ``ts`` and ``kw``; shuffled unless ``seed`` is None."""
    names = list(KEYS) if names is None else names
    parts = []
    for label, series in columns.items():
        values = label if isinstance(label, tuple) else (label,)
        part = pd.DataFrame({"ts": series.index, "kw": series.to_numpy()})
        for name, value in zip(names, values, strict=True):
            part[name] = value
        parts.append(part[[*names, "ts", "kw"]])
    rows = pd.concat(parts, ignore_index=True)
    if seed is not None:
        rows = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return rows


def _same_stores(store: curvestore.Store, twin: curvestore.Store) -> None:
    assert store.keys() == twin.keys()
    for (k1, s1), (k2, s2) in zip(store.read_many(), twin.read_many(), strict=True):
        assert k1 == k2
        assert_series_exact(s1, s2)


class IngestSemantics(StoreFixtures):
    """``Store.ingest`` through the public API."""

    # -- the same as write_frame -----------------------------------------------------------
    def test_ingest_equals_write_frame(self, store: curvestore.Store,
                                       other_backend_url: str | None) -> None:
        if other_backend_url is None:
            pytest.skip("needs a second location")
        twin = curvestore.create_store(other_backend_url, keys=self.keys, freq=self.freq,
                                       tz=self.tz, chunking=self.chunking)
        a = curve("2024-03-20", end="2024-04-03", seed=1, nan=0.1)  # across DST and months
        steps: list[tuple[str, dict[Any, pd.Series]]] = [
            ("insert", {A: a, B: a.loc["2024-04-01":] + 1, C: a * np.nan,
                        D: curve("2024-03-31", end="2024-03-31 23:45", seed=2)}),
            ("update", {A: curve("2024-03-30", end="2024-04-05", seed=3, nan=0.3),
                        C: curve("2024-04-02", end="2024-04-02 12:00", seed=4)}),
            ("replace", {A: curve("2024-03-25", end="2024-03-26", seed=5),
                         B: a * np.nan, D: curve("2024-04-04", periods=3, seed=6)}),
        ]
        try:
            for mode, columns in steps:
                cursor = store.changes().cursor
                rows = long_rows(columns)
                report = store.ingest(rows, mode=mode, batch_rows=97, **COLUMNS)
                chunks = twin.write_frame(wide(columns), mode=mode)
                assert report.chunks == chunks, mode
                assert report.rows == len(rows) and report.series == len(columns)
                assert report.points == int(rows["kw"].notna().sum())
                assert report.commits == 1
                _same_stores(store, twin)
                changed = sorted((tuple(i.key.values()), i.chunk, i.deleted)
                                 for i in self.feed(store, cursor))
                assert len(changed) == chunks, mode
            assert_frame_read(store)
        finally:
            twin.close()

    def test_ingest_that_fits_one_commit_is_one_commit(self, store: curvestore.Store) -> None:
        # more series than the first few buffers hold: still one all-or-nothing commit
        columns = {("m", "load", n): curve("2024-05-01", periods=4, seed=n) for n in range(300)}
        report = store.ingest(long_rows(columns), **COLUMNS)
        assert (report.commits, report.series) == (1, 300)
        assert_series_exact(store.read(key(site="m", kind="load", n=299)),
                            columns[("m", "load", 299)])

    def test_ingest_single_key_columns_units_and_zones(
            self, single_key_store: curvestore.Store) -> None:
        store = single_key_store
        m1 = curve("2024-10-26", end="2024-10-28", seed=7, nan=0.2)  # the autumn DST change
        m2 = curve("2024-10-27", periods=10, seed=8)
        rows = long_rows({"m1": m1, "m2": m2}, names=["id"])
        rows["ts"] = rows["ts"].dt.tz_convert("UTC").dt.as_unit("s")  # any zone and unit
        report = store.ingest(rows, key_columns="id", time_column="ts", value_column="kw")
        assert (report.series, report.chunks) == (2, 2)
        assert_series_exact(store.read({"meter": "m1"}), m1)
        ints = pd.DataFrame({"meter": ["m3"] * 4, "when": m2.index[:4],
                             "v": np.arange(4, dtype=np.int64) * 2**40})
        store.ingest(ints, key_columns={"meter": "meter"}, time_column="when",
                     value_column="v")
        m3 = store.read({"meter": "m3"})
        assert m3 is not None and m3.tolist() == [0.0, 2.0**40, 2.0**41, 3 * 2.0**40]
        # columns named as the keys need no key_columns
        store.ingest(ints.rename(columns={"v": "kw"}).assign(meter="m4"), time_column="when",
                     value_column="kw")
        assert [k["meter"] for k in store.keys()] == ["m1", "m2", "m3", "m4"]

    def test_ingest_naive_times_need_a_zone(self, store: curvestore.Store) -> None:
        march = curve("2024-03-31", end="2024-03-31 05:00", seed=9)  # 02:00-02:45 do not exist
        rows = long_rows({A: march})
        naive = rows.assign(ts=rows["ts"].dt.tz_localize(None))
        with pytest.raises(InvalidDataError, match="naive"):
            store.ingest(naive, **COLUMNS)
        assert store.ingest(naive, tz=store.config.tz, **COLUMNS).points == len(march)
        assert_series_exact(store.read(key()), march)
        autumn = pd.DataFrame({"site": "a", "kind": "load", "n": 2, "kw": 1.0,
                               "ts": pd.to_datetime(["2024-10-27 02:15"])})  # twice that day
        with pytest.raises(InvalidDataError, match="ambiguous"):
            store.ingest(autumn, tz=TZ, **COLUMNS)
        spring = autumn.assign(ts=pd.to_datetime(["2024-03-31 02:15"]))  # never that day
        with pytest.raises(InvalidDataError, match="does not exist"):
            store.ingest(spring, tz=TZ, **COLUMNS)
        assert store.keys() == [key()]

    # -- validation ------------------------------------------------------------------------
    def _bad_inputs(self) -> dict[str, tuple[type[Exception], str, pd.DataFrame]]:
        """Inputs refused whole: (error, text the message holds, rows); most rows valid."""
        good = long_rows({A: curve("2024-01-01", periods=6, seed=10),
                          B: curve("2024-01-01", periods=6, seed=11)}, seed=None)

        def changed(column: str, row: int, value: Any) -> pd.DataFrame:
            out = good.copy()
            out[column] = out[column].astype(object)
            out.loc[row, column] = value
            return out

        return {
            "duplicate": (DuplicatePointError, "two rows", pd.concat([good, good.iloc[[8]]])),
            "duplicate NaN": (DuplicatePointError, "two rows",
                              pd.concat([good, good.iloc[[3]].assign(kw=np.nan)])),
            "off grid": (GridError, "grid",
                         good.assign(ts=good["ts"] + pd.Timedelta("7min"))),
            "years": (GridError, "supported years",
                      good.assign(ts=pd.date_range("2500-01-01", periods=12, freq="15min",
                                                   tz=TZ, unit="us"))),
            "missing column": (InvalidDataError, "no column 'kw'", good.drop(columns="kw")),
            "text times": (InvalidDataError, "timestamps", good.assign(ts=good["ts"].astype(str))),
            "missing time": (InvalidDataError, "missing",
                             good.assign(ts=good["ts"].where(good.index != 7))),
            "text values": (InvalidDataError, "numeric", changed("kw", 7, "x")),
            "infinite": (InvalidDataError, "infinite",
                         good.assign(kw=np.where(good.index == 7, np.inf, good["kw"]))),
            "inexact": (InvalidDataError, "float64",
                        good.assign(kw=np.arange(12, dtype=np.int64) + 2**53 + 1)),
            "missing key": (InvalidKeyError, "missing", changed("site", 7, None)),
            "int key as text": (InvalidKeyError, "integers", good.assign(n=good["n"].astype(str))),
            "text key as int": (InvalidKeyError, "text", good.assign(site=7)),
            "NUL in a key": (InvalidKeyError, "NUL", changed("kind", 7, "lo\x00ad")),
        }

    def test_ingest_invalid_input_writes_nothing(self, store: curvestore.Store) -> None:
        kept = curve("2024-01-01", periods=4, seed=12)
        store.write(key(n=1), kept)
        cursor = store.changes().cursor
        for name, (error, text, rows) in self._bad_inputs().items():
            for mode in ("insert", "update", "replace"):
                with pytest.raises(error) as info:
                    # small batches and commits: the error comes after several batches
                    store.ingest(rows, mode=mode, batch_rows=5, points_per_commit=1,
                                 **COLUMNS)
                assert text in str(info.value), (name, str(info.value))
                assert isinstance(info.value, ValueError)
        assert store.keys() == [key(n=1)]
        assert self.feed(store, cursor) == []
        assert_series_exact(store.read(key(n=1)), kept)

    def test_ingest_duplicate_names_the_point(self, store: curvestore.Store) -> None:
        rows = long_rows({A: curve("2024-02-01", periods=8, seed=13)})
        with pytest.raises(DuplicatePointError) as info:
            store.ingest(pd.concat([rows, rows.iloc[[5]]]), batch_rows=3, **COLUMNS)
        assert info.value.key == key()
        assert info.value.timestamp == rows["ts"].iloc[5]
        assert store.keys() == []

    def test_ingest_insert_over_existing_series_writes_nothing(
            self, store: curvestore.Store) -> None:
        existing = curve("2024-03-01", periods=10, seed=14)
        store.write(key("b", "load", 3), existing)
        cursor = store.changes().cursor
        columns = {A: existing, B: existing, C: existing, D: existing + 1}
        with pytest.raises(SeriesExistsError) as info:
            # one commit per series: D, last in key order, is found before any is written
            store.ingest(long_rows(columns), points_per_commit=1, **COLUMNS)
        assert info.value.keys == [key("b", "load", 3)]
        assert self.feed(store, cursor) == []
        # a series without any value is skipped, as write_frame skips it
        report = store.ingest(long_rows({A: existing, D: existing * np.nan}), **COLUMNS)
        assert (report.series, report.chunks) == (2, 1)
        assert_series_exact(store.read(key("b", "load", 3)), existing)

    def test_ingest_settings_and_read_only(self, store: curvestore.Store, backend_url: str
                                           ) -> None:
        rows = long_rows({A: curve("2024-01-01", periods=4)})
        with self.reopen(backend_url, read_only=True) as read_only, \
                pytest.raises(ReadOnlyError):
            read_only.ingest(rows, **COLUMNS)
        with pytest.raises(ConfigurationError):
            store.ingest(rows, mode="upsert", **COLUMNS)
        with pytest.raises(ConfigurationError):
            store.ingest(rows, batch_rows=0, **COLUMNS)
        with pytest.raises(InvalidKeyError, match="one column per key"):
            store.ingest(rows, key_columns=["site", "n"], time_column="ts", value_column="kw")
        with pytest.raises(InvalidDataError, match="must differ"):
            store.ingest(rows, key_columns=["site", "kind", "n"], time_column="n",
                         value_column="kw")
        with pytest.raises(InvalidDataError, match="cannot ingest"):
            store.ingest(42, **COLUMNS)
        assert store.keys() == []

    # -- streaming -------------------------------------------------------------------------
    def test_ingest_beyond_the_buffer_writes_group_by_group(
            self, single_key_store: curvestore.Store) -> None:
        store = single_key_store
        day = curve("2024-05-01", end="2024-05-01 23:45", seed=15, nan=0.05)
        columns = {f"m{i:03d}": day * (i + 1) for i in range(300)}
        rows = long_rows(columns, names=["meter"], seed=None)  # grouped by meter
        seen: list[Any] = []
        report = store.ingest(rows, time_column="ts", value_column="kw", batch_rows=1000,
                              buffer_bytes=96 * 9 * 100, progress=seen.append)
        assert report.commits > 1 and report.series == 300 and report.chunks == 300
        assert [k["meter"] for k in store.keys()] == sorted(columns)
        assert_series_exact(store.read({"meter": "m299"}), day * 300)
        phases = [p.phase for p in seen]
        assert phases.index("write") < len(phases) - 1 - phases[::-1].index("read")
        last = seen[-1]
        assert (last.phase, last.rows, last.series, last.series_written, last.commits,
                last.read_all) == ("write", len(rows), 300, 300, report.commits, True)
        # not grouped by series and beyond the buffer: refused before anything is written
        shuffled = long_rows({f"x{i:03d}": day for i in range(300)}, names=["meter"])
        with pytest.raises(InvalidDataError, match="not grouped by series"):
            store.ingest(shuffled, time_column="ts", value_column="kw", batch_rows=1000,
                         buffer_bytes=96 * 9 * 100)
        assert len(store.keys()) == 300
        # a series coming back after it was written: the groups before stay written
        again = pd.concat([long_rows({f"y{i:03d}": day for i in range(300)}, ["meter"],
                                     seed=None), long_rows({"y000": day}, ["meter"])])
        with pytest.raises(InvalidDataError, match="written already") as info:
            store.ingest(again, time_column="ts", value_column="kw", batch_rows=1000,
                         buffer_bytes=96 * 9 * 100, mode="update")
        assert any("series were written" in note for note in info.value.__notes__)
        assert "y000" in [k["meter"] for k in store.keys()]

    # -- sources ---------------------------------------------------------------------------
    def test_ingest_sources(self, single_key_store: curvestore.Store, tmp_path: Any) -> None:
        store = single_key_store
        day = curve("2024-06-01", periods=96, seed=16, nan=0.1)
        frames = [long_rows({f"m{i}": day + i}, names=["meter"]) for i in range(3)]
        # an iterable of DataFrames
        assert store.ingest(iter(frames), time_column="ts", value_column="kw").series == 3
        expected = {k["meter"]: s for k, s in store.read_many()}
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True),
                                     preserve_index=False)
        table = table.set_column(0, "meter", table.column("meter").dictionary_encode())
        parquet = tmp_path / "rows.parquet"
        pq.write_table(table, parquet, row_group_size=50)
        csv = tmp_path / "rows.csv"
        pd.concat(frames).assign(meter=lambda f: "0" + f["meter"]).to_csv(csv, index=False)
        sources: dict[str, Any] = {
            "table": table, "batch": table.combine_chunks().to_batches()[0],
            "reader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches(40)),
            "parquet path": str(parquet), "parquet Path": parquet,
        }
        for name, source in sources.items():
            report = store.ingest(source, time_column="ts", value_column="kw",
                                  mode="replace", batch_rows=70)
            assert (report.rows, report.series) == (3 * 96, 3), name
            for meter, series in expected.items():
                assert_series_exact(store.read({"meter": meter}), series)
        store.ingest(csv, time_column="ts", value_column="kw")  # "0m1" stays text
        assert_series_exact(store.read({"meter": "0m1"}), expected["m1"])
        with pytest.raises(InvalidDataError, match="no column 'watts'"):
            store.ingest(parquet, time_column="ts", value_column="watts")
        with pytest.raises(InvalidDataError, match="unknown file type"):
            store.ingest(tmp_path / "rows.json", time_column="ts", value_column="kw")
