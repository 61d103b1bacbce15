"""bench/distributed.py's report renders every section, measured or skipped (the timed run
itself needs a cluster and a quiet machine: ``python bench/distributed.py --meters 300``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _timing(call: str, median: float) -> dict[str, Any]:
    return {"median_s": median, "times_s": [median, median * 1.1], "call": call}


def _results(measured: bool) -> dict[str, Any]:
    meta = {"command": "python bench/distributed.py", "date": "today", "run_id": "r",
            "elapsed_s": 12.0, "machine": {"nproc": "2"}, "uptime": "up",
            "load_average": {"before": [0.1, 0.2, 0.3], "after": [0.4, 0.5, 0.6]},
            "versions": {"dask": "2026.8.0"}, "meters": 300, "month": "2025-10",
            "points": 892_619, "quarter_hours": 2980, "workers": 2, "runs": 2,
            "series_per_partition": 250, "write_series_per_partition": 75,
            "worker_environment": {"OMP_NUM_THREADS": "1"}}
    if not measured:
        return {"meta": meta, "skipped": {"(b) read_arrow into DuckDB and Polars": "absent",
                                          "(c) to_store into PostgreSQL": "--no-postgres"},
                "a": None, "b": None}
    return {"meta": meta, "skipped": {},
            "a": {"partitions": 2, "ratio": 1.6, "read_many": _timing("rm", 0.8),
                  "dask": _timing("dask", 0.5), "dask_here": _timing("sync", 0.9)},
            "b": {"paths": {"pandas": _timing("p", 0.9), "duckdb": _timing("d", 0.2)},
                  "speedup_over_pandas": {"duckdb": 4.5, "polars": 2.9}},
            "c": {"rows": 892_619, "partitions": 4, "ratio": 1.2,
                  "to_store": {**_timing("to_store", 1.0), "report": {"commits": 4}},
                  "ingest": {**_timing("ingest", 1.2), "commits": 1},
                  "write_frame": _timing("write_frame", 0.7)}}


@pytest.mark.parametrize("measured", [True, False])
def test_the_report_renders(monkeypatch: pytest.MonkeyPatch, measured: bool) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    for name in [m for m in sys.modules if m == "distkit" or m.startswith("distkit.")]:
        monkeypatch.delitem(sys.modules, name)
    from distkit.report import render

    page = render(_results(measured))
    assert "${" not in page
    if measured:
        assert "| (a) read_dask + groupby max on the cluster >= 1.5x faster than read_many " \
               "| 1.60x | met |" in page
        assert "| 2.90x | missed (target 3.0x) |" in page  # (b): the slower of the two
        assert "ingest / to_store: **1.20x**" in page
    else:
        assert page.count("not measured") == 3
        assert "- (c) to_store into PostgreSQL: --no-postgres" in page
