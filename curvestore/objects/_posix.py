"""POSIX helpers of the file object store: lock stripes, positional reads, versions."""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CLOEXEC", "STRIPES", "Stripes", "fcntl", "file_version", "map_at", "read_at",
           "write_all"]

STRIPES = 64
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def file_version(st: os.stat_result) -> str:
    return f"{st.st_ino:x}.{st.st_mtime_ns:x}.{st.st_size:x}"


def read_at(fd: int, length: int, offset: int) -> bytes:
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        length -= len(part)
        offset += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def map_at(fd: int, length: int, offset: int) -> memoryview:
    """A read-only view of ``length`` bytes at ``offset`` of the file, mapped (not copied):
    the pages are the page cache's, populated up front where the kernel can (Linux). The
    view stays valid after the file is renamed over or unlinked (the mapping holds it)."""
    base = offset - offset % mmap.ALLOCATIONGRANULARITY
    mapped = mmap.mmap(fd, length + offset - base, flags=mmap.MAP_SHARED | _POPULATE,
                       prot=mmap.PROT_READ, offset=base)
    return memoryview(mapped)[offset - base:]


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
#: Buffers per ``writev`` (Linux's IOV_MAX is 1024), and bytes gathered at most before one.
_IOV = 1024
_BATCH_BYTES = 4 << 20


def write_all(fd: int, parts: Iterable[Any], *, sync_every: int = 0) -> None:
    """Write ``parts`` (bytes-like) end to end at the file's position: many at once with
    ``writev``, so thousands of small parts cost a few system calls and no joined copy.

    With ``sync_every``, the data is flushed to disk (``fdatasync``) each time that many
    bytes were written since the last flush: a writer whose parts come slowly then has the
    disk work done while it waits for them, instead of all in the final ``fsync``."""
    batch: list[Any] = []
    pending = unsynced = 0
    for part in parts:
        view = part if type(part) is bytes else memoryview(part).cast("B")
        size = len(view)
        if size:
            batch.append(view)
            pending += size
        if len(batch) == _IOV or pending >= _BATCH_BYTES:  # big parts go as they come
            _writev_all(fd, batch)
            batch, unsynced, pending = [], unsynced + pending, 0
            if sync_every and unsynced >= sync_every:
                _fdatasync(fd)
                unsynced = 0
    if batch:
        _writev_all(fd, batch)


_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _writev_all(fd: int, views: list[Any]) -> None:
    written = os.writev(fd, views)
    if written == sum(map(len, views)):
        return
    # a short write (a signal, or more than the kernel takes at once): write the rest
    for view in views:
        if written >= len(view):
            written -= len(view)
            continue
        rest = memoryview(view)[written:]
        written = 0
        while rest:
            rest = rest[os.write(fd, rest):]


class Stripes:
    """Lock stripes: a thread lock and an ``flock``-ed descriptor each, reopened after fork
    (a forked child shares its parent's open file descriptions, hence its flocks)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._guard = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._fds: dict[int, int] = {}
        self._threads = [threading.Lock() for _ in range(STRIPES)]

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        stripe = zlib.crc32(key.encode("utf-8")) % STRIPES
        with self._guard:
            if os.getpid() != self._pid:
                self._reset()
            fd = self._fds.get(stripe)
            if fd is None:
                path = os.path.join(self._directory, f"stripe-{stripe:02d}.lock")
                fd = self._fds[stripe] = os.open(path, os.O_RDWR | os.O_CREAT | CLOEXEC, 0o644)
            thread_lock = self._threads[stripe]
        with thread_lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._guard:
            if os.getpid() == self._pid:
                for fd in self._fds.values():
                    os.close(fd)
            self._fds = {}
