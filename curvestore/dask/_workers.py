"""What the tasks of a distributed read or write share on a worker: the stores they open
from their URL (one per URL and process, opened on first use), and the check that Dask is
installed.

The store object never travels: a task carries the URL, and each worker process opens the
store once and keeps it, so a thousand partitions cost one open per worker (one catalog
load, one connection pool) rather than one per task.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import TYPE_CHECKING

from curvestore.errors import BackendNotInstalledError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["dask_dataframe", "forget_stores", "worker_store"]

_lock = threading.Lock()
_stores: dict[tuple[str, bool], Store] = {}


def dask_dataframe(what: str) -> ModuleType:
    """``dask.dataframe``, or :class:`BackendNotInstalledError` naming the ``dask`` extra."""
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise BackendNotInstalledError(what, "dask", str(exc)) from exc
    return dd


def worker_store(url: str, *, read_only: bool) -> Store:
    """The store at ``url``, opened once per process (worker threads share it: a Store
    serves concurrent calls as its backend does)."""
    with _lock:
        store = _stores.get((url, read_only))
        if store is None:
            from curvestore.opening import open_store

            store = _stores[(url, read_only)] = open_store(url, read_only=read_only)
        return store


def forget_stores() -> None:
    """Close and forget the stores this process opened (tests, or a worker told to)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
