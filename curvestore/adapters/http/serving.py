"""The sync app under waitress, with limits that hold before a request body is read.

waitress reads a request's whole body before it calls the WSGI app (in memory up to
``inbuf_overflow``, then in a temporary file, up to ``max_request_body_size``, 1 GiB by
default, on each of ``connection_limit`` connections), so an app cannot refuse a body by
itself: by the time it answers 401 or 413, the body has been received and spooled.
:func:`create_server` therefore:

* installs a request parser that, as soon as a request's headers are in, asks the app's
  ``screen(environ)`` (:meth:`curvestore.adapters.http.server.SyncApp.screen`: token, route,
  method, Content-Length); a refused request is answered at once with the app's JSON error
  and the connection is closed, its body never read (what the same read brought after the
  headers is dropped, nothing more is read);
* sets waitress's own limits from the app's ``max_request_bytes``: ``max_request_body_size``
  (a backstop for what the screen cannot see), ``inbuf_overflow`` above it (an accepted body
  stays in memory, never in a temporary file), a small ``max_request_header_size`` and a
  ``connection_limit``.

For other apps (no ``screen``), only the header and connection limits change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from waitress import create_server as _waitress_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.utilities import Error, RequestEntityTooLarge

from curvestore.adapters.http.server import HTTPProblem, WSGIApp, error_response

__all__ = ["DEFAULT_CONNECTION_LIMIT", "DEFAULT_HEADER_BYTES", "create_server",
           "serve_in_thread"]

DEFAULT_CONNECTION_LIMIT = 50
"""Connections served at once (waitress's default is 100)."""
DEFAULT_HEADER_BYTES = 32 << 10
"""Longest request line plus headers (waitress's default is 256 KiB); a sync request's are
well under 2 KiB."""


class _Refusal(Error):  # type: ignore[misc]  # waitress is untyped
    """A screened-out request, answered by waitress's error task with the app's JSON."""

    def __init__(self, problem: HTTPProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.code = problem.status

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        return error_response(self.problem)


class _ScreeningParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser, asking ``screen`` about each request once its headers are in."""

    def __init__(self, adj: Any, screen: Any, remote_addr: str) -> None:
        super().__init__(adj)
        self._screen = screen
        self._remote_addr = remote_addr

    def received(self, data: bytes) -> int:
        had_headers = self.headers_finished
        consumed: int = super().received(data)
        if had_headers or not self.headers_finished or self.empty:
            return consumed
        error = vars(self).get("error")  # set on the instance only when waitress failed
        if error is not None and not isinstance(error, RequestEntityTooLarge):
            return consumed  # unparseable headers: waitress answers 400 itself
        try:
            self._screen(self._environ())
        except HTTPProblem as problem:
            self.error = _Refusal(problem)
            self.completed = True
            self.expect_continue = False  # no "100 Continue": the body is not wanted
            self.body_rcv = None
            return len(data)  # the rest of this read is the unwanted body: dropped
        return consumed

    def _environ(self) -> Mapping[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command, "PATH_INFO": self.path,
            "QUERY_STRING": self.query, "REMOTE_ADDR": self._remote_addr,
        }
        for name, value in self.headers.items():
            environ[name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"] = value
        if self.chunked:  # waitress removed the header; the screen must still see it
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        return environ


def _screening_channel(screen: Any) -> type:
    class ScreeningChannel(HTTPChannel):  # type: ignore[misc]
        def parser_class(self, adj: Any) -> _ScreeningParser:
            # waitress calls self.parser_class(self.adj) for each request on this connection
            addr = self.addr[0] if isinstance(self.addr, tuple) and self.addr else "-"
            return _ScreeningParser(adj, screen, str(addr))

    return ScreeningChannel


def _find(app: Any, name: str) -> Any:
    """Attribute ``name`` of ``app`` or of the apps it wraps (``.app``), else None."""
    for _ in range(8):
        if app is None:
            return None
        if hasattr(app, name):
            return getattr(app, name)
        app = getattr(app, "app", None)
    return None


def create_server(app: Any, *, host: str = "127.0.0.1", port: int = 8765, threads: int = 4,
                  connection_limit: int = DEFAULT_CONNECTION_LIMIT,
                  max_request_header_size: int = DEFAULT_HEADER_BYTES,
                  **adjustments: Any) -> Any:
    """A waitress server for ``app`` (not started: call ``run()``), with the screening and
    limits of the module docstring. ``adjustments`` go to waitress as they are (they win
    over the ones set here). ``app`` may be an :class:`~curvestore.adapters.http.server.AccessLog`
    around a :class:`~curvestore.adapters.http.server.SyncApp`: the log's ``screen`` logs
    the refusals."""
    settings: dict[str, Any] = {
        "host": host, "port": port, "threads": threads, "ident": "curvestore",
        "connection_limit": connection_limit, "max_request_header_size": max_request_header_size,
    }
    body_limit = _find(app, "max_request_bytes")
    if body_limit is not None:
        # waitress refuses a body of max_request_body_size bytes or more
        settings["max_request_body_size"] = int(body_limit) + 1
        settings["inbuf_overflow"] = int(body_limit) + 1
    settings.update(adjustments)
    sockets: dict[int, Any] = {}
    server = _waitress_server(app, map=sockets, **settings)
    screen = getattr(app, "screen", None)
    if screen is not None:
        channel = _screening_channel(screen)
        for listener in list(sockets.values()):
            if isinstance(listener, BaseWSGIServer):
                listener.channel_class = channel
    return server


@contextmanager
def serve_in_thread(app: WSGIApp, *, host: str = "127.0.0.1", threads: int = 4,
                    **adjustments: Any) -> Iterator[str]:
    """Run ``app`` under waitress (with :func:`create_server` and its limits) on a free
    port of ``host`` in a background thread; yields its base URL and stops the server on
    exit. For tests and embedding (needs waitress)."""
    server = create_server(app, host=host, port=0, threads=threads, **adjustments)
    thread = threading.Thread(target=server.run, name="curvestore-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        def stop() -> None:  # runs in the loop's thread; an empty map ends the loop
            for channel in list(server._map.values()):
                channel.close()

        try:
            server.trigger.pull_trigger(stop)
        except OSError:
            if thread.is_alive():
                raise
            # the loop already ended (and closed its trigger): nothing left to stop
        thread.join(timeout=60)
        server.task_dispatcher.shutdown()
        if thread.is_alive():
            raise RuntimeError("the HTTP server thread did not stop within 60 s")
