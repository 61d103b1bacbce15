"""The fleet benchmark harness (bench/fleet.py) keeps working: a tiny run on a file:// store,
with the ArcticDB and Parquet peers when they import here, every read checked by the harness
itself; and its read checker does catch a wrong value."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import fleet as module

    return module


def test_quick_run_checks_every_read_and_writes_the_report(fleet: Any, tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS-fleet.md", tmp_path / "results.json"
    assert fleet.main(["--here", "--quick", "--meters", "50", "--days", "3",
                       "--history-reads", "5", "--workdir", str(tmp_path / "stores"),
                       "--month-repeats", "2", "--output", str(out), "--json", str(raw)]) == 0
    results = json.loads(raw.read_text())
    [month] = results["months"]
    assert len(month["compact_runs_s"]) == len(month["fresh_runs_s"]) == 2
    assert month["compact"]["s"] == min(month["compact_runs_s"])  # the lower middle of two
    runs = {r["scheme"]: r for r in results["runs"]}
    assert "file" in runs
    for run in runs.values():
        assert [d["quarter_hours"] for d in run["days"]] == [96, 100, 96]  # DST ends on the 26th
        assert run["history"]["reads"] == 5
    names = {"arcticdb": "arcticdb", "parquet": "pyarrow"}
    for peer, module in names.items():
        if peer not in runs:
            assert peer in results["meta"]["skipped"], f"{peer} neither run nor skipped"
            with pytest.raises(ImportError):  # skipped only because it does not import here
                importlib.import_module(module)
    text = out.read_text()
    assert "| one daily append of every meter" in text and "${" not in text


def test_read_checker_catches_a_changed_value_and_a_lost_one(fleet: Any) -> None:
    from fleetkit.data import Fleet, FleetMismatch, check_wide, index_ns

    block = Fleet(20).days(dt.date(2025, 3, 30), 1)  # DST starts: 92 quarter-hours
    assert block.values.shape == (20, 92)
    ns, values = index_ns(block.index), block.values.T.copy()
    check_wide("same", ns, block.meters, values, block)
    changed = values.copy()
    changed[5, 3] = np.nextafter(changed[5, 3], np.inf) if not np.isnan(changed[5, 3]) else 1.0
    with pytest.raises(FleetMismatch, match="1 of"):
        check_wide("changed", ns, block.meters, changed, block)
    with pytest.raises(FleetMismatch):  # a meter with values left out of the read
        check_wide("lost", ns, block.meters[1:], values[:, 1:], block)
    with pytest.raises(FleetMismatch, match="not written"):
        check_wide("extra", ns + 1, block.meters, values, block)


def test_ingest_file_is_the_fleet_in_long_format(fleet: Any, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from fleetkit.data import Fleet, check_long, make_ingest_file

    day = dt.date(2025, 10, 27)
    facts = make_ingest_file(tmp_path / "day.parquet", meters=30, day=day)
    table = pq.read_table(facts["path"])
    assert facts["rows"] == len(table) == 30 * 96
    assert table.schema.names == ["meter", "ts", "kw"]
    kw = table["kw"].to_numpy(zero_copy_only=False)
    check_long("ingest file", table["meter"].to_numpy(), table["ts"].cast("int64").to_numpy()
               * 1000, kw, Fleet(30).days(day, 1))
