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

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from curvestore.core.records import Change
    from curvestore.core.store import Store
    from curvestore.core.sync import ReplicationReport
    from curvestore.registry import Registrar

__all__ = ["hookimpl", "hookspec", "PROJECT"]

PROJECT = "curvestore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Registrar) -> None:
    """Register storage backends by URL scheme. All implementations are called.

    Parameters
    ----------
    register
        Call ``register.backend(schemes=("sqlite",), target="pkg.module:Class", extra=None)``
        once per backend class. ``target`` is a dotted path imported only when a URL with one
        of the schemes is opened; ``extra`` names the pip extra that provides the driver and
        appears in the error raised when the import fails. A scheme registered twice raises
        unless ``clobber=True`` is passed.
    """


@hookspec
def register_codecs(register: Registrar) -> None:
    """Register codecs by id. All implementations are called.

    Parameters
    ----------
    register
        Call ``register.codec(codec_id="zlib", target="pkg.module:Class", extra=None)`` once
        per codec. The class must implement :class:`curvestore.core.codec.Codec` and is
        imported on first use; an id registered twice raises unless ``clobber=True``.
    """


@hookspec
def chunks_committed(store: Store, changes: list[Change]) -> None:
    """Observe a committed write, e.g. to export metrics or trigger archival.

    Called after every successful write or delete. All implementations are called; their
    exceptions are logged and swallowed.

    Parameters
    ----------
    store
        The :class:`curvestore.Store` written to.
    changes
        The :class:`curvestore.core.records.Change` entries committed: series key tuple,
        chunk index, new version and tombstone flag, in commit order.
    """


@hookspec
def sync_pulled(target: Store, report: ReplicationReport) -> None:
    """Observe a replication run that committed at least one page.

    Called once per :func:`curvestore.replicate` call, after its last page. All
    implementations are called; exceptions are logged and swallowed.

    Parameters
    ----------
    target
        The :class:`curvestore.Store` that received the changes.
    report
        The :class:`curvestore.core.sync.ReplicationReport`: pages, changes, chunks,
        tombstones and payload bytes copied, and the cursor saved.
    """
