"""The object-store layer under the log-structured engine: one small interface
(:class:`ObjectStore`, whose module states the contract) and its adapters, memory, local files
and S3. Adapters are imported on first use (the S3 one needs boto3 only when a store is built).

>>> from curvestore.objects import MemoryObjectStore
>>> store = MemoryObjectStore()
>>> version = store.put_if_absent("log/00000000000000000001.json", b"{}")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curvestore.objects.base import ObjectInfo, ObjectStore, validate_key, validate_prefix

if TYPE_CHECKING:
    from curvestore.objects.files import FileObjectStore
    from curvestore.objects.memory import MemoryObjectStore
    from curvestore.objects.s3 import S3ObjectStore

__all__ = ["FileObjectStore", "MemoryObjectStore", "ObjectInfo", "ObjectStore",
           "S3ObjectStore", "validate_key", "validate_prefix"]

_LAZY = {
    "FileObjectStore": "curvestore.objects.files",
    "MemoryObjectStore": "curvestore.objects.memory",
    "S3ObjectStore": "curvestore.objects.s3",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curvestore.objects' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
