"""``curvestore serve`` and ``curvestore sync`` as real processes: auth, filters, SIGTERM, and a
replicating process SIGKILLed at random points, resumed, then compared point by point."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("waitress")
pytest.importorskip("requests")

import curvestore
from curvestore.testing.replication import assert_stores_equal
from curvestore.testing.store import KEYS, curve, key

TOKEN = "cli-secret-token-42"
CLI = [sys.executable, "-m", "curvestore.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CURVESTORE_TOKEN"}
    return {**env, **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, curvestore.Store, subprocess.Popen[str]]]:
    """A file:// source with 40 series, served by ``curvestore serve`` with a token file."""
    source = curvestore.create_store(f"file://{tmp_path / 'src'}", keys=KEYS, freq="15min",
                                     tz="Europe/Paris")
    for i in range(40):  # one commit each, so pages end often
        source.write(key(f"s{i:02d}", "load" if i % 4 else "prod", i),
                     curve("2024-01-10", periods=3000 + 60 * i, seed=i, nan=0.05))
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = subprocess.Popen(
        [*CLI, "serve", source.url, "--port", "0", "--token-file", str(tmp_path / "token")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert server.stdout is not None
    line = server.stdout.readline()
    assert " on http://127.0.0.1:" in line, line + (server.stderr.read() if server.stderr else "")
    url = line.split(" on ")[1].split()[0]
    try:
        yield url, source, server
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=10)
        source.close()


def _sync(url: str, target: str, *args: str, token: str | None = TOKEN
          ) -> subprocess.CompletedProcess[str]:
    env = _env(CURVESTORE_TOKEN=token) if token else _env()
    return subprocess.run([*CLI, "sync", url, target, *args], capture_output=True, text=True,
                          env=env, timeout=120)


def _commits(path: Path) -> int:
    """Commits the target has made so far (one log entry each)."""
    logs = path / "log"
    return sum(1 for _ in logs.iterdir()) if logs.is_dir() else 0


@pytest.mark.slow
def test_sync_killed_at_random_points_resumes(
        served: tuple[str, curvestore.Store, subprocess.Popen[str]], tmp_path: Path) -> None:
    url, source, server = served
    target_dir = tmp_path / "replica"
    target_url = f"file://{target_dir}"
    refused = _sync(url, target_url, token=None)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    assert _sync(url, target_url, token="wrong").stderr.count("wrong") == 0

    rng = random.Random(11)
    kills = partial = 0
    for round_ in range(5):
        if round_ == 2:  # the source keeps changing between runs
            source.write(key("s01", "load", 1), curve("2024-01-12", periods=300, seed=99),
                         mode="update")
            source.write(key("s05", "load", 5), curve("2024-03-01", periods=50, seed=98),
                         mode="replace")
            source.delete(key("s02", "load", 2))
        before = _commits(target_dir)
        child = subprocess.Popen([*CLI, "sync", url, target_url, "--batch", "2"],
                                 env=_env(CURVESTORE_TOKEN=TOKEN), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        goal, deadline = before + rng.randint(1, 12), time.monotonic() + 60
        while child.poll() is None and _commits(target_dir) < goal \
                and time.monotonic() < deadline:
            time.sleep(0.003)
        time.sleep(rng.uniform(0, 0.04))  # land anywhere, mid-commit included
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
            partial += _commits(target_dir) > 0
        child.wait()
    assert kills >= 3 and partial >= 1

    final = _sync(url, target_url, "--batch", "2")
    assert final.returncode == 0, final.stderr
    # a kill may land after the last commit (or the last run may finish before its kill):
    # then nothing is left to pull, which the content check below proves either way
    assert final.stdout.startswith(("synced ", "already up to date")), final.stdout
    again = _sync(url, target_url)
    assert again.returncode == 0 and again.stdout.startswith("already up to date"), again.stdout
    with curvestore.open_store(target_url) as target:
        assert assert_stores_equal(source, target) == 39

    filtered = _sync(url, f"file://{tmp_path / 'prod'}", "--filter", "kind=prod")
    assert filtered.returncode == 0, filtered.stderr
    with curvestore.open_store(f"file://{tmp_path / 'prod'}") as prod:
        assert assert_stores_equal(source, prod, {"kind": "prod"}) == 10
        assert prod.keys({"kind": "load"}) == []

    server.send_signal(signal.SIGTERM)
    _out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "server stopped" in err
    assert '"POST /v1/chunks" 200' in err and '"GET /v1/manifest" 401' in err
    assert TOKEN not in err


def test_serve_refuses_bodies_unread_and_keeps_secrets_out_of_its_log(
        served: tuple[str, curvestore.Store, subprocess.Popen[str]]) -> None:
    import requests

    url, _source, server = served
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /v1/chunks?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {300 << 20}\r\n\r\n".encode())
        answer = sock.recv(65536)  # comes before any body byte is sent
        sent = 0
        # a reset or broken pipe ends the sending: the server closed without reading
        with contextlib.suppress(OSError):
            while sent < 300 << 20:
                sent += sock.send(b"x" * (1 << 20))
    assert answer.startswith(b"HTTP/1.1 401 ") and sent < 64 << 20
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{url}/v1/changes?access_token={TOKEN}", headers=auth,
                        timeout=10).status_code == 400
    assert requests.get(f"{url}/v1/changes?limit=3", headers=auth, timeout=10).ok
    server.send_signal(signal.SIGTERM)
    _out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert TOKEN not in err
    assert '"POST /v1/chunks?[1 parameter(s) not logged]" 401 0 (refused before the body)' in err
    assert '"GET /v1/changes?[1 parameter(s) not logged]" 400' in err
    assert '"GET /v1/changes?limit=3" 200' in err
