"""Registers the built-in backends, exactly as a third-party plugin would."""

from __future__ import annotations

from curvestore.hookspecs import hookimpl
from curvestore.registry import Registrar


@hookimpl
def register_backends(register: Registrar) -> None:
    register.backend(("memory",), "curvestore.backends.memory:MemoryBackend")
    register.backend(("file",), "curvestore.engine.backend:EngineBackend")
    register.backend(("file-shards",), "curvestore.backends.filesystem:FileBackend")
    register.backend(("engine+memory",), "curvestore.engine.backend:EngineBackend")
    register.backend(("tiered",), "curvestore.backends.tiered:TieredBackend")
    register.backend(("postgresql", "postgres"), "curvestore.backends.postgres:PostgresBackend",
                     extra="postgres")
    register.backend(("s3",), "curvestore.engine.s3:EngineS3Backend", extra="s3")
    register.backend(("s3-shards",), "curvestore.backends.s3:S3Backend", extra="s3")
