"""The sync protocol over HTTP: a framework-free WSGI server and a requests-based client.

>>> from curvestore.adapters.http import HTTPSource, make_app   # doctest: +SKIP
>>> curvestore.replicate(HTTPSource("http://127.0.0.1:8765"), target)  # doctest: +SKIP

The server needs nothing beyond curvestore (run it under any WSGI server; ``curvestore serve``
uses waitress); the client needs ``requests``. Install both with
``pip install "curvestore[http]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["HTTPSource", "RemoteError", "make_app"]

if TYPE_CHECKING:
    from curvestore.adapters.http.client import HTTPSource, RemoteError
    from curvestore.adapters.http.server import make_app


def __getattr__(name: str) -> Any:
    # requests is imported only when the client is asked for, so a server needs only the stdlib.
    if name in ("HTTPSource", "RemoteError"):
        try:
            from curvestore.adapters.http import client
        except ImportError as exc:
            from curvestore.errors import BackendNotInstalledError

            raise BackendNotInstalledError("the HTTP sync client", "http", str(exc)) from exc
        return getattr(client, name)
    if name == "make_app":
        from curvestore.adapters.http.server import make_app

        return make_app
    raise AttributeError(f"module 'curvestore.adapters.http' has no attribute {name!r}")
