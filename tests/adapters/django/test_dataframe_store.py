"""``DataFrameStore`` (holcstore 0.6's one DataFrame per ``(client_id, key)``) on SQLite and
PostgreSQL: round trips of several dtypes and index kinds, ``meta`` and ``store_index``, the
upsert, the checks that refuse bad input before anything is written, and holcstore itself
(holcstore_env) on the same table: same DDL, and rows written by either read by the other."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from django.db import connections
from holcstore_env import run_holcstore
from testapp.models import Frames

pytest.importorskip("pyarrow")


def frames() -> dict[str, pd.DataFrame]:
    n = 5
    when = pd.date_range("2024-03-30 22:00", periods=n, freq="1h", tz="Europe/Paris")
    mixed = pd.DataFrame({
        "i": np.arange(n, dtype="int64"),
        "f": [0.5, np.nan, -1.25, 1e300, 0.0],
        "s": ["a", "é", "", "long " * 20, "z"],
        "b": [True, False, True, True, False],
        "t": when,
        "c": pd.Categorical(["x", "y", "x", "z", "y"]),
        "n": pd.array([1, None, 3, 4, None], dtype="Int64"),
        "i8": np.arange(n, dtype="int8"),
        "f32": np.linspace(0, 1, n, dtype="float32"),
    })
    return {
        "range_index": mixed,
        "datetime_index": pd.DataFrame({"load": np.arange(n, dtype=float)}, index=when),
        "string_index": pd.DataFrame({"v": np.arange(n)}, index=pd.Index(list("abcde"),
                                                                         name="user")),
        "multi_index": pd.DataFrame({"v": np.arange(4.0)}, index=pd.MultiIndex.from_product(
            [[1, 2], ["p", "q"]], names=["site", "kind"])),
        "empty": pd.DataFrame({"a": pd.Series([], dtype="float64")}),
    }


@pytest.mark.parametrize("name", list(frames()))
def test_round_trip_keeps_values_dtypes_and_index(name: str) -> None:
    df = frames()[name]
    row, created = Frames.update_or_create_df(7, name, df, meta={"v": 1})
    assert created and row.pk is not None
    loaded = Frames.load_df(7, name)
    # Parquet keeps no DatetimeIndex freq (holcstore's frames come back without one too)
    pd.testing.assert_frame_equal(loaded, df, check_freq=False)
    if name == "datetime_index":
        assert str(loaded.index.tz) == "Europe/Paris" and loaded.index.freq is None
    stored = Frames.objects.get(client_id=7, key=name)
    assert stored.meta == {"v": 1, "store_index": True}
    assert bytes(stored.payload)[:4] == b"PAR1"  # Parquet


def test_store_index_false_drops_the_index_and_says_so_in_meta() -> None:
    df = frames()["datetime_index"]
    meta: dict = {"tags": ["a"], "nested": {"k": [1, 2.5, None, "x"]}}
    Frames.update_or_create_df(1, "no_index", df, meta=meta, store_index=False)
    assert meta["store_index"] is False  # set in the caller's dict, as holcstore does
    loaded = Frames.load_df(1, "no_index")
    assert isinstance(loaded.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(loaded, df.reset_index(drop=True))
    assert Frames.objects.get(key="no_index").meta == {
        "tags": ["a"], "nested": {"k": [1, 2.5, None, "x"]}, "store_index": False}
    # a store_index already in meta is kept (setdefault), None gives {"store_index": True}
    Frames.update_or_create_df(1, "kept", df, meta={"store_index": "mine"})
    assert Frames.objects.get(key="kept").meta == {"store_index": "mine"}
    Frames.update_or_create_df(1, "none", df, meta=None)
    assert Frames.objects.get(key="none").meta == {"store_index": True}


def test_update_or_create_overwrites_one_row() -> None:
    first, second = frames()["range_index"], frames()["string_index"]
    row1, created1 = Frames.update_or_create_df(3, "k", first, meta={"v": 1, "old": True})
    row2, created2 = Frames.update_or_create_df(3, "k", second, meta={"v": 2})
    assert (created1, created2) == (True, False)
    assert row2.pk == row1.pk and Frames.objects.count() == 1
    stored = Frames.objects.get()
    assert stored.meta == {"v": 2, "store_index": True}  # replaced, not merged
    assert stored.created_at == row1.created_at and stored.updated_at >= row1.updated_at
    pd.testing.assert_frame_equal(Frames.load_df(3, "k"), second)
    # other client_ids and keys are separate rows
    Frames.update_or_create_df(4, "k", first)
    Frames.update_or_create_df(3, "k2", first)
    assert Frames.objects.count() == 3
    pd.testing.assert_frame_equal(Frames.load_df(3, "k"), second)


def test_load_of_an_absent_key_is_none() -> None:
    assert Frames.load_df(1, "missing") is None
    Frames.update_or_create_df(1, "present", frames()["empty"])
    assert Frames.load_df(1, "missing") is None
    assert Frames.load_df(2, "present") is None
    assert Frames.load_df(1, "present") is not None


BAD_INPUT = [
    ({"client_id": "1"}, TypeError, "client_id must be an integer"),
    ({"client_id": 1.5}, TypeError, "client_id must be an integer"),
    ({"client_id": True}, TypeError, "client_id must be an integer"),
    ({"client_id": None}, TypeError, "client_id must be an integer"),
    ({"meta": {"x": float("nan")}}, TypeError, "JSON-serialisable"),
    ({"meta": {"x": float("inf")}}, TypeError, "JSON-serialisable"),
    ({"meta": {"s": {1, 2}}}, TypeError, "JSON-serialisable"),
    ({"meta": {"t": pd.Timestamp("2024-01-01")}}, TypeError, "JSON-serialisable"),
    ({"meta": {"n": np.int64(3)}}, TypeError, "JSON-serialisable"),
    ({"meta": "not-a-dict"}, TypeError, "meta must be a dict"),
    ({"meta": [1, 2]}, TypeError, "meta must be a dict"),
    ({"df": {"not": "a frame"}}, TypeError, "df must be a pandas.DataFrame"),
    ({"key": ""}, ValueError, "key must be a non-empty string"),
    ({"key": 12345}, ValueError, "key must be a non-empty string"),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD_INPUT, ids=lambda v: repr(v)[:40])
def test_bad_input_raises_before_anything_is_written(bad: dict, error: type, message: str
                                                     ) -> None:
    good = frames()["range_index"]
    Frames.update_or_create_df(1, "k", good, meta={"v": 1})
    before = list(Frames.objects.values_list("client_id", "key", "meta", "payload",
                                             "updated_at"))
    call = {"client_id": 1, "key": "k", "df": frames()["string_index"], "meta": {"v": 2},
            **bad}
    with pytest.raises(error, match=message):
        Frames.update_or_create_df(**call)
    after = list(Frames.objects.values_list("client_id", "key", "meta", "payload",
                                            "updated_at"))
    assert [(c, k, m, bytes(p), u) for c, k, m, p, u in after] == [
        (c, k, m, bytes(p), u) for c, k, m, p, u in before]
    pd.testing.assert_frame_equal(Frames.load_df(1, "k"), good)


def test_integer_like_client_ids_are_accepted() -> None:
    Frames.update_or_create_df(np.int64(9), "k", frames()["empty"])
    assert Frames.objects.get().client_id == 9
    assert Frames.load_df(9, "k") is not None


def _create_table_sql(model: type) -> list[str]:
    """The DDL Django emits for ``model`` on the active database (nothing is run)."""
    conn = connections[Frames.objects.db]
    with conn.schema_editor(collect_sql=True) as editor:
        editor.create_model(model)
    return [str(s) for s in editor.collected_sql]


_HOLC_FRAMES = r"""
import io
import pandas as pd
from django.db import connection
from hostore.models.dataframe_store import DataFrameStore

