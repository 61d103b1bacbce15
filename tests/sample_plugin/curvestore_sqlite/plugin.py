"""Entry point module: registers the backend and the codec by dotted path."""

from __future__ import annotations

from curvestore.hookspecs import hookimpl


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register.backend(("sqlite",), "curvestore_sqlite.backend:SQLiteBackend")


@hookimpl
def register_codecs(register):  # type: ignore[no-untyped-def]
    register.codec("zlib", "curvestore_sqlite.codec:ZlibCodec")
