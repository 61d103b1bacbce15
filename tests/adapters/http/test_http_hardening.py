"""The sync server under hostile input, over real sockets: refused before the body is read,
forged cursors and malformed bodies answered 400, and no secret in the access log."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("waitress")
pytest.importorskip("requests")

import requests

import curvestore
from curvestore.adapters.http import make_app
from curvestore.adapters.http.server import AccessLog
from curvestore.adapters.http.serving import serve_in_thread
from curvestore.core.cursor import decode_cursor, encode_cursor
from curvestore.testing.cursors import forge_cursor
from curvestore.testing.store import KEYS, curve, key

TOKEN = "tok-" + uuid.uuid4().hex
HUGE = 300 << 20  # the 300 MiB of the report


@pytest.fixture
def source(tmp_path: Path) -> Iterator[curvestore.Store]:
    """A file:// store (its cursors carry file offsets) with a few commits."""
    store = curvestore.create_store(f"file://{tmp_path / 'src'}", keys=KEYS, freq="15min",
                                    tz="Europe/Paris")
    for i in range(6):
        store.write(key(f"s{i}", "load", i), curve("2024-01-01", periods=300, seed=i))
    yield store
    store.close()


@pytest.fixture
def url(source: curvestore.Store) -> Iterator[str]:
    with serve_in_thread(make_app(source, token=TOKEN, max_limit=50)) as base:
        yield base


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _head_only(base: str, request_head: str) -> tuple[bytes, int]:
    """Send only ``request_head`` (a request line and headers announcing a body), read the
    answer, then try to send the announced body. Returns (the answer, body bytes the
    server let through before it closed the connection)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request_head.encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:  # no body byte sent yet: the answer must come now
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        head, _, rest = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            part = sock.recv(65536)
            if not part:
                break
            rest += part
        sent, block = 0, b"x" * (1 << 20)
        # a reset or broken pipe ends the sending: the server closed without reading
        with contextlib.suppress(OSError):
            while sent < HUGE:
                sent += sock.send(block)
        return head + b"\r\n\r\n" + rest, sent


def _status_and_json(answer: bytes) -> tuple[int, dict[str, Any], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body), head


@pytest.mark.parametrize("expect", ["", "Expect: 100-continue\r\n"])
def test_unauthenticated_body_is_refused_before_it_is_read(url: str, expect: str) -> None:
    answer, let_through = _head_only(
        url, f"POST /v1/chunks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             f"{expect}Content-Length: {HUGE}\r\n\r\n")
    status, data, head = _status_and_json(answer)
    assert status == 401 and data["type"] == "AuthenticationRequired"
    assert b"100 Continue" not in head and b"www-authenticate: bearer" in head.lower()
    # the server closed instead of reading: only what the kernel buffers could get through
    assert let_through < 64 << 20, f"{let_through} bytes of the body were accepted"


def test_oversized_body_is_refused_before_it_is_read(url: str) -> None:
    answer, let_through = _head_only(
        url, f"POST /v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
             f"Content-Length: {HUGE}\r\n\r\n")
    status, data, _head = _status_and_json(answer)
    assert status == 413 and "max_request_bytes" in data["error"]
    assert let_through < 64 << 20
    # a wrong token on a huge body is a 401, not a read
    answer, let_through = _head_only(
        url, f"POST /v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
             f"Content-Length: {HUGE}\r\n\r\n")
    assert _status_and_json(answer)[0] == 401 and let_through < 64 << 20


def test_bodies_where_none_belongs_and_chunked_bodies(url: str) -> None:
    answer, let_through = _head_only(
        url, f"GET /v1/changes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
             f"Content-Length: {HUGE}\r\n\r\n")
    status, data, _head = _status_and_json(answer)
    assert status == 413 and "accepts no request body" in data["error"]
    assert let_through < 64 << 20
    answer, _ = _head_only(
        url, f"POST /v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
             "Transfer-Encoding: chunked\r\n\r\n")
    assert _status_and_json(answer)[0] == 411


def test_body_at_the_limit_is_served(source: curvestore.Store) -> None:
    refs = {"refs": [[["s1", "load", 1], 0]]}
    body = json.dumps(refs).encode()
    with serve_in_thread(make_app(source, max_request_bytes=len(body))) as base:
        assert requests.post(base + "/v1/chunks", data=body, timeout=10).status_code == 200
        longer = json.dumps(refs, indent=1).encode()
        assert requests.post(base + "/v1/chunks", data=longer, timeout=10).status_code == 413


def test_forged_cursors_are_400(url: str, source: curvestore.Store) -> None:
    get = lambda cursor: requests.get(url + "/v1/changes", params={"cursor": cursor},  # noqa: E731
                                      headers=_auth(), timeout=10)
    store_id = requests.get(url + "/v1/manifest", headers=_auth(), timeout=10).json()["store_id"]
    first = requests.get(url + "/v1/changes", params={"limit": 1}, headers=_auth(),
                         timeout=10).json()["cursor"]
    end = requests.get(url + "/v1/changes", headers=_auth(), timeout=10).json()["cursor"]
    (seq,) = decode_cursor(first, store_id)  # file:// positions are log entry numbers
    forged = [
        encode_cursor(store_id, (1_000_000,)),  # the report's cursor: beyond the end
        encode_cursor(store_id, (seq + 1_000,)),
        encode_cursor(store_id, (seq, 1, 0)),  # another backend's arity
        encode_cursor(store_id, ()),
        forge_cursor(store_id, [-1]),  # a negative position
        forge_cursor(store_id, [2**70]),
        forge_cursor(store_id, None, raw_body=b"[" * 5_000 + b"]" * 5_000),  # deep nesting
        "cv1." + "A" * 10_000,
    ]
    for cursor in forged:
        response = get(cursor)
        assert response.status_code == 400, (cursor, response.text)
        assert response.json()["type"] == "InvalidCursorError"
    assert get(end).json()["items"] == []  # the genuine end cursor still works
    page = get(first).json()
    assert page["items"] and len(page["items"]) == 5


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"refs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"\xff\xfe\x00 not utf-8",
    b"",
    b"3",
    b"[]",
    b'"refs"',
    b'{"refs": {"a": 1}}',
    b'{"refs": [[["s1", "load", 1], 1099511627776]]}',
    b'{"refs": [[["s1", "load", 1180591620717411303424], 0]]}',
    b'{"refs": [[["s1", "load", 1], true]]}',
    b'{"refs": [[["s1", "load", 1], 1.5]]}',
    b'{"refs": [[["s1", "load", NaN], 0]]}',
    b'{"refs": [[["s1", "load", 1], 0, 5]]}',
    b'{"refs": [[{"site": "s1"}, 0]]}',
    b'{"refs": [["s1", 0]]}',
])
def test_malformed_bodies_are_400(url: str, body: bytes) -> None:
    response = requests.post(url + "/v1/chunks", data=body, headers=_auth(), timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "Traceback" not in response.text


def test_malformed_content_length_is_400(url: str) -> None:
    answer, _ = _head_only(url, f"POST /v1/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                f"Bearer {TOKEN}\r\nContent-Length: 12abc\r\n\r\n")
    assert answer.split(b" ", 2)[1] == b"400"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_secrets_in_the_query_or_path_never_reach_the_access_log(
        source: curvestore.Store) -> None:
    log = logging.getLogger(f"curvestore.http.test-{uuid.uuid4().hex}")
    log.setLevel(logging.INFO)
    log.propagate = False
    captured = _Lines()
    log.addHandler(captured)
    secrets = [TOKEN, "second-" + uuid.uuid4().hex, "bare-" + uuid.uuid4().hex,
               "path-" + uuid.uuid4().hex, "cursor-" + uuid.uuid4().hex,
               "cursor-" + uuid.uuid4().hex]
    app = AccessLog(make_app(source, token=TOKEN), log)
    with serve_in_thread(app) as base:
        auth = _auth()
        unknown = requests.get(f"{base}/v1/changes?limit=2&token={TOKEN}&access_token="
                               f"{secrets[1]}&site=s1", headers=auth, timeout=10)
        assert unknown.status_code == 400  # unknown parameters are refused, and not logged
        assert requests.get(f"{base}/v1/changes?limit=2&site=s1", headers=auth,
                            timeout=10).status_code == 200
        refused = requests.get(f"{base}/v1/changes?token={TOKEN}", timeout=10)
        assert refused.status_code == 401
        assert requests.get(f"{base}/v1/manifest?{secrets[2]}", headers=auth,
                            timeout=10).status_code == 200
        assert requests.get(f"{base}/v1/{secrets[3]}", headers=auth,
                            timeout=10).status_code == 404
        assert requests.get(f"{base}/v1/changes", params={"cursor": secrets[4]}, headers=auth,
                            timeout=10).status_code == 400
        assert requests.get(f"{base}/v1/changes", params={"_cursor": secrets[5], "_limit": 2},
                            headers=auth, timeout=10).status_code == 400
        huge, _ = _head_only(base, f"POST /v1/chunks?token={TOKEN} HTTP/1.1\r\nHost: x\r\n"
                                   f"Content-Length: {HUGE}\r\n\r\n")
        assert huge.split(b" ", 2)[1] == b"401"
    text = "\n".join(captured.lines)
    assert len(captured.lines) == 8, text
    for secret in secrets:
        assert secret not in text
    assert '"GET /v1/changes?limit=2&site=s1&[2 parameter(s) not logged]" 400' in text
    assert '"GET /v1/changes?limit=2&site=s1" 200' in text
    assert '"GET /v1/changes?_limit=2&[1 parameter(s) not logged]" 400' in text
    assert '"GET /v1/changes?[1 parameter(s) not logged]" 401 0 (refused before the body)' \
        in text
    assert '"GET /v1/manifest?[1 parameter(s) not logged]" 200' in text
    assert "<unknown path of" in text


def test_client_splits_chunk_requests_to_fit_the_server(source: curvestore.Store) -> None:
    from curvestore.adapters.http import HTTPSource

    refs = [[list(source.schema.key(k)), c.chunk] for k, c in
            ((ch.key, ch) for ch in source.changes(limit=100).items)]
    two = len(json.dumps({"refs": refs[:2]}, separators=(",", ":")))
    requests_made = []
    for limit in (1 << 20, two):  # one chunk request, then three of at most two refs each
        with serve_in_thread(make_app(source, max_request_bytes=limit)) as base, \
                HTTPSource(base) as remote:
            target = curvestore.create_store("memory://", keys=KEYS, freq="15min",
                                             tz="Europe/Paris")
            assert curvestore.replicate(remote, target).chunks == 6
            requests_made.append(remote.requests)
            assert target.read(key("s5", "load", 5)).equals(source.read(key("s5", "load", 5)))
    assert requests_made[1] == requests_made[0] + 2
