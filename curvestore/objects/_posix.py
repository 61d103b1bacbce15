"""POSIX helpers of the file object store: lock stripes, positional reads, versions."""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CLOEXEC", "STRIPES", "Stripes", "fcntl", "file_version", "read_at"]

STRIPES = 64
CLOEXEC = getattr(os, "OCLOEXEC", 0)


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
