"""Prometheus metrics for the sync server: ``GET /metrics`` beside the app's endpoints.

:func:`instrument` wraps a :class:`~curvestore.adapters.http.server.SyncApp` (needs
``prometheus-client``: ``pip install "curvestore[metrics]"``). Each wrapped app has its own
``CollectorRegistry`` (never the process-wide one), so two servers in one process keep
their numbers apart. Exposed:

``curvestore_http_requests_total{route,status}``
    Requests answered, requests refused before their body (401, 404, 413...) included.
``curvestore_http_request_duration_seconds{route}``
    Histogram of the time from the call to the last byte of the response handed to the
    server (requests refused before their body are not timed: they cost no app time).
``curvestore_http_response_bytes_total{route}``
    Response body bytes sent.
``curvestore_http_errors_total{route,kind}``
    Server-side failures: ``internal`` (a 500) and ``aborted`` (a chunk stream that broke
    after its status was sent; the client retries).
``curvestore_feed_newest_change_timestamp_seconds`` and ``curvestore_feed_lag_seconds``
    Commit time (Unix seconds) of the newest change in the store's feed, and the seconds from
    it to the scrape. On a replica the commit time is the origin's (replicated chunks keep
    it): the lag is then how old the newest data is at its source. NaN when the feed is
    empty or still being read (see below).
``process_*``
    The serving process (CPU, memory, open files), on platforms prometheus-client supports.

``route`` is the route template (``/v1/manifest``, ``/v1/changes``, ``/v1/chunks``,
``/metrics``) or ``other``: never a raw path or a query value, so the label's values are few
and hold no key values (which may be sensitive) and no tokens.

The feed lag is computed when scraped, from where the previous scrape stopped: the server
keeps a cursor at the end of the feed and pages on from it (nothing new: one feed read),
then reads the newest chunk's metadata once. The first scrape reads the whole feed; it
stops after ``catch_up_seconds`` and reports NaN until a later scrape reaches the end, so a
slow first read never answers a scrape late or a stale lag.

Authentication: ``/metrics`` needs the app's bearer token unless ``public=True``. Request
rates, sizes and the feed's last commit time tell about the data and its users, so the safe
default is the API's own protection; Prometheus sends a token with ``authorization:
{type: Bearer, credentials_file: ...}`` in its scrape config. Serve it ``public`` only where
the port is reachable by trusted scrapers alone.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from curvestore.adapters.http.server import HTTPProblem, StartResponse, error_response
from curvestore.errors import InvalidCursorError

if TYPE_CHECKING:
    from curvestore.adapters.http.server import SyncApp
    from curvestore.core.records import Change
    from curvestore.core.store import Store

__all__ = ["METRICS_PATH", "FeedLag", "MetricsApp", "instrument"]

logger = logging.getLogger("curvestore.http")

METRICS_PATH = "/metrics"
OTHER = "other"
#: latency buckets (seconds): from a cached manifest to a chunk batch of tens of MB
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0, 60.0)


class FeedLag:
    """A collector of the feed's newest commit time and lag, computed at scrape time."""

    def __init__(self, store: Store, *, page: int = 5000, catch_up_seconds: float = 2.0) -> None:
        self.store = store
        self.page = page
        self.catch_up_seconds = catch_up_seconds
        self._lock = threading.Lock()
        self._cursor: str | None = None
        self._newest: Change | None = None
        self._newest_at: float | None = None
        self._caught_up = False

    def newest_commit_time(self) -> float | None:
        """Unix seconds of the newest change's commit, or None (empty, or not read yet)."""
        with self._lock:
            self._advance()
            if not self._caught_up or self._newest is None:
                return None
            if self._newest_at is None:
                newest = self._newest
                (record,) = self.store.backend.fetch([(newest.key, newest.chunk)])
                # a tombstone of an absent chunk has no time: when it was first seen instead
                at = record.meta.updated_at
                self._newest_at = at / 1e9 if at else time.time()
            return self._newest_at

    def _advance(self) -> None:
        deadline = time.monotonic() + self.catch_up_seconds
        while True:
            try:
                page = self.store.raw_changes(self._cursor, None, self.page)
            except InvalidCursorError:  # the store was restored from an older copy
                self._cursor, self._newest, self._newest_at = None, None, None
                self._caught_up = False
                raise
            if page.items:
                self._newest, self._newest_at = page.items[-1], None
            self._cursor = page.cursor
            if not page.has_more:
                self._caught_up = True
                return
            if time.monotonic() > deadline:
                return

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families(None)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            newest = self.newest_commit_time()
        except Exception:  # a scrape must still answer: the lag is then unknown
            logger.exception("cannot read the change feed for curvestore_feed_lag_seconds")
            newest = None
        return self._families(newest)

    @staticmethod
    def _families(newest: float | None) -> list[GaugeMetricFamily]:
        nan = math.nan
        return [
            GaugeMetricFamily("curvestore_feed_newest_change_timestamp_seconds",
                              "Commit time of the newest change in the store's feed (Unix "
                              "seconds; NaN: none, or not read yet)",
                              value=nan if newest is None else newest),
            GaugeMetricFamily("curvestore_feed_lag_seconds",
                              "Seconds from the newest change's commit to this scrape (NaN: "
                              "no change, or the feed not read yet)",
                              value=nan if newest is None else max(0.0, time.time() - newest)),
        ]


