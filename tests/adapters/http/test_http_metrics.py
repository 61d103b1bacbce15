"""Prometheus metrics of the sync server, scraped over real sockets and parsed with
prometheus_client's own text parser: ``curvestore serve --metrics`` as a process, and the
instrumented app in process (registries apart, public scrapes, feed lag, server failures)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("waitress")
pytest.importorskip("requests")
pytest.importorskip("prometheus_client")

import requests
from prometheus_client.parser import text_string_to_metric_families

import curvestore
from curvestore.adapters.http import make_app
from curvestore.adapters.http.metrics import FeedLag, instrument
from curvestore.adapters.http.serving import serve_in_thread
from curvestore.engine import _transaction
from curvestore.testing.store import KEYS, curve, key

TOKEN = "metrics-secret-token-9"
SECRET_SITE = "secret-site-7"  # a key value: never in a label
CLI = [sys.executable, "-m", "curvestore.cli"]
ROUTES = {"/v1/manifest", "/v1/changes", "/v1/chunks", "/metrics", "other"}


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def scrape(base: str, token: str | None = TOKEN) -> dict[str, Any]:
    """``{metric family name: {(sample name, sorted labels): value}}`` of ``/metrics``."""
    answer = requests.get(f"{base}/metrics", headers=auth(token) if token else {}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value
                          for s in family.samples}
            for family in text_string_to_metric_families(answer.text)}


def value(metrics: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    return float(metrics[family].get((sample, tuple(sorted(labels.items()))), 0.0))


def write_source(path: Path, sites: int) -> curvestore.Store:
    store = curvestore.create_store(f"file://{path}", keys=KEYS, freq="15min",
                                    tz="Europe/Paris")
    for i in range(sites):
        store.write(key(SECRET_SITE if i == 0 else f"s{i}", "load", i),
                    curve("2024-01-20", periods=2000, seed=i))
    return store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, curvestore.Store, float]]:
    """``curvestore serve --metrics`` (token from a file) of a file:// store; the time just
    before its last commit."""
    tmp = tmp_path_factory.mktemp("metrics")
    source = write_source(tmp / "src", 3)
    before_last = time.time()
    source.write(key("s9", "load", 9), curve("2024-01-20", periods=500, seed=9))
    (tmp / "token").write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if k != "CURVESTORE_TOKEN"}
    server = subprocess.Popen(
        [*CLI, "serve", source.url, "--port", "0", "--token-file", str(tmp / "token"),
         "--metrics"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert server.stdout is not None
    line = server.stdout.readline()
    assert "metrics: /metrics" in line, line + (server.stderr.read() if server.stderr else "")
    try:
        yield line.split(" on ")[1].split()[0], source, before_last
    finally:
        server.terminate()
        _out, err = server.communicate(timeout=20)
        assert TOKEN not in err
        source.close()


def test_serve_counts_requests_by_route_template(
        served: tuple[str, curvestore.Store, float]) -> None:
    base, source, before_last = served
    received: dict[str, int] = {"/v1/manifest": 0, "/v1/changes": 0, "/v1/chunks": 0}
    answer = requests.get(f"{base}/v1/manifest", headers=auth(), timeout=30)
    received["/v1/manifest"] += len(answer.content)
    for site in (SECRET_SITE, "s1"):
        answer = requests.get(f"{base}/v1/changes", params={"site": site}, headers=auth(),
                              timeout=30)
        assert answer.status_code == 200
        received["/v1/changes"] += len(answer.content)
    refs = [[[c.key[0], c.key[1], c.key[2]], c.chunk] for c in source.raw_changes().items]
    answer = requests.post(f"{base}/v1/chunks", json={"refs": refs}, headers=auth(), timeout=30)
    assert answer.status_code == 200 and len(answer.content) > 1000
    received["/v1/chunks"] += len(answer.content)
    assert requests.get(f"{base}/v1/changes/{SECRET_SITE}", headers=auth(),
                        timeout=30).status_code == 404
    assert requests.get(f"{base}/v1/manifest", headers=auth("wrong"),
                        timeout=30).status_code == 401
    assert requests.get(f"{base}/metrics", timeout=30).status_code == 401
    assert requests.get(f"{base}/metrics", headers=auth("wrong"), timeout=30).status_code == 401
    assert requests.post(f"{base}/metrics", headers=auth(), timeout=30).status_code == 405

    metrics = scrape(base)
    requests_total = "curvestore_http_requests"
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/v1/manifest", status="200") == 1
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/v1/changes", status="200") == 2
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/v1/chunks", status="200") == 1
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="other", status="404") == 1
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/v1/manifest", status="401") == 1
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/metrics", status="401") == 2
    assert value(metrics, requests_total, "curvestore_http_requests_total",
                 route="/metrics", status="405") == 1
    for route, size in received.items():
        assert value(metrics, "curvestore_http_response_bytes",
                     "curvestore_http_response_bytes_total", route=route) == size
        count = 2 if route == "/v1/changes" else 1
        duration = "curvestore_http_request_duration_seconds"
        assert value(metrics, duration, f"{duration}_count", route=route) == count
        assert value(metrics, duration, f"{duration}_bucket", route=route, le="+Inf") == count
        assert value(metrics, duration, f"{duration}_sum", route=route) > 0
    labels = {dict(lab).get("route") for family in metrics.values() for _n, lab in family}
    assert labels - {None} <= ROUTES
    shown = repr(metrics)
    assert SECRET_SITE not in shown and TOKEN not in shown and "wrong" not in shown
    assert metrics["curvestore_http_errors"] == {}
    assert any(name.startswith("process_") for name in metrics)

    newest = value(metrics, "curvestore_feed_newest_change_timestamp_seconds",
                   "curvestore_feed_newest_change_timestamp_seconds")
    lag = value(metrics, "curvestore_feed_lag_seconds", "curvestore_feed_lag_seconds")
    assert before_last <= newest <= time.time()
    assert 0 <= lag <= time.time() - before_last

    # another process commits: the next scrape sees it (the server pages on from its cursor)
    before = time.time()
    source.write(key("s10", "load", 10), curve("2024-02-01", periods=100, seed=10))
    newer = scrape(base)
    assert value(newer, "curvestore_feed_newest_change_timestamp_seconds",
                 "curvestore_feed_newest_change_timestamp_seconds") >= before

    answer = requests.get(f"{base}/metrics", timeout=30, headers={
        **auth(), "Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_public_metrics_and_registries_apart(tmp_path: Path) -> None:
    one = write_source(tmp_path / "one", 2)
    empty = curvestore.create_store(f"file://{tmp_path / 'empty'}", keys=KEYS, freq="15min",
                                    tz="Europe/Paris")
    with serve_in_thread(instrument(make_app(one, token=TOKEN), public=True)) as first, \
            serve_in_thread(instrument(make_app(empty, token=TOKEN))) as second:
        for _ in range(3):
            assert requests.get(f"{first}/v1/manifest", headers=auth(),
                                timeout=30).status_code == 200
        assert requests.get(f"{first}/v1/manifest", timeout=30).status_code == 401  # API: token
        public = scrape(first, token=None)
        other = scrape(second)
    assert value(public, "curvestore_http_requests", "curvestore_http_requests_total",
                 route="/v1/manifest", status="200") == 3
    assert value(other, "curvestore_http_requests", "curvestore_http_requests_total",
                 route="/v1/manifest", status="200") == 0
    assert not math.isnan(value(public, "curvestore_feed_lag_seconds",
                                "curvestore_feed_lag_seconds"))
    for name in ("curvestore_feed_lag_seconds",
                 "curvestore_feed_newest_change_timestamp_seconds"):  # an empty feed
        assert math.isnan(value(other, name, name))
    one.close()
    empty.close()


def test_server_failures_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # payloads in segments (data/), not in the log entries, so removing data/ breaks the
    # chunk stream but not the feed
    monkeypatch.setattr(_transaction, "INLINE_BYTES", 0)
    store = write_source(tmp_path / "src", 2)
    refs = [[list(c.key), c.chunk] for c in store.raw_changes().items]
    with serve_in_thread(instrument(make_app(store))) as base:
        shutil.rmtree(tmp_path / "src" / "data")  # chunk payloads gone: the stream breaks
        with pytest.raises(requests.RequestException):
            answer = requests.post(f"{base}/v1/chunks", json={"refs": refs}, timeout=30)
            answer.raise_for_status()
            raise requests.RequestException(f"a whole answer of {len(answer.content)} bytes")
        shutil.rmtree(tmp_path / "src" / "log")  # the feed gone: 500
        assert requests.get(f"{base}/v1/changes", timeout=30).status_code == 500
        metrics = scrape(base, token=None)
    errors = "curvestore_http_errors"
    assert value(metrics, errors, f"{errors}_total", route="/v1/chunks", kind="aborted") == 1
    assert value(metrics, errors, f"{errors}_total", route="/v1/changes", kind="internal") == 1
    assert value(metrics, "curvestore_http_requests", "curvestore_http_requests_total",
                 route="/v1/changes", status="500") == 1
    store.close()


def test_feed_lag_catches_up_over_several_scrapes(tmp_path: Path) -> None:
    store = write_source(tmp_path / "src", 5)  # five commits
    lag = FeedLag(store, page=1, catch_up_seconds=0.0)  # one page per scrape
    seen = [lag.newest_commit_time() for _ in range(6)]
    assert seen[:4] == [None] * 4  # not at the end of the feed yet: unknown
    assert seen[4] is not None and seen[5] == seen[4]
    newest = store.raw_changes(limit=10).items[-1]
    (record,) = store.backend.fetch([(newest.key, newest.chunk)])
    assert seen[4] == record.meta.updated_at / 1e9
    store.close()


def test_serve_metrics_without_prometheus_client(tmp_path: Path) -> None:
    store = write_source(tmp_path / "src", 1)
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            "from curvestore.cli import main\n"
            f"sys.exit(main(['serve', {store.url!r}, '--port', '0', '--metrics']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert 'pip install "curvestore[metrics]"' in done.stderr
    store.close()


def test_metrics_extra_provides_prometheus_client() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert [r for r in extras["metrics"] if r.startswith("prometheus-client")]
    assert "metrics" in extras["all"][0]
