"""The OpenTelemetry overhead benchmark (bench/otel_overhead.py) keeps working: a tiny run of
its four modes, each in its own process, with the tracer each mode is meant to have."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "otel_overhead.py"


def test_tiny_run_of_the_four_modes(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS-otel.md", tmp_path / "otel.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--n", "2", "--month-reads", "3",
         "--workdir", str(tmp_path / "stores"), "--json", str(raw), "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(raw.read_text())
    assert results["tracers"] == {"off": "NoneType", "api": "OpenTelemetryTracer",
                                  "sdk": "OpenTelemetryTracer",
                                  "batch": "OpenTelemetryTracer"}
    # one span per timed call, and per read of the checks after the updates
    assert results["spans_per_run"] >= 1 + 2 + 1 + 3 + 2
    assert set(results["ratios"]) == {"api", "sdk", "batch"}
    assert "| **total** |" in out.read_text()
