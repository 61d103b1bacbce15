"""``curvestore compact`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import curvestore
from curvestore.cli import main
from curvestore.testing.compaction import daily_frame, expected_frame

KEYS = {"site": str, "kind": str, "n": int}


@pytest.fixture
def url(tmp_path: Path) -> str:
    store_url = f"file://{tmp_path.as_posix()}/store"
    with curvestore.create_store(store_url, keys=KEYS, freq="15min", tz="Europe/Paris") as s:
        for day in range(7):
            s.write_frame(daily_frame(day), mode="update")
    return store_url


def test_compact_closed_periods_then_all(url: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert main(["compact", url, "--before", "2024-02-01", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("compacted 12 chunks (60 pieces"), out
    assert main(["compact", url, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chunks"] == 12 and report["rows"] == 24
    with curvestore.open_store(url) as store:
        pd.testing.assert_frame_equal(store.read_frame(), expected_frame(7), check_freq=False)
    assert main(["verify", url]) == 0


def test_compact_filter(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compact", url, "n=2", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] == 2


def test_compact_refused_where_chunks_are_whole(capsys: pytest.CaptureFixture[str]) -> None:
    with curvestore.create_store("memory://compact-cli", keys=KEYS, freq="15min",
                                 tz="Europe/Paris") as store:
        assert main(["compact", "memory://compact-cli", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "nothing to compact" in err and "Traceback" not in err
        store.close()