class Frames(DataFrameStore):
    class Meta(DataFrameStore.Meta):
        app_label = "testapp"

def show(df):
    return None if df is None else json.loads(df.to_json(orient="split", date_format="iso"))

mode = sys.argv[2]
if mode == "ddl":
    with connection.schema_editor(collect_sql=True) as editor:
        editor.create_model(Frames)
    out = {"sql": [str(s) for s in editor.collected_sql]}
elif mode == "load":
    out = {"df": show(Frames.load_df(int(sys.argv[3]), sys.argv[4]))}
else:  # "upsert": a frame given as JSON (orient=split), with a meta
    df = pd.read_json(io.StringIO(sys.argv[5]), orient="split")
    row, created = Frames.update_or_create_df(int(sys.argv[3]), sys.argv[4], df,
                                              meta=json.loads(sys.argv[6]))
    out = {"created": created, "pk": row.pk}
print(json.dumps(out))
"""


def _as_split(df: pd.DataFrame) -> dict:
    return json.loads(df.to_json(orient="split", date_format="iso"))


def test_table_layout_is_holcstores(database: str) -> None:
    """Same table, columns, types, index and unique constraint (names included) as the
    DDL holcstore's own DataFrameStore gets for the same concrete model."""
    holc = run_holcstore(database, _HOLC_FRAMES, "ddl")["sql"]
    ours = _create_table_sql(Frames)
    assert ours == holc
    assert any("unique_client_key" in s for s in ours)


def test_holcstore_reads_what_the_adapter_wrote(database: str) -> None:
    df = pd.DataFrame({"user": [1, 2, 3], "score": [0.1, np.nan, 0.3], "name": ["a", "b", "c"]},
                      index=pd.Index([10, 20, 30], name="row"))
    Frames.update_or_create_df(5, "from_adapter", df, meta={"v": 1})
    got = run_holcstore(database, _HOLC_FRAMES, "load", "5", "from_adapter")["df"]
    assert got == _as_split(df)
    assert run_holcstore(database, _HOLC_FRAMES, "load", "5", "missing")["df"] is None


def test_the_adapter_reads_and_overwrites_what_holcstore_wrote(database: str) -> None:
    df = pd.DataFrame({"user": [1, 2], "score": [9.5, -1.0], "name": ["x", "y"]})
    out = run_holcstore(database, _HOLC_FRAMES, "upsert", "6", "from_holc",
                        df.to_json(orient="split"), json.dumps({"tags": ["h"]}))
    assert out["created"] is True
    row = Frames.objects.get(client_id=6, key="from_holc")
    assert row.pk == out["pk"] and row.meta == {"tags": ["h"], "store_index": True}
    assert _as_split(Frames.load_df(6, "from_holc")) == _as_split(df)
    # the adapter's upsert updates holcstore's row in place, and holcstore reads the result
    new = df.assign(score=[0.0, 1.0])
    stored, created = Frames.update_or_create_df(6, "from_holc", new, meta={"v": 2})
    assert not created and stored.pk == out["pk"]
    assert run_holcstore(database, _HOLC_FRAMES, "load", "6", "from_holc")["df"] == (
        _as_split(new))
    # and the other way round: holcstore's upsert over the adapter's row
    again = run_holcstore(database, _HOLC_FRAMES, "upsert", "6", "from_holc",
                          df.to_json(orient="split"), "{}")
    assert again == {"created": False, "pk": out["pk"]}
    assert _as_split(Frames.load_df(6, "from_holc")) == _as_split(df)
