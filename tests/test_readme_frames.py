"""The README's frames example, run as written (its asserts are the checks)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_frames_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Frames: many series in one call", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the frames section has one Python example"
    return blocks[0]


def test_readme_frames_example_runs_as_written() -> None:
    code = readme_frames_block()
    assert "write_frame" in code and "read_frame" in code
    exec(compile(code, "README.md (frames)", "exec"), {"__name__": "readme_frames"})
