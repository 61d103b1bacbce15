"""A framework-free WSGI app serving a store's change feed and chunks (the sync protocol).

Endpoints (version 1, all under ``/v1/``):

``GET /v1/manifest``
    The store's manifest (keys, freq, tz, chunking, dtype, codec, store id, format version)
    plus ``protocol`` (its version and this server's limits).
``GET /v1/changes?_cursor=C&_limit=N&<key>=<value>...``
    A page of the change feed after the opaque cursor ``C`` (absent or empty: from the
    start), filtered by declared key names only (values converted to the key's type); the
    protocol's parameters carry the reserved prefix, so any key name is a filter (version 1's
    ``cursor`` and ``limit`` are still read as such when the store has no key of that name):
    ``{"items": [{"key": {...}, "chunk": int, "version": int, "deleted": bool}],
    "cursor": "...", "has_more": bool}``. ``limit`` is capped at ``max_limit``.
``POST /v1/chunks`` with ``{"refs": [[key_values, chunk], ...]}``
    The current records of those chunks (tombstones for deleted or absent ones) as an
    ``application/octet-stream`` of concatenated chunk objects (see
    :mod:`curvestore.adapters.http.wire`), produced lazily so memory stays bounded. At most
    ``max_limit`` refs per request; a response stops early, at a record boundary, once it
    would exceed ``max_batch_bytes`` (it always carries at least one record): the client asks
    again for what it did not receive.

Errors are JSON ``{"error": message, "type": name}`` with status 400 (bad input: malformed
JSON or refs, a cursor that is malformed, foreign, or positioned beyond the feed's end or
between its entries), 401 (missing or wrong bearer token, when a token is configured), 404
(unknown path), 405 (wrong method), 411 (a chunked request body), 413 (request too big) or
500 (internal; details are logged, never sent). The app never writes to the store.

Everything a request's headers decide (auth, route, method, body size) is checked by
:meth:`SyncApp.screen`; :func:`curvestore.adapters.http.serving.create_server` runs it in
waitress's parser as soon as the headers are in, so a refused request's body is never read
(a WSGI server buffers the whole body before calling an app). The access log never shows
headers, query values other than cursors, limits and key filters, or unknown paths.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode

from curvestore.adapters.http.wire import (
    CHUNKS_CONTENT_TYPE,
    CURSOR_PARAM,
    LIMIT_PARAM,
    PROTOCOL_VERSION,
    encode_record,
    protocol_parameter,
    split_changes_query,
)
from curvestore.core.cursor import MAX_CURSOR_LENGTH
from curvestore.core.records import SeriesKey
from curvestore.errors import InvalidKeyError, SyncError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["AccessLog", "HTTPProblem", "SyncApp", "error_response", "make_app"]

logger = logging.getLogger("curvestore.http")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

DEFAULT_LIMIT = 1000
DEFAULT_MAX_REQUEST_BYTES = 1 << 20
_CHUNK_LIMIT = 2**31  # chunk indexes are months or years from 1970: far inside 32 bits
_INT_KEY_LIMIT = 2**63
_FETCH_GROUP = 256  # refs per backend.fetch call while streaming
_FLUSH_BYTES = 256 << 10  # bytes gathered before a write to the socket


class HTTPProblem(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, message: str, kind: str | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind or HTTPStatus(status).phrase.replace(" ", "")
        self.headers = list(headers)


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def error_response(problem: HTTPProblem) -> tuple[str, list[tuple[str, str]], bytes]:
    """``(status line, headers, body)`` of the JSON answer to ``problem``."""
    body = json.dumps({"error": str(problem), "type": problem.kind}).encode()
    return _status(problem.status), [("Content-Type", "application/json"),
                                     ("Content-Length", str(len(body))),
                                     ("Cache-Control", "no-store"), *problem.headers], body


class SyncApp:
    """The WSGI callable built by :func:`make_app`."""

    def __init__(self, store: Store, *, token: str | None = None, max_limit: int = 5000,
                 max_batch_bytes: int = 64 << 20,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        if max_limit < 1 or max_batch_bytes < 1 or max_request_bytes < 1:
            raise ValueError("max_limit, max_batch_bytes and max_request_bytes must be positive")
        self.store = store
        self._token = token.encode() if token else None
        self.max_limit = max_limit
        self.max_batch_bytes = max_batch_bytes
        self.max_request_bytes = max_request_bytes
        self._routes: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
            "/v1/manifest": ("GET", self._manifest),
            "/v1/changes": ("GET", self._changes),
            "/v1/chunks": ("POST", self._chunks),
        }

    # -- plumbing --------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        try:
            result = self._route(environ)(environ)
        except HTTPProblem as exc:
            return self._error(start_response, exc.status, str(exc), exc.kind, exc.headers)
        except (SyncError, InvalidKeyError) as exc:
            return self._error(start_response, 400, str(exc), type(exc).__name__)
        except Exception:
            logger.exception("internal error answering %s %s", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))
            return self._error(start_response, 500, "internal server error", "InternalError")
        if isinstance(result, Iterator):  # a streamed chunk batch
            start_response(_status(200), [("Content-Type", CHUNKS_CONTENT_TYPE),
                                          ("Cache-Control", "no-store")])
            return result
        body = json.dumps(result, separators=(",", ":")).encode()
        start_response(_status(200), [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
        return [body]

    @staticmethod
    def _error(start_response: StartResponse, status: int, message: str, kind: str,
               headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
        code, all_headers, body = error_response(HTTPProblem(status, message, kind, headers))
        start_response(code, all_headers)
        return [body]

    def screen(self, environ: Mapping[str, Any]) -> None:
        """Raise :class:`HTTPProblem` for a request its headers alone condemn: no or a wrong
        token (401), unknown path (404), wrong method (405), a chunked body (411) or a body
        over ``max_request_bytes`` or on an endpoint that takes none (413).

        Needs only the request line and headers (WSGI names), so a server can call it before
        reading the body; :func:`~curvestore.adapters.http.serving.create_server` does."""
        self._route(environ)

    def _route(self, environ: Mapping[str, Any]) -> Callable[[dict[str, Any]], Any]:
        self._authorize(environ)
        path = environ.get("PATH_INFO", "") or "/"
        route = self._routes.get(path.rstrip("/") if path != "/" else path)
        if route is None:
            raise HTTPProblem(404, f"no endpoint {_clipped(path)}; this server speaks "
                                   "/v1/manifest, /v1/changes and /v1/chunks")
        method, handler = route
        if environ.get("REQUEST_METHOD", "GET") != method:
            raise HTTPProblem(405, f"{path} accepts {method} only", headers=[("Allow", method)])
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise HTTPProblem(411, "send the request body with a Content-Length, not chunked")
        length = _content_length(environ)
        limit = self.max_request_bytes if method == "POST" else 0
        if length > limit:
            raise HTTPProblem(413, f"{path} accepts no request body" if not limit else
                              f"request body of {length} bytes is over this server's limit of "
                              f"{limit} (max_request_bytes)")
        return handler

    def loggable_target(self, environ: Mapping[str, Any]) -> str:
        """The request's path and query as a log may show them: an endpoint's path with its
        cursor, limit and key filters; any other query parameter (a token put there by
        mistake, say) is counted, never shown, and so is an unknown path."""
        path = environ.get("PATH_INFO", "") or "/"
        if path.rstrip("/") not in self._routes:
            return f"<unknown path of {len(path)} characters>"
        query = self._loggable_query(environ.get("QUERY_STRING", ""))
        return f"{path}?{query}" if query else path

    def _loggable_query(self, query: str) -> str:
        keys = self.store.schema.names
        shown, hidden = [], 0
        for name, value in parse_qsl(query, keep_blank_values=True):
            role = protocol_parameter(name, keys)
            safe = ((role == "cursor" and value.startswith("cv1.")
                     and len(value) <= MAX_CURSOR_LENGTH)
                    or (role == "limit" and value.isdigit() and len(value) <= 20)
                    or (role is None and name in keys))
            if safe:
                shown.append(urlencode({name: value}))
            else:
                hidden += 1
        if hidden:
            shown.append(f"[{hidden} parameter(s) not logged]")
        return "&".join(shown)

    @property
    def routes(self) -> tuple[str, ...]:
        """The paths this app answers (route templates: none takes a parameter)."""
        return tuple(self._routes)

    def authorize(self, environ: Mapping[str, Any]) -> None:
        """Raise :class:`HTTPProblem` (401) unless the request carries the token, if one is
        configured (another endpoint served beside the app, ``/metrics``, shares it)."""
        self._authorize(environ)

    def _authorize(self, environ: Mapping[str, Any]) -> None:
        if self._token is None:
            return
        challenge = [("WWW-Authenticate", 'Bearer realm="curvestore"')]
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HTTPProblem(401, "this server needs 'Authorization: Bearer <token>'",
                              "AuthenticationRequired", challenge)
        if not hmac.compare_digest(given.strip().encode(), self._token):
            raise HTTPProblem(401, "invalid bearer token", "AuthenticationFailed", challenge)

    # -- endpoints -------------------------------------------------------------------------
    def _manifest(self, environ: dict[str, Any]) -> dict[str, Any]:
        from curvestore._version import __version__

        return {
            **self.store.config.manifest(),
            "protocol": {"version": PROTOCOL_VERSION, "max_limit": self.max_limit,
                         "max_batch_bytes": self.max_batch_bytes,
                         "max_request_bytes": self.max_request_bytes},
            "server": f"curvestore/{__version__}",
        }

    def _changes(self, environ: dict[str, Any]) -> dict[str, Any]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        repeated = sorted(name for name, values in query.items() if len(values) > 1)
        if repeated:
            raise HTTPProblem(400, f"query parameters given more than once: {repeated}")
        schema = self.store.schema
        cursor, limit_text, params = split_changes_query(
            {name: values[0] for name, values in query.items()}, schema.names)
        cursor = cursor or None
        limit = min(_positive(str(DEFAULT_LIMIT) if limit_text is None else limit_text,
                              "limit"), self.max_limit)
        where = schema.filter_from_text(params, others=(CURSOR_PARAM, LIMIT_PARAM))
        page = self.store.raw_changes(cursor, where, limit)
        names = schema.names
        return {
            "items": [{"key": dict(zip(names, c.key, strict=True)), "chunk": c.chunk,
                       "version": c.version, "deleted": c.deleted} for c in page.items],
            "cursor": page.cursor,
            "has_more": page.has_more,
        }

    def _chunks(self, environ: dict[str, Any]) -> Iterator[bytes]:
        length = _content_length(environ)  # within max_request_bytes: checked by _route
        data = environ["wsgi.input"].read(length) if length else b""
        if len(data) != length:
            raise HTTPProblem(400, f"the request body ended after {len(data)} of {length} bytes")
        expected = 'expected a JSON body {"refs": [[key_values, chunk], ...]}'
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise HTTPProblem(400, f"{expected}; the body is not JSON") from None
        raw = body.get("refs") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise HTTPProblem(400, expected)
        if len(raw) > self.max_limit:
            raise HTTPProblem(413, f"{len(raw)} refs asked; this server sends at most "
                                   f"{self.max_limit} per request")
        by_key: dict[SeriesKey, list[int]] = {}
        schema = self.store.schema
        for item in raw:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)
                    and type(item[1]) is int and -_CHUNK_LIMIT < item[1] < _CHUNK_LIMIT
                    and all(type(v) is not int or -_INT_KEY_LIMIT <= v < _INT_KEY_LIMIT
                            for v in item[0])):
                raise HTTPProblem(400, "a ref is [key_values, chunk] (a chunk index within "
                                       f"32 bits, int keys within 64 bits), got "
                                       f"{_clipped(repr(item))}")
            by_key.setdefault(schema.key_from_tuple(tuple(item[0])), []).append(item[1])
        refs = [(key, chunk) for key, chunks in by_key.items() for chunk in chunks]
        return self._stream(refs)

    def _stream(self, refs: list[tuple[SeriesKey, int]]) -> Iterator[bytes]:
        """Encoded records of ``refs``, fetched a group at a time. An error here can no longer
        change the status: it is logged and the connection is dropped (the client retries)."""
        sent, gathered = 0, 0
        parts: list[bytes] = []
        try:
            for lo in range(0, len(refs), _FETCH_GROUP):
                for record in self.store.backend.fetch(refs[lo:lo + _FETCH_GROUP]):
                    data = encode_record(record)
                    if sent and sent + len(data) > self.max_batch_bytes:
                        if parts:
                            yield b"".join(parts)
                        return
                    sent += len(data)
                    parts.append(data)
                    gathered += len(data)
                    if gathered >= _FLUSH_BYTES:
                        yield b"".join(parts)
                        parts, gathered = [], 0
            if parts:
                yield b"".join(parts)
        except Exception:
            logger.exception("chunk stream aborted after %d bytes", sent)
            raise


def _content_length(environ: Mapping[str, Any]) -> int:
    text = str(environ.get("CONTENT_LENGTH") or "0").strip()
    if not text.isdigit() or not text.isascii():
        raise HTTPProblem(400, f"invalid Content-Length {_clipped(text)!r}")
    return int(text)


def _clipped(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[:size - 3] + "..."


def _positive(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise HTTPProblem(400, f"{name} must be an integer, got {text!r}") from None
    if value < 1:
        raise HTTPProblem(400, f"{name} must be at least 1, got {value}")
    return value


def make_app(store: Store, *, token: str | None = None, max_limit: int = 5000,
             max_batch_bytes: int = 64 << 20,
             max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> SyncApp:
    """A WSGI app serving ``store``'s manifest, change feed and chunks (read-only).

    Parameters
    ----------
    store
        The source store; the app only reads it. The WSGI server may call the app from
        several threads, so the store's backend must allow concurrent reads.
    token
        When given, every request needs ``Authorization: Bearer <token>`` (compared in
        constant time); otherwise 401.
    max_limit
        Cap on changes per page and refs per chunk request.
    max_batch_bytes
        Cap on the bytes of one chunk response.
    max_request_bytes
        Cap on a request body (only ``POST /v1/chunks`` takes one); larger ones get 413
        before their body is read when served by
        :func:`~curvestore.adapters.http.serving.create_server`. Advertised in the
        manifest; the client splits its chunk requests to fit.
    """
    return SyncApp(store, token=token, max_limit=max_limit, max_batch_bytes=max_batch_bytes,
                   max_request_bytes=max_request_bytes)


class AccessLog:
    """WSGI middleware logging one line per request once its response is fully sent:
    client address, method, path, status, bytes sent and duration, and ``(refused before
    the body)`` for requests :meth:`screen` turned away. Never logs headers (so never the
    token); the path and query are logged as the app's ``loggable_target(environ)`` gives
    them (:meth:`SyncApp.loggable_target`), or the path alone for other apps."""

    def __init__(self, app: WSGIApp, log: logging.Logger | None = None) -> None:
        self.app = app
        self.log = log or logger

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        began = time.perf_counter()
        status: list[str] = []

        def recording_start(code: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            status[:] = [code.split(" ", 1)[0]]
            return start_response(code, headers, *exc)

        body = self.app(environ, recording_start)
        return self._logged(environ, body, status, began)

    def screen(self, environ: Mapping[str, Any]) -> None:
        """The wrapped app's ``screen`` (if any), logging the requests it refuses."""
        screen = getattr(self.app, "screen", None)
        if screen is None:
            return
        try:
            screen(environ)
        except HTTPProblem as exc:
            self._line(environ, str(exc.status), 0, None, " (refused before the body)")
            raise

    def _target(self, environ: Mapping[str, Any]) -> str:
        loggable = getattr(self.app, "loggable_target", None)
        if loggable is not None:
            return str(loggable(environ))
        return str(environ.get("PATH_INFO", ""))

    def _line(self, environ: Mapping[str, Any], status: str, sent: int, began: float | None,
              outcome: str) -> None:
        took = f" {(time.perf_counter() - began) * 1000:.1f}ms" if began is not None else ""
        self.log.info('%s "%s %s" %s %d%s%s', environ.get("REMOTE_ADDR", "-"),
                      environ.get("REQUEST_METHOD"), self._target(environ), status, sent,
                      took, outcome)

    def _logged(self, environ: dict[str, Any], body: Iterable[bytes], status: list[str],
                began: float) -> Iterator[bytes]:
        sent, outcome = 0, ""
        try:
            for part in body:
                sent += len(part)
                yield part
        except BaseException:
            outcome = " (aborted)"
            raise
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self._line(environ, status[0] if status else "-", sent, began, outcome)
