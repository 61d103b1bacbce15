"""The README's frames, ingest, Arrow, metrics and observer-hook examples, run as written
(their asserts are the checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str) -> str:
    """The one Python example of the README section titled ``heading``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"the section {heading!r} has one Python example"
    return blocks[0]


@pytest.mark.parametrize(("name", "heading", "calls", "needs"), [
    ("frames", "Frames: many series in one call", ("write_frame", "read_frame"), ()),
    ("ingest", "Ingest: long-format rows, streamed", ("store.ingest(", "DuplicatePointError"),
     ()),
    ("arrow", "Arrow, Polars, DuckDB", ("read_arrow(", "duckdb.sql(", "pl.from_arrow("),
     ("pyarrow", "polars", "duckdb")),
    ("metrics", "Prometheus metrics", ("instrument(", "text_string_to_metric_families"), ()),
    ("hooks", "Observer hooks: points written per key prefix",
     ("@hookimpl", "chunks_committed", "pm.register("), ()),
])
def test_readme_example_runs_as_written(name: str, heading: str, calls: tuple[str, ...],
                                        needs: tuple[str, ...]) -> None:
    for module in needs:
        pytest.importorskip(module)
    code = readme_block(heading)
    assert all(call in code for call in calls)
    exec(compile(code, f"README.md ({name})", "exec"), {"__name__": f"readme_{name}"})
