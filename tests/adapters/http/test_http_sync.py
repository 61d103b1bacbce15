"""Replication over a real loopback socket: HTTPSource <- waitress <- make_app."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

pytest.importorskip("waitress")
pytest.importorskip("requests")

import curvestore
from curvestore.adapters.http import HTTPSource, make_app
from curvestore.adapters.http.client import retry_after
from curvestore.adapters.http.serving import serve_in_thread
from curvestore.backends.memory import MemoryBackend
from curvestore.testing.replication import assert_stores_equal
from curvestore.testing.store import KEYS, assert_series_exact, curve, key


def _raw(store: curvestore.Store) -> dict[tuple[Any, int], tuple[str, int, bytes]]:
    return {(k, r.chunk): (r.meta.codec, r.meta.checksum, r.payload)
            for k, records in store.backend.scan({}) for r in records}


def _fill(store: curvestore.Store) -> None:
    store.write_many({
        ("a", "load", 1): curve("2024-01-20", end="2024-03-05", seed=1),
        ("a", "load", 2): curve("2024-02-01", periods=500, seed=2, nan=0.1),
        ("b", "prod", 1): curve("2024-06-01", periods=96, seed=3),
    })


@pytest.fixture
def make_store(tmp_path: Any) -> Iterator[Callable[[str], curvestore.Store]]:
    """Stores on ``file://`` (under tmp_path) or ``memory://`` (a unique name)."""
    opened: list[curvestore.Store] = []
    names: list[str] = []

    def make(kind: str) -> curvestore.Store:
        name = uuid.uuid4().hex
        if kind == "memory":
            names.append(name)
            url = f"memory://{name}"
        else:
            url = f"file://{tmp_path / name}"
        store = curvestore.create_store(url, keys=KEYS, freq="15min", tz="Europe/Paris")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    for name in names:
        MemoryBackend.forget(name)


@pytest.mark.parametrize(("src_kind", "dst_kind"), [("file", "memory"), ("memory", "file")])
def test_full_incremental_and_idempotent(make_store: Callable[[str], curvestore.Store],
                                         src_kind: str, dst_kind: str) -> None:
    source, target = make_store(src_kind), make_store(dst_kind)
    _fill(source)
    with serve_in_thread(make_app(source)) as url, HTTPSource(url) as remote:
        first = curvestore.replicate(remote, target, batch=2)
        assert (first.chunks, first.tombstones) == (5, 0)
        assert assert_stores_equal(source, target) == 3
        assert _raw(target) == _raw(source)  # payloads byte-identical, codecs kept
        again = curvestore.replicate(remote, target)
        assert (again.changes, again.chunks, again.tombstones) == (0, 0, 0)

        source.write(key("a", "load", 1), curve("2024-02-10", periods=50, seed=9),
                     mode="update")
        source.write(key("a", "load", 2), curve("2024-05-01", periods=20, seed=8),
                     mode="replace")
        source.delete(key("b", "prod", 1))
        report = curvestore.replicate(remote, target, batch=3)
        assert report.tombstones == 2  # the old month of a/load/2, the month of b/prod/1
        assert assert_stores_equal(source, target) == 2
        assert target.read(key("b", "prod", 1)) is None
        assert _raw(target) == _raw(source)
        assert curvestore.replicate(remote, target).changes == 0


def test_filtered_sync(make_store: Callable[[str], curvestore.Store]) -> None:
    source, target = make_store("memory"), make_store("file")
    _fill(source)
    with serve_in_thread(make_app(source)) as url:
        report = curvestore.replicate(HTTPSource(url), target, filter={"kind": "load"})
        assert report.chunks == 4
        assert [k["kind"] for k in target.keys(None)] == ["load", "load"]
        source.write(key("b", "prod", 1), curve("2024-06-02", periods=4, seed=5), mode="update")
        source.write(key("a", "load", 1), curve("2024-03-05", periods=4, seed=5), mode="update")
        again = curvestore.replicate(HTTPSource(url), target, filter={"kind": "load", "n": 1})
        assert again.chunks == 3  # a separate cursor: a/load/1 again, from the start
        assert curvestore.replicate(HTTPSource(url), target, filter={"kind": "load"}).chunks == 1
        assert assert_stores_equal(source, target, {"kind": "load"}) == 2
        assert target.keys({"kind": "prod"}) == []