class MetricsApp:
    """WSGI middleware counting the wrapped app's requests and answering ``GET /metrics``;
    made by :func:`instrument`."""

    def __init__(self, app: SyncApp, *, public: bool = False,
                 registry: CollectorRegistry | None = None, process: bool = True) -> None:
        self.app = app
        self.public = public
        self.registry = registry if registry is not None else CollectorRegistry()
        self.routes = frozenset((*app.routes, METRICS_PATH))
        self.requests = Counter("curvestore_http_requests", "Requests answered, by route and "
                                "status", ("route", "status"), registry=self.registry)
        self.latency = Histogram("curvestore_http_request_duration_seconds",
                                 "Time from the call to the response's last byte",
                                 ("route",), buckets=BUCKETS, registry=self.registry)
        self.sent = Counter("curvestore_http_response_bytes", "Response body bytes sent",
                            ("route",), registry=self.registry)
        self.errors = Counter("curvestore_http_errors", "Server-side failures: internal (500) "
                              "or aborted (a stream broken after its status)",
                              ("route", "kind"), registry=self.registry)
        self.feed = FeedLag(app.store)
        self.registry.register(self.feed)
        if process:
            ProcessCollector(registry=self.registry)

    # -- routing ---------------------------------------------------------------------------
    def route(self, environ: Mapping[str, Any]) -> str:
        """The route label of a request: its route template, else ``other``."""
        path = environ.get("PATH_INFO", "") or "/"
        path = path.rstrip("/") if path != "/" else path
        return path if path in self.routes else OTHER

    def _check_scrape(self, environ: Mapping[str, Any]) -> None:
        if not self.public:
            self.app.authorize(environ)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            raise HTTPProblem(405, f"{METRICS_PATH} accepts GET only", headers=[("Allow", "GET")])
        if str(environ.get("CONTENT_LENGTH") or "0").strip() not in ("", "0") or \
                "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise HTTPProblem(413, f"{METRICS_PATH} accepts no request body")

    def screen(self, environ: Mapping[str, Any]) -> None:
        """The app's screen (:meth:`SyncApp.screen`), with ``/metrics`` let through on its
        own terms; refusals are counted."""
        route = self.route(environ)
        try:
            if route == METRICS_PATH:
                self._check_scrape(environ)
            else:
                self.app.screen(environ)
        except HTTPProblem as problem:
            self.requests.labels(route, str(problem.status)).inc()
            raise

    def loggable_target(self, environ: Mapping[str, Any]) -> str:
        if self.route(environ) == METRICS_PATH:
            return METRICS_PATH
        return self.app.loggable_target(environ)

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        began = time.perf_counter()
        route = self.route(environ)
        status: list[str] = []

        def recording_start(code: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            status[:] = [code.split(" ", 1)[0]]
            return start_response(code, headers, *exc)

        if route == METRICS_PATH:
            body: Iterable[bytes] = self._scrape(environ, recording_start)
        else:
            body = self.app(environ, recording_start)
        return self._measured(route, body, status, began)

    def _scrape(self, environ: Mapping[str, Any], start_response: StartResponse
                ) -> list[bytes]:
        try:
            self._check_scrape(environ)  # again: under a server that does not screen
        except HTTPProblem as problem:
            code, headers, data = error_response(problem)
            start_response(code, headers)
            return [data]
        encode, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        data = encode(self.registry)
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(data))),
                                  ("Cache-Control", "no-store")])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def _measured(self, route: str, body: Iterable[bytes], status: list[str], began: float
                  ) -> Iterator[bytes]:
        sent = 0
        aborted = False
        try:
            for part in body:
                sent += len(part)
                yield part
        except Exception:
            aborted = True
            raise
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            code = status[0] if status else "500"
            self.requests.labels(route, code).inc()
            self.latency.labels(route).observe(time.perf_counter() - began)
            self.sent.labels(route).inc(sent)
            if aborted:
                self.errors.labels(route, "aborted").inc()
            elif code == "500":
                self.errors.labels(route, "internal").inc()


def instrument(app: SyncApp, *, public: bool = False,
               registry: CollectorRegistry | None = None) -> MetricsApp:
    """``app`` with Prometheus metrics at ``GET /metrics`` (see the module docstring).

    Parameters
    ----------
    app
        The sync app (:func:`~curvestore.adapters.http.server.make_app`).
    public
        Serve ``/metrics`` without the app's bearer token (default: the same token as the
        API).
    registry
        Where the metrics are registered (default: a registry of this app's own).
    """
    return MetricsApp(app, public=public, registry=registry)
