"""Store maintenance that backends opt into: compaction (:class:`~curvestore.core.capabilities.
Compacts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.capabilities import Compacts
from curvestore.core.grid import to_utc_ns
from curvestore.errors import ConfigurationError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["compact"]


def compact(store: Store, filter: Mapping[str, Any] | None = None, *, before: Any = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """:meth:`Store.compact`: rewrite what daily appends left in pieces (log-structured
    backends: fragments appended beside chunks) into whole chunks, and remove the data
    nothing refers to any more. Values, versions and the change feed are unchanged; readers
    and writers run on meanwhile. ``before``: only chunks whose period ended by then (today's
    date: the closed periods); ``progress(done, total)`` is called with chunks. Returns what
    was done (chunks, rows, bytes read, written and removed, seconds); ConfigurationError for
    a backend that stores every chunk whole."""
    store.check_writable()
    backend = store.backend
    if not (store.capabilities.compacts and isinstance(backend, Compacts)):
        raise ConfigurationError(f"{backend!r} stores every chunk whole: it has nothing to "
                                 "compact")
    where = store.schema.filter(filter)
    hi = None
    ns = to_utc_ns(before, store.config.tz, name="before")
    if ns is not None:
        position = store.grid.position_at_or_after(ns)
        hi = int(store.grid.chunk_of_positions(np.array([position]))[0]) - 1  # ended by then
    return backend.compact(where, None, hi, progress=progress)
