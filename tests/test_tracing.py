"""OpenTelemetry spans of Store operations, recorded by the real SDK (InMemorySpanExporter),
and the README's example of them run as written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once
from test_readme_sections import readme_block

import curvestore
from curvestore import tracing
from curvestore.errors import SeriesExistsError

ROOT = Path(__file__).resolve().parents[1]
TZ = "Europe/Paris"


def _reset_globals() -> None:
    """Forget the process's tracer provider and the tracer stores are handed (tests only:
    OpenTelemetry lets an application set its provider once)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    tracing._cached = tracing._unset


@pytest.fixture
def clean_otel() -> Iterator[None]:
    """OpenTelemetry as a fresh process has it, restored afterwards, so that no other test
    runs with an SDK recording its stores' spans."""
    _reset_globals()
    try:
        yield
    finally:
        _reset_globals()


@pytest.fixture
def spans(clean_otel: None) -> Iterator[InMemorySpanExporter]:
    """The SDK installed as an application would, exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


def curve(start: str, days: int, seed: int = 0) -> pd.Series:
    index = pd.date_range(start, periods=days * 96, freq="15min", tz=TZ)
    return pd.Series(np.random.default_rng(seed).random(len(index)), index=index)


def finished(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"curvestore.{name}"]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_store_operations_emit_spans_with_counts(spans: InMemorySpanExporter,
                                                 tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    store = curvestore.create_store(url, keys=["site", "kind"], freq="15min", tz=TZ)
    assert store.tracer is not None
    a, b = curve("2024-01-01", 10, 1), curve("2024-01-01", 10, 2)
    store.write({"site": "s1", "kind": "load"}, a)
    store.write_many({("s2", "load"): b, ("s3", "prod"): b})
    frame = pd.concat({("s4", "load"): a, ("s5", "load"): b}, axis=1)
    store.write_frame(frame)
    store.write_frame(curve("2024-01-11", 2, 3).to_frame(("s4", "load")), mode="update")
    assert store.read({"site": "s1", "kind": "load"}) is not None
    assert len(list(store.read_many({"kind": "load"}))) == 4
    assert store.read_frame().shape[1] == 5
    page = store.changes(limit=3)
    compacted = store.compact()

    (write,) = finished(spans, "write")
    assert attributes(write) == {"curvestore.backend": "file", "curvestore.series": 1,
                                 "curvestore.chunks": 1, "curvestore.points": len(a),
                                 "curvestore.bytes": attributes(write)["curvestore.bytes"]}
    assert attributes(write)["curvestore.bytes"] > 0
    (many,) = finished(spans, "write_many")
    assert attributes(many)["curvestore.series"] == 2
    assert attributes(many)["curvestore.points"] == 2 * len(b)
    first, append = finished(spans, "write_frame")
    assert attributes(first)["curvestore.points"] == 2 * len(a)
    assert attributes(append)["curvestore.points"] == 2 * 96
    (read,) = finished(spans, "read")
    assert attributes(read)["curvestore.points"] == len(a)
    (read_many,) = finished(spans, "read_many")
    assert attributes(read_many)["curvestore.series"] == 4
    (read_frame,) = finished(spans, "read_frame")
    assert attributes(read_frame)["curvestore.series"] == 5
    changes = finished(spans, "changes")
    assert attributes(changes[-1])["curvestore.changes"] == len(page.items)
    (compact,) = finished(spans, "compact")
    assert attributes(compact)["curvestore.chunks"] == compacted["chunks"] > 0
    for span in spans.get_finished_spans():
        assert span.status.status_code is StatusCode.UNSET, span.name
        # the backend is named by its scheme: no path, no URL (it may carry credentials)
        assert not any(str(tmp_path) in str(v) for v in attributes(span).values())
    store.close()


def test_failures_are_recorded_with_status_error(spans: InMemorySpanExporter) -> None:
    store = curvestore.create_store("memory://traced-failures", keys=["site"], freq="15min",
                                    tz=TZ)
    store.write({"site": "a"}, curve("2024-03-01", 2))
    with pytest.raises(SeriesExistsError):
        store.write({"site": "a"}, curve("2024-03-01", 2))
    failed = finished(spans, "write")[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "SeriesExistsError"
    assert [e.name for e in failed.events] == ["exception"]
    assert failed.events[0].attributes["exception.type"].endswith("SeriesExistsError")

    stream = store.read_many()
    next(stream)
    stream.close()  # a consumer stopping early is not a failure
    (read_many,) = finished(spans, "read_many")
    assert read_many.status.status_code is StatusCode.UNSET
    assert attributes(read_many)["curvestore.series"] == 1


def test_replicate_is_one_span_holding_its_commits(spans: InMemorySpanExporter) -> None:
    source = curvestore.create_store("memory://traced-source", keys=["site"], freq="15min",
                                     tz=TZ)
    target = curvestore.create_store("memory://traced-target", keys=["site"], freq="15min",
                                     tz=TZ)
    source.write_many({(f"m{i}",): curve("2024-01-25", 10, i) for i in range(6)})
    report = curvestore.replicate(source, target, batch=4)
    assert report.pages > 1
    (span,) = finished(spans, "replicate")
    got = attributes(span)
    assert got["curvestore.pages"] == report.pages
    assert got["curvestore.changes"] == report.changes
    assert got["curvestore.chunks"] == report.chunks == 12
    assert got["curvestore.series"] == 6
    assert got["curvestore.bytes"] == report.payload_bytes
    assert got["curvestore.points"] == 6 * 10 * 96
    # the source's feed pages were read in the puller's thread: spans of their own
    assert sum(attributes(s)["curvestore.changes"] for s in finished(spans, "changes")) == 12


def test_api_without_sdk_records_nothing(clean_otel: None) -> None:
    store = curvestore.create_store("memory://traced-noop", keys=["site"], freq="15min", tz=TZ)
    assert store.tracer is not None  # the API is installed: its no-op tracer is used
    store.write({"site": "a"}, curve("2024-03-01", 2))
    assert store.read({"site": "a"}) is not None


def test_tracing_off_by_environment(clean_otel: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURVESTORE_TRACING", "off")
    store = curvestore.create_store("memory://traced-off", keys=["site"], freq="15min", tz=TZ)
    assert store.tracer is None


def test_without_opentelemetry_stores_get_no_tracer() -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed: importing it raises ImportError
import pandas as pd, curvestore
store = curvestore.create_store("memory://x", keys=["site"], freq="1h", tz="UTC")
index = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
store.write({"site": "a"}, pd.Series(1.0, index=index))
print(__import__("json").dumps([store.tracer is None, len(store.read({"site": "a"}))]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, 48]


def test_readme_tracing_example_runs_as_written(clean_otel: None) -> None:
    code = readme_block("Traces (OpenTelemetry)")
    assert "InMemorySpanExporter" in code and "curvestore.points" in code
    exec(compile(code, "README.md (traces)", "exec"), {"__name__": "readme_traces"})


def test_otel_extra_is_in_all_and_the_sdk_in_dev() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert [r for r in extras["otel"] if r.startswith("opentelemetry-api")]
    assert "otel" in extras["all"][0] and "metrics" in extras["all"][0]
    assert [r for r in extras["dev"] if r.startswith("opentelemetry-sdk")]