def test_target_written_locally_still_receives_everything(
        make_store: Callable[[str], curvestore.Store]) -> None:
    source, target = make_store("file"), make_store("memory")
    _fill(source)
    with serve_in_thread(make_app(source)) as url:
        remote = HTTPSource(url)
        curvestore.replicate(remote, target)
        target.write(key("z", "local", 1), curve("2024-01-01", periods=10, seed=4))
        target.write(key("a", "load", 1), curve("2024-01-25", periods=3, value=7.0),
                     mode="update")
        source.write(key("a", "load", 2), curve("2024-02-03", periods=5, value=1.5),
                     mode="update")
        curvestore.replicate(remote, target)
        assert_series_exact(target.read(key("a", "load", 2)), source.read(key("a", "load", 2)))
        assert target.read(key("z", "local", 1)) is not None
        source.write(key("a", "load", 1), curve("2024-01-25", periods=1, value=3.0),
                     mode="update")
        curvestore.replicate(remote, target)  # the source wins over the local edit
        assert_series_exact(target.read(key("a", "load", 1)), source.read(key("a", "load", 1)))


def test_small_response_cap_and_page_cap(make_store: Callable[[str], curvestore.Store]) -> None:
    """Responses cut at max_batch_bytes and pages cut at max_limit still copy everything."""
    source, target = make_store("memory"), make_store("memory")
    source.write_many({(f"s{i}", "load", i): curve("2024-01-01", periods=3000, seed=i)
                       for i in range(6)})
    app = make_app(source, max_limit=4, max_batch_bytes=20_000)  # ~1.5 chunks per response
    with serve_in_thread(app) as url:
        remote = HTTPSource(url)
        report = curvestore.replicate(remote, target, batch=100)
        assert report.pages == 3 and report.chunks == 12
        assert remote.requests > report.pages * 2  # several chunk requests per page
    assert _raw(target) == _raw(source)


class FaultInjector:
    """WSGI middleware: answers 429 (Retry-After) to the first request of each endpoint; cuts
    the 2nd chunk stream inside a record (a clean end: a truncated batch) and breaks the 4th
    mid-stream (the connection drops); answers 500 to every third other request."""

    def __init__(self, app: Callable[..., Iterable[bytes]], retry_after: str = "2") -> None:
        self.app = app
        self.retry_after = retry_after
        self.seen: dict[str, int] = {}
        self.count = 0
        self.faults = {"429": 0, "500": 0, "cut": 0, "broken": 0}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        self.count += 1
        self.seen[path] = self.seen.get(path, 0) + 1
        if self.seen[path] == 1:
            self.faults["429"] += 1
            start_response("429 Too Many Requests", [("Retry-After", self.retry_after),
                                                     ("Content-Type", "application/json")])
            return [b'{"error": "slow down", "type": "Throttled"}']
        if path == "/v1/chunks" and self.seen[path] in (2, 4):
            data = b"".join(self.app(environ, start_response))
            if self.seen[path] == 2:
                self.faults["cut"] += 1
                return [data[: len(data) // 2 + 7]]
            self.faults["broken"] += 1
            return self._broken(data)
        if self.count % 3 == 0:
            self.faults["500"] += 1
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"boom"]
        return self.app(environ, start_response)

    @staticmethod
    def _broken(data: bytes) -> Iterator[bytes]:
        yield data[: len(data) // 3]
        raise ConnectionAbortedError("injected: the server died mid-stream")


def test_client_survives_throttling_errors_and_broken_streams(
        make_store: Callable[[str], curvestore.Store]) -> None:
    source, target = make_store("memory"), make_store("file")
    _fill(source)
    source.write_many({(f"x{i}", "load", i): curve("2024-03-01", periods=4000, seed=i)
                       for i in range(4)})
    faults = FaultInjector(make_app(source))
    slept: list[float] = []
    with serve_in_thread(faults) as url:
        remote = HTTPSource(url, sleep=slept.append, backoff=0.01, retries=6)
        report = curvestore.replicate(remote, target, batch=4)
    assert report.chunks == 5 + 4 * 2
    assert assert_stores_equal(source, target) == 7
    assert faults.faults == {"429": 3, "500": faults.faults["500"], "cut": 1, "broken": 1}
    assert faults.faults["500"] >= 2
    assert slept.count(2.0) == 3  # Retry-After honoured for each 429
    assert all(0 < s <= 1.0 for s in slept if s != 2.0)  # backoff for the rest


def test_retry_after_http_date_and_timing(make_store: Callable[[str], curvestore.Store]) -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None
    source = make_store("memory")
    faults = FaultInjector(make_app(source), retry_after="1")
    with serve_in_thread(faults) as url:
        import time

        began = time.perf_counter()
        HTTPSource(url).manifest()  # the real sleep: one 429 with Retry-After: 1
        assert time.perf_counter() - began >= 0.95


def test_connection_refused_is_retried_then_raises() -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slept: list[float] = []
    remote = HTTPSource(f"http://127.0.0.1:{port}", retries=2, backoff=0.1, sleep=slept.append,
                        token="s3cret")
    with pytest.raises(curvestore.SyncError, match="ConnectionError after 3 attempts") as info:
        remote.manifest()
    assert "s3cret" not in str(info.value)
    assert len(slept) == 2 and 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2
