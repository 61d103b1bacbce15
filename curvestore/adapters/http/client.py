"""``HTTPSource``: a remote store's sync endpoints as a :class:`~curvestore.core.sync.ChangeSource`.

``curvestore.replicate(HTTPSource("http://host:8765"), target)`` replicates over HTTP with the
same guarantees as in process: the target's cursor is saved with each imported page, so an
interrupted pull resumes where it stopped, and a second pull copies nothing.

Guarantees of the client:

* every request has a (connect, read) timeout;
* connection errors, timeouts, broken chunk streams and 5xx answers are retried up to
  ``retries`` times with exponential backoff and jitter; 429 and 503 wait for the server's
  ``Retry-After`` (seconds or an HTTP date, capped at ``max_retry_after``) when it gives one;
  other 4xx answers are never retried;
* failures raise :class:`RemoteError` (a :class:`~curvestore.errors.SyncError`) carrying the
  server's JSON message and status; messages never contain the token;
* :meth:`HTTPSource.fetch` parses the binary chunk stream incrementally, checks each header's
  and payload's CRC-32, refuses records it did not ask for, and asks again for the ones a
  response did not carry (a capped or broken response), so it returns exactly one record per
  distinct ref.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from curvestore.adapters.http.wire import (
    FrameReader,
    TruncatedStream,
    changes_query,
    protocol_version,
)
from curvestore.core.records import Change, ChangePage, ChunkRecord, SeriesKey
from curvestore.errors import SyncError

__all__ = ["HTTPSource", "RemoteError"]

_RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_READ_SIZE = 256 << 10
_MAX_BACKOFF = 30.0


class RemoteError(SyncError):
    """The sync server refused a request or could not be reached.

    ``status`` is the HTTP status (None when no answer came), ``error_type`` the server's
    error type name when it sent one.
    """

    def __init__(self, message: str, status: int | None = None,
                 error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _redact(url: str) -> str:
    """``url`` without user info (credentials never reach a message)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HTTPSource:
    """A store served by ``curvestore serve`` (or :func:`~curvestore.adapters.http.make_app`).

    Parameters
    ----------
    base_url
        The server's root, e.g. ``http://127.0.0.1:8765`` (endpoints are under ``/v1/``).
    token
        Bearer token for a server started with one.
    timeout
        ``(connect, read)`` seconds per request (read: between two received bytes).
    retries, backoff
        Retries per request and the first backoff delay in seconds (doubled each time,
        with jitter, at most 30 s).
    session
        A ``requests.Session`` to use (not closed by :meth:`close`); one is made otherwise.
    sleep
        The sleep function used between retries (tests inject one).
    max_retry_after
        Longest ``Retry-After`` honoured, in seconds.
    """

    def __init__(self, base_url: str, *, token: str | None = None,
                 timeout: float | tuple[float, float] = (5, 60), retries: int = 5,
                 backoff: float = 0.5, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 max_retry_after: float = 600.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise SyncError(f"an HTTP source URL starts with http:// or https://, got "
                            f"{_redact(base_url)!r}")
        self.base_url = base_url.rstrip("/")
        self._shown = _redact(self.base_url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.max_retry_after = max_retry_after
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._manifest: dict[str, Any] | None = None
        self.requests = 0
        self.retried = 0
        self.bytes_received = 0

    def __repr__(self) -> str:
        return f"HTTPSource({self._shown!r})"

    # -- transport -------------------------------------------------------------------------
    def _delay(self, attempt: int) -> float:
        ceiling = min(_MAX_BACKOFF, self.backoff * 2 ** attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request, retried as the class docstring says; a 2xx response or an error."""
        url = self.base_url + path
        where = f"{method} {self._shown}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            self.requests += 1
            try:
                response = self.session.request(
                    method, url, headers={**self._headers, **kwargs.pop("headers", {})},
                    timeout=self.timeout, **kwargs)
            except _RETRYABLE as exc:
                if last:
                    raise RemoteError(f"{where}: {type(exc).__name__} after "
                                      f"{attempt + 1} attempts") from exc
                self.retried += 1
                self.sleep(self._delay(attempt))
                continue
            status = response.status_code
            if status < 400:
                return response
            message, kind = self._problem(response)
            if (status in (429, 503) or status >= 500) and not last:
                response.close()
                wait = retry_after(response.headers.get("Retry-After")) \
                    if status in (429, 503) else None
                self.retried += 1
                self.sleep(min(wait, self.max_retry_after) if wait is not None
                           else self._delay(attempt))
                continue
            raise RemoteError(f"{where}: HTTP {status}: {message}", status, kind)
        raise AssertionError("unreachable")

    @staticmethod
    def _problem(response: requests.Response) -> tuple[str, str | None]:
        try:
            data = response.json()
            return str(data["error"]), str(data.get("type") or "") or None
        except (ValueError, KeyError, TypeError):
            text = " ".join(response.text.split())[:200]
            return text or response.reason or "no detail", None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        self.bytes_received += len(response.content)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"{method} {self._shown}{path}: the answer is not JSON",
                              response.status_code) from exc

    # -- ChangeSource ----------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The source store's manifest, with the server's ``protocol`` limits."""
        data = self._json("GET", "/v1/manifest")
        if not isinstance(data, dict) or data.get("format") != "curvestore" or \
                "store_id" not in data:
            raise RemoteError(f"{self._shown} did not answer with a curvestore manifest")
        self._manifest = data
        return data

    def _known(self) -> dict[str, Any]:
        return self._manifest if self._manifest is not None else self.manifest()

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """A page of the remote change feed (``limit`` may be lowered by the server)."""
        known = self._known()
        names = [k["name"] for k in known["keys"]]
        params = changes_query(cursor, where, limit, protocol_version(known))
        data = self._json("GET", "/v1/changes", params=params)
        try:
            items = [Change(tuple(item["key"][n] for n in names), int(item["chunk"]),
                            int(item["version"]), bool(item["deleted"]))
                     for item in data["items"]]
            return ChangePage(items, str(data["cursor"]), bool(data["has_more"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"GET {self._shown}/v1/changes: malformed answer ({exc!r})"
                              ) from exc

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        """The current records of ``refs`` (one per distinct ref, in first-seen order)."""
        wanted = list(dict.fromkeys((tuple(k), int(c)) for k, c in refs))
        got: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        protocol = self._known().get("protocol", {})
        limit = int(protocol.get("max_limit", 1000))
        max_bytes = int(protocol.get("max_request_bytes", 1 << 20))
        failures = 0
        while len(got) < len(wanted):
            batch, body = self._fitting([ref for ref in wanted if ref not in got][:limit],
                                        max_bytes)
            before = len(got)
            try:
                self._fetch_once(batch, body, got)
            except (TruncatedStream, *_RETRYABLE) as exc:
                failures += 1
                if failures > self.retries:
                    raise RemoteError(f"POST {self._shown}/v1/chunks: the chunk stream broke "
                                      f"{failures} times ({type(exc).__name__})") from exc
                self.retried += 1
                self.sleep(self._delay(failures - 1))
                continue
            if len(got) == before:
                raise RemoteError(f"POST {self._shown}/v1/chunks: the server sent none of the "
                                  f"{len(batch)} chunks asked")
        return [got[ref] for ref in wanted]

    def _fitting(self, batch: list[tuple[SeriesKey, int]], max_bytes: int
                 ) -> tuple[list[tuple[SeriesKey, int]], bytes]:
        """The longest head of ``batch`` whose request body fits the server's
        ``max_request_bytes``, and that body."""
        while True:
            body = json.dumps({"refs": [[list(key), chunk] for key, chunk in batch]},
                              separators=(",", ":")).encode()
            if len(body) <= max_bytes:
                return batch, body
            if len(batch) == 1:
                raise RemoteError(f"POST {self._shown}/v1/chunks: asking for chunk "
                                  f"{batch[0][1]} of {batch[0][0]} takes {len(body)} bytes, over "
                                  f"the server's max_request_bytes of {max_bytes}")
            batch = batch[:max(1, len(batch) * max_bytes // len(body))]

    def _fetch_once(self, batch: list[tuple[SeriesKey, int]], body: bytes,
                    got: dict[tuple[SeriesKey, int], ChunkRecord]) -> None:
        asked = set(batch)
        reader = FrameReader(f"chunk stream from {self._shown}")
        with self._send("POST", "/v1/chunks", data=body, stream=True,
                        headers={"Content-Type": "application/json"}) as response:
            try:
                for data in response.iter_content(_READ_SIZE):
                    for record in reader.feed(data):
                        ref = (record.key, record.chunk)
                        if ref not in asked:
                            raise RemoteError(f"the server sent chunk {record.chunk} of "
                                              f"{record.key}, which was not asked for")
                        got[ref] = record
            finally:
                self.bytes_received += reader.bytes
        reader.close()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the session if this source made it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> HTTPSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
