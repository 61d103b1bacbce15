"""Hook specifications: what a curvestore plugin can do.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, published under
the entry-point group ``curvestore``::

    [project.entry-points.curvestore]
    mybackend = "mypackage.curvestore_plugin"

Registrar hooks receive a ``register`` object and call it; they must do no I/O and import no
driver, so that listing plugins stays instant and a missing driver only matters when used.
Observer hooks are called after the fact; their return values are ignored and an exception in
one is logged, never propagated into the write or sync that triggered it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from curvestore.registry import Registrar

__all__ = ["hookimpl", "hookspec", "PROJECT"]

PROJECT = "curvestore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Registrar) -> None:
    """Register storage backends by URL scheme.

    Call ``register.backend(schemes=("sqlite",), target="pkg.module:Class", extra=None)`` once
    per backend class. ``target`` is a dotted path imported only when a URL with one of the
    schemes is opened; ``extra`` names the pip extra (or package) that provides its driver and
    appears in the error raised when the import fails. All implementations are called.
    """


@hookspec
def register_codecs(register: Registrar) -> None:
    """Register codecs by id.

    Call ``register.codec(codec_id="zlib", target="pkg.module:Class", extra=None)`` once per
    codec. The class must implement :class:`curvestore.codecs.base.Codec` and is imported on
    first use. All implementations are called.
    """


@hookspec
def chunks_committed(store: Any, changes: list[Any]) -> None:
    """Observe a committed write.

    Called after every successful write or delete with the :class:`curvestore.Store` and the
    list of :class:`curvestore.core.records.Change` it committed (series key, chunk, version,
    tombstone flag), e.g. to export metrics or trigger archival. All implementations are
    called; exceptions are logged and swallowed.
    """
