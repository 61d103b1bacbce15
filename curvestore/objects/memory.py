"""An in-process object store: the reference model of the contract, for tests and examples.

One lock guards a dict, so every operation is atomic and linearizable among the threads of
the process. Nothing is shared with other processes or survives the process. Versions come
from a counter of the store, so every write gets a new one (``unique_versions``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from curvestore.objects.base import ObjectInfo, ObjectStore

__all__ = ["MemoryObjectStore"]


class MemoryObjectStore(ObjectStore):
    """Objects in a dict of this process.

    Parameters
    ----------
    name : str
        Shown in the repr only, to tell stores apart.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryObjectStore(name={self.name!r}, objects={len(self._objects)})"

    def _new_version(self) -> str:
        return f"m{next(self._counter)}"

    def _get(self, key: str) -> tuple[bytes, str] | None:
        return self._objects.get(key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        found = self._objects.get(key)
        if found is None:
            return None
        data = found[0]
        return data[start:] if length is None else data[start:start + length]

    def _get_suffix(self, key: str, length: int) -> bytes | None:
        found = self._objects.get(key)
        if found is None:
            return None
        data = found[0]
        return data[len(data) - min(length, len(data)):]

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, len(d), v) for k, (d, v) in self._objects.items()
                           if k.startswith(prefix) and (start_after is None or k > start_after))
        return (ObjectInfo(k, size, v) for k, size, v in items)

    def _put(self, key: str, data: bytes) -> str:
        with self._lock:
            version = self._new_version()
            self._objects[key] = (data, version)
        return version

    def _put_if_absent(self, key: str, data: bytes) -> str:
        with self._lock:
            if key in self._objects:
                raise self._conflict(key, "exists already")
            version = self._new_version()
            self._objects[key] = (data, version)
        return version

    def _put_if_match(self, key: str, data: bytes, version: str) -> str:
        with self._lock:
            current = self._objects.get(key)
            if current is None:
                raise self._conflict(key, "does not exist (removed by a concurrent writer?)")
            if current[1] != version:
                raise self._conflict(key, "a concurrent writer replaced it")
            new = self._new_version()
            self._objects[key] = (data, new)
        return new

    def _delete(self, key: str, if_match: str | None) -> None:
        with self._lock:
            current = self._objects.get(key)
            if if_match is not None:
                if current is None:
                    raise self._conflict(key, "does not exist (removed by a concurrent writer?)")
                if current[1] != if_match:
                    raise self._conflict(key, "a concurrent writer replaced it")
            self._objects.pop(key, None)
