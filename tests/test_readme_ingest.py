"""The README's ingest example, run as written (its asserts are the checks)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_ingest_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Ingest: long-format rows, streamed", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the ingest section has one Python example"
    return blocks[0]


def test_readme_ingest_example_runs_as_written() -> None:
    code = readme_ingest_block()
    assert "store.ingest(" in code and "DuplicatePointError" in code
    exec(compile(code, "README.md (ingest)", "exec"), {"__name__": "readme_ingest"})
