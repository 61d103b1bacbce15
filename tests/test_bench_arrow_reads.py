"""bench/distkit/arrow_reads.py keeps working: a tiny run, whose paths (pandas, DuckDB, Polars)
must agree meter by meter, and whose long layout is checked point by point against the fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_a_tiny_run_agrees_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pyarrow", "polars", "duckdb"):
        pytest.importorskip(module)
    monkeypatch.syspath_prepend(str(BENCH))
    from distkit.arrow_reads import PATHS, measure

    result = measure("memory", meters=30, repeat=1, log=lambda _line: None)
    assert result["meters"] == 30 and result["points"] == 30 * 2980  # DST ends on the 26th
    assert set(result["paths"]) == set(PATHS)
    assert set(result["speedup_over_pandas"]) == set(PATHS) - {"pandas"}
