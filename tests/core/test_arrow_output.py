"""``read_arrow`` and Arrow-stream ingest where the backend plays no part: pyarrow missing, a
store built without an Arrow writer, wide column names that clash; the behaviour itself is
in the shipped suite (``curvestore.testing.store_arrow``), run by every backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import curvestore
from curvestore.core.store import Store
from curvestore.errors import BackendNotInstalledError, ConfigurationError
from curvestore.registry import get_codec
from curvestore.testing.fixtures import curve


@pytest.fixture
def meters() -> curvestore.Store:
    store = curvestore.create_store("memory://", keys={"meter": str}, freq="15min",
                                    tz="Europe/Paris")
    store.write_many({"m1": curve("2024-01-01", periods=4), "ts": curve("2024-01-01", periods=4)})
    return store


def test_without_pyarrow_the_error_names_the_extra(meters: curvestore.Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"meter": ["m9"], "ts": [0], "value": [1.0]})
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    with pytest.raises(BackendNotInstalledError, match=r"curvestore\[arrow\]") as caught:
        meters.read_arrow()
    assert caught.value.extra == "arrow"
    with pytest.raises(BackendNotInstalledError, match=r"curvestore\[arrow\]"):
        meters.ingest(frame, time_column="ts", value_column="value")


def test_a_store_built_without_an_arrow_writer_says_how_to_open_one(
        meters: curvestore.Store) -> None:
    bare = Store(meters.backend, meters.config, codecs=get_codec)
    with pytest.raises(ConfigurationError, match="open_store"):
        bare.read_arrow()


def test_wide_names_that_clash_with_the_time_column_are_refused(
        meters: curvestore.Store) -> None:
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(ConfigurationError, match="'ts' is taken twice"):
        meters.read_arrow(layout="wide")
    table = meters.read_arrow(layout="wide", time_column="time").read_all()
    assert table.schema.names == ["time", "m1", "ts"]
    assert table.schema.field("time").type == pa.timestamp("us", tz="Europe/Paris")


def test_pieces_that_overlap_are_laid_in_order_later_over_earlier() -> None:
    from curvestore.core.columns import _in_order

    apart = [(0, np.array([1.0, 2.0])), (5, np.array([3.0]))]
    assert _in_order(apart) is apart
    # a fragment over the end of the piece before it, then one before both
    (first, values), = _in_order([(0, np.array([1.0, 2.0, 3.0])), (2, np.array([9.0, np.nan])),
                                  (-2, np.array([7.0]))])
    assert first == -2
    np.testing.assert_array_equal(values, [7.0, np.nan, 1.0, 2.0, 9.0, np.nan])
