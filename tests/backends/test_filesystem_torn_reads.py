"""A writer SIGKILLed at every step of a batch commit: no reader of any kind sees half of it.

The child process writes 20 series in one ``write_many`` and kills itself halfway through the
log append, or after its n-th shard rename (n = 0..19), or at the end line. Then, before any
read-write open could finish the batch, the test reads through a handle opened before the
kill, a read-only open, the HTTP sync server (read-only) and ``curvestore get``: all must see
the whole batch (once its log append is complete) or none of it (before).
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.core import chunks as _chunks
from curvestore.registry import get_codec

KEYS = {"site": str, "kind": str}
SERIES = 20
OLD, NEW = 1.0, 2.0

_CHILD = r"""
import os, signal, sys
import numpy as np, pandas as pd
import curvestore
from curvestore.backends import _fslog

url, mode, stage, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = "2024-01-01" if mode == "update" else "2024-02-01"
index = pd.date_range(start, periods=24 * 50, freq="1h", tz="UTC")
batch = {(f"s{i:02d}", "load"): pd.Series(np.full(len(index), 2.0), index=index)
         for i in range(20)}
store = curvestore.open_store(url)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_append, real_replace = _fslog.append, os.replace
appends, renames = [0], [0]

def append(path, text, *, sync):
    appends[0] += 1
    if stage == "append" and appends[0] == 1:  # half the batch's lines reach the log
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, text.encode()[: len(text) // 2])
        die()
    if stage == "end" and appends[0] == 2:  # every rename done, the end line not written
        die()
    real_append(path, text, sync=sync)

def replace(src, dst):
    if stage == "rename" and renames[0] == n:
        die()
    real_replace(src, dst)
    renames[0] += 1

_fslog.append = append
os.replace = replace
store.write_many(batch, mode=mode)
sys.exit(3)  # the kill did not happen
"""


def _old_batch() -> dict[tuple[str, str], pd.Series]:
    index = pd.date_range("2024-01-01", periods=24 * 50, freq="1h", tz="UTC")
    return {(f"s{i:02d}", "load"): pd.Series(np.full(len(index), OLD), index=index)
            for i in range(SERIES)}


def _expected(mode: str, committed: bool) -> pd.Series:
    if not committed:
        return _old_batch()[("s00", "load")]
    start = "2024-01-01" if mode == "update" else "2024-02-01"
    index = pd.date_range(start, periods=24 * 50, freq="1h", tz="UTC")
    return pd.Series(np.full(len(index), NEW), index=index)


def _check(series: pd.Series | None, expected: pd.Series, who: str, name: Any) -> None:
    assert series is not None, f"{who}: series {name} is missing"
    values = series.dropna()
    assert set(np.unique(values.to_numpy()).tolist()) == {expected.iloc[0]}, (
        f"{who}: series {name} holds {sorted(set(values.tolist()))}, expected "
        f"{expected.iloc[0]} (half a batch)")
    assert values.index[0] == expected.index[0] and values.index[-1] == expected.index[-1], (
        f"{who}: series {name} spans {values.index[0]}..{values.index[-1]}")


def _check_store(store: curvestore.Store, expected: pd.Series, who: str) -> None:
    got = list(store.read_many())
    assert [tuple(k.values()) for k, _ in got] == sorted(_old_batch()), who
    for k, series in got:
        _check(series, expected, who, k)
        _check(store.read(k), expected, f"{who} (read)", k)


def _check_http(store: curvestore.Store, expected: pd.Series) -> None:
    from curvestore.adapters.http.client import HTTPSource
    from curvestore.adapters.http.server import make_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access log on stderr."""

    refs = [((f"s{i:02d}", "load"), chunk) for i in range(SERIES)
            for chunk in range(2024 * 12, 2024 * 12 + 3)]
    server = make_server("127.0.0.1", 0, make_app(store), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with HTTPSource(f"http://127.0.0.1:{server.server_port}") as source:
            records = source.fetch(refs)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    by_key: dict[Any, list[np.ndarray]] = {}
    for record in records:
        if not record.meta.deleted:
            by_key.setdefault(record.key, []).append(_chunks.decode(record, get_codec).values)
    assert len(by_key) == SERIES
    for k, pieces in by_key.items():
        values = np.concatenate(pieces)
        assert set(np.unique(values[~np.isnan(values)]).tolist()) == {expected.iloc[0]}, (
            f"HTTP server: series {k} is from another batch")
        assert int((~np.isnan(values)).sum()) == len(expected), f"HTTP server: {k} is torn"


def _check_cli_get(url: str, expected: pd.Series) -> None:
    from curvestore.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["get", url, "site=s10", "kind=load"]) == 0
    values = pd.read_csv(io.StringIO(out.getvalue()))["value"].dropna()
    assert set(values.tolist()) == {expected.iloc[0]}, "curvestore get saw another batch"
    assert len(values) == len(expected), "curvestore get saw a torn series"


CASES = ([("replace", "append", 0)] + [("replace", "rename", n) for n in range(SERIES)]
         + [("replace", "end", 0), ("update", "append", 0)]
         + [("update", "rename", n) for n in (0, 7, SERIES - 1)] + [("update", "end", 0)])


@pytest.mark.slow
@pytest.mark.parametrize("mode, stage, renames", CASES)
def test_no_reader_sees_half_a_batch(tmp_path: Path, mode: str, stage: str, renames: int
                                     ) -> None:
    url = f"file-shards://{tmp_path}/s"
    with curvestore.create_store(url, keys=KEYS, freq="1h", tz="UTC") as store:
        store.write_many(_old_batch())
        cursor = store.changes().cursor
    committed = stage != "append"
    expected = _expected(mode, committed)
    with curvestore.open_store(url) as before:
        before.read({"site": "s00", "kind": "load"})  # a handle in use before the kill
        child = subprocess.run([sys.executable, "-c", _CHILD, url, mode, stage, str(renames)],
                               capture_output=True, text=True, timeout=120)
        assert child.returncode == -9, child.stderr  # SIGKILL
        _check_store(before, expected, "handle opened before the kill")
        with curvestore.open_store(url + "?read_only=true") as read_only:
            _check_store(read_only, expected, "read-only open")
            _check_http(read_only, expected)
            # the feed shows a batch once its end line is written, by the next writer
            assert read_only.changes(cursor, limit=10_000).items == []
        _check_cli_get(url, expected)
        assert before.changes(cursor, limit=10_000).items == []
    with curvestore.open_store(url) as recovered:  # rolls the batch forward or back
        _check_store(recovered, expected, "read-write open")
        feed = recovered.changes(cursor, limit=10_000).items
        assert len(feed) == (SERIES * (3 if mode == "replace" else 2) if committed else 0)
        assert not list((tmp_path / "s" / "tmp").iterdir())
