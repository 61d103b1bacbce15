"""The HTTP endpoints' contract: auth, input validation, limits and error answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("waitress")
pytest.importorskip("requests")

import requests

import curvestore
from curvestore.adapters.http import HTTPSource, RemoteError, make_app
from curvestore.adapters.http.serving import serve_in_thread
from curvestore.adapters.http.wire import (
    FrameReader,
    TruncatedStream,
    changes_query,
    encode_records,
)
from curvestore.backends.memory import MemoryBackend
from curvestore.errors import IntegrityError
from curvestore.testing.store import KEYS, curve

TOKEN = "t0k-" + uuid.uuid4().hex


@pytest.fixture
def source() -> Iterator[curvestore.Store]:
    name = uuid.uuid4().hex
    store = curvestore.create_store(f"memory://{name}", keys=KEYS, freq="15min",
                                    tz="Europe/Paris")
    store.write_many({(f"s{i}", "load" if i % 2 else "prod", i):
                      curve("2024-01-01", periods=200, seed=i) for i in range(30)})
    yield store
    store.close()
    MemoryBackend.forget(name)


@pytest.fixture
def url(source: curvestore.Store) -> Iterator[str]:
    with serve_in_thread(make_app(source, max_limit=7)) as base:
        yield base


def _error(response: Any) -> tuple[int, str, str]:
    data = response.json()
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, data["type"], data["error"]


def test_auth_refused_without_or_with_a_wrong_token(source: curvestore.Store) -> None:
    with serve_in_thread(make_app(source, token=TOKEN)) as base:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": "Basic " + TOKEN}):
            response = requests.get(base + "/v1/manifest", headers=headers, timeout=5)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in response.text
        for path in ("/v1/changes", "/nowhere"):  # auth comes before routing
            assert requests.get(base + path, timeout=5).status_code == 401
        slept: list[float] = []
        bad = HTTPSource(base, token="wrong", sleep=slept.append)
        with pytest.raises(RemoteError, match="HTTP 401: invalid bearer token") as info:
            bad.manifest()
        assert info.value.status == 401 and bad.requests == 1 and slept == []  # no retry
        assert "wrong" not in str(info.value)
        with pytest.raises(RemoteError, match="HTTP 401"):
            HTTPSource(base).manifest()
        good = HTTPSource(base, token=TOKEN)
        assert good.manifest()["store_id"] == source.config.store_id
        target = curvestore.create_store("memory://", keys=KEYS, freq="15min",
                                         tz="Europe/Paris")
        assert curvestore.replicate(good, target).chunks == 30


def test_manifest(url: str, source: curvestore.Store) -> None:
    data = requests.get(url + "/v1/manifest", timeout=5).json()
    assert {k: data[k] for k in source.config.manifest()} == source.config.manifest()
    assert data["protocol"] == {"version": 2, "max_limit": 7, "max_batch_bytes": 64 << 20,
                                "max_request_bytes": 1 << 20}


def test_malformed_and_foreign_cursors_are_400(url: str, source: curvestore.Store) -> None:
    response = requests.get(url + "/v1/changes", params={"cursor": "nonsense"}, timeout=5)
    assert _error(response)[:2] == (400, "InvalidCursorError")
    other = curvestore.create_store("memory://", keys=KEYS, freq="15min", tz="Europe/Paris")
    foreign = other.changes().cursor
    with pytest.raises(curvestore.SyncError, match=r"HTTP 400: .*another store") as info:
        HTTPSource(url).changes(foreign, {}, 10)
    assert info.value.status == 400  # type: ignore[attr-defined]
    with pytest.raises(curvestore.SyncError, match="HTTP 400: malformed change-feed cursor"):
        HTTPSource(url).changes("cv1.tampered", {}, 10)


def test_filters_only_declared_keys_typed(url: str) -> None:
    get = lambda **params: requests.get(url + "/v1/changes", params=params, timeout=5)  # noqa: E731
    assert _error(get(colour="red"))[:2] == (400, "InvalidKeyError")
    status, kind, message = _error(get(n="one"))
    assert (status, kind) == (400, "InvalidKeyError") and "int key" in message
    status, kind, message = _error(get(n=str(2**63)))
    assert (status, kind) == (400, "InvalidKeyError") and "64-bit" in message
    assert _error(get(site="a\x00"))[:2] == (400, "InvalidKeyError")
    assert _error(get(limit="0"))[0] == 400 and _error(get(limit="x"))[0] == 400
    assert _error(requests.get(url + "/v1/changes?site=a&site=b", timeout=5))[0] == 400
    items = get(n="3", limit="7").json()["items"]
    assert [(i["key"], i["chunk"]) for i in items] == [
        ({"site": "s3", "kind": "load", "n": 3}, items[0]["chunk"])]
    assert len(get(kind="load").json()["items"]) == 7  # default limit, capped at max_limit
    page = HTTPSource(url).changes(None, {"kind": "prod", "n": 4}, 100)
    assert [c.key for c in page.items] == [("s4", "prod", 4)]


def test_protocol_parameters_are_prefixed_and_old_names_still_work(url: str) -> None:
    """Version 2's ``_cursor``/``_limit``; version 1's ``cursor``/``limit`` (old clients)
    mean the same on a store without keys of those names; both spellings at once are 400."""
    get = lambda **params: requests.get(url + "/v1/changes", params=params, timeout=5)  # noqa: E731
    first = get(_limit="3").json()
    assert len(first["items"]) == 3 and first == get(limit="3").json()
    after = get(_cursor=first["cursor"], _limit="2").json()
    assert after == get(cursor=first["cursor"], limit="2").json()
    assert after["items"][0] == get(_limit="4").json()["items"][3]
    assert _error(get(_limit="3", limit="3"))[:2] == (400, "SyncError")
    assert _error(get(_cursor=first["cursor"], cursor=first["cursor"]))[:2] == (400, "SyncError")
    assert _error(get(_limit="0"))[0] == 400
    status, kind, message = _error(get(_colour="red"))
    assert (status, kind) == (400, "InvalidKeyError") and "_cursor, _limit" in message


def test_key_filters_named_like_the_old_parameters() -> None:
    """On a store keyed by ``cursor`` and ``limit``, those query names are key filters."""
    store = curvestore.create_store("memory://", keys={"cursor": str, "limit": int},
                                    freq="1h", tz="UTC")
    for i in range(4):
        store.write({"cursor": f"c{i % 2}", "limit": i}, curve("2024-01-01", periods=3,
                                                              freq="1h", tz="UTC"))
    with serve_in_thread(make_app(store)) as base:
        get = lambda **params: requests.get(base + "/v1/changes", params=params,  # noqa: E731
                                            timeout=5).json()
        assert [i["key"] for i in get(cursor="c1")["items"]] == [
            {"cursor": "c1", "limit": 1}, {"cursor": "c1", "limit": 3}]
        assert [i["key"] for i in get(limit="2", _limit="10")["items"]] == [
            {"cursor": "c0", "limit": 2}]
        page = get(cursor="c0", _limit="1")
        assert len(page["items"]) == 1 and page["has_more"]
        rest = get(cursor="c0", _cursor=page["cursor"])["items"]
        assert [i["key"] for i in rest] == [{"cursor": "c0", "limit": 2}]
        remote = HTTPSource(base)
        assert [c.key for c in remote.changes(None, {"cursor": "c0", "limit": 2}, 5).items] \
            == [("c0", 2)]


def test_client_speaks_version_1_to_old_servers() -> None:
    assert changes_query("C", {"n": 3}, 10, 1) == {"n": "3", "limit": "10", "cursor": "C"}
    assert changes_query(None, {"n": 3}, 10, 2) == {"n": "3", "_limit": "10"}
    assert changes_query("C", {"limit": 3}, 10, 2) == {"limit": "3", "_limit": "10",
                                                       "_cursor": "C"}
    with pytest.raises(curvestore.SyncError, match="cannot filter on key"):
        changes_query(None, {"limit": 3}, 10, 1)


def test_limit_is_capped(url: str) -> None:
    page = requests.get(url + "/v1/changes", params={"limit": 1000}, timeout=5).json()
    assert len(page["items"]) == 7 and page["has_more"] is True
    remote = HTTPSource(url)
    seen, cursor = 0, None
    while True:
        chunk_page = remote.changes(cursor, {}, 1000)
        assert len(chunk_page.items) <= 7
        seen += len(chunk_page.items)
        cursor = chunk_page.cursor
        if not chunk_page.has_more:
            break
    assert seen == 30


def test_chunks_endpoint_validation(url: str) -> None:
    post = lambda body, **kw: requests.post(url + "/v1/chunks", timeout=5, data=body, **kw)  # noqa: E731
    assert _error(post(b"not json"))[:2] == (400, "BadRequest")
    assert _error(post(b'{"refs": 3}'))[0] == 400
    assert _error(post(b'{"refs": [[["s1", "load"], 3]]}'))[:2] == (400, "InvalidKeyError")
    assert _error(post(b'{"refs": [[["s1", "load", 1], "3"]]}'))[0] == 400
    many = {"refs": [[["s1", "load", 1], i] for i in range(8)]}
    status, _kind, message = _error(requests.post(url + "/v1/chunks", json=many, timeout=5))
    assert status == 413 and "at most 7" in message
    ok = requests.post(url + "/v1/chunks", json={"refs": [[["s1", "load", 1], 0],
                                                         [["zz", "x", 9], 5]]}, timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/octet-stream"
    records = list(FrameReader().feed(ok.content))
    assert [r.meta.deleted for r in records] == [True, True]  # absent chunks are tombstones


def test_request_body_too_big_is_413(source: curvestore.Store) -> None:
    with serve_in_thread(make_app(source, max_request_bytes=100)) as base:
        body = {"refs": [[["s1", "load", 1], i] for i in range(10)]}
        response = requests.post(base + "/v1/chunks", json=body, timeout=5)
        assert _error(response)[0] == 413


def test_unknown_path_and_method(url: str) -> None:
    assert _error(requests.get(url + "/v2/changes", timeout=5))[:2] == (404, "NotFound")
    assert _error(requests.get(url + "/", timeout=5))[0] == 404
    response = requests.get(url + "/v1/chunks", timeout=5)
    assert _error(response)[:2] == (405, "MethodNotAllowed")
    assert response.headers["Allow"] == "POST"
    assert _error(requests.delete(url + "/v1/manifest", timeout=5))[0] == 405


def test_internal_errors_are_500_without_details(source: curvestore.Store,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(source.backend, "feed", broken)
    with serve_in_thread(make_app(source)) as base:
        response = requests.get(base + "/v1/changes", timeout=5)
        assert _error(response) == (500, "InternalError", "internal server error")
        assert "secret" not in response.text and "Traceback" not in response.text
        slept: list[float] = []
        remote = HTTPSource(base, retries=2, sleep=slept.append)
        with pytest.raises(RemoteError, match="HTTP 500: internal server error"):
            remote.changes(None, {}, 10)
        assert len(slept) == 2  # 5xx are retried


def test_frame_reader_detects_truncation_and_corruption(source: curvestore.Store) -> None:
    records = [r for _k, rs in source.backend.scan({}) for r in rs][:3]
    data = encode_records(records)
    reader = FrameReader()
    got = [r for i in range(0, len(data), 1000) for r in reader.feed(data[i:i + 1000])]
    reader.close()
    assert got == records
    partial = FrameReader()
    assert len(list(partial.feed(data[:-1]))) == 2
    with pytest.raises(TruncatedStream):
        partial.close()
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF  # in the last payload
    with pytest.raises(IntegrityError, match="checksum"):
        list(FrameReader().feed(bytes(flipped)))
    flipped = bytearray(data)
    flipped[20] ^= 0xFF  # in the first header
    with pytest.raises(IntegrityError):
        list(FrameReader().feed(bytes(flipped)))
