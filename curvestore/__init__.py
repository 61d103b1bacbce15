"""curvestore: a store for dense time series (load curves) with pluggable backends and codecs.

>>> import curvestore
>>> store = curvestore.create_store("memory://doc", keys={"site": str}, freq="1h", tz="UTC")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curvestore import errors
from curvestore._version import __version__
from curvestore.errors import *  # noqa: F403  (the error tree is public API)

__all__ = ["Store", "__version__", "create_store", "errors", "open_store", "replicate",
           *errors.__all__]

if TYPE_CHECKING:
    from curvestore.core.store import Store
    from curvestore.core.sync import replicate
    from curvestore.opening import create_store, open_store


def __getattr__(name: str) -> Any:
    # pandas and numpy load on first use, so `import curvestore` stays cheap for the CLI.
    if name in ("create_store", "open_store"):
        from curvestore import opening as _open

        return getattr(_open, name)
    if name == "replicate":
        from curvestore.core.sync import replicate

        return replicate
    if name == "Store":
        from curvestore.core.store import Store

        return Store
    raise AttributeError(f"module 'curvestore' has no attribute {name!r}")
