"""Objects as plain files under a root directory (POSIX systems: Linux, macOS, BSDs).

Layout: the object ``a/b/c`` is the file ``<root>/a/b/c`` holding exactly the object's bytes,
so a root can be copied to or from a bucket with any sync tool. ``<root>/.curvestore/`` holds
``tmp/`` (files being written) and ``locks/`` (64 lock stripes); keys under ``.curvestore/``
are refused everywhere for that reason. Directories are created as keys need them and removed
again when a delete empties them. A file store cannot hold both an object ``a`` and an object
``a/b`` (InvalidKeyError for the second; S3 can).

How the contract (:mod:`curvestore.objects.base`) is met:

* **Atomic replace.** Every write goes to a new file in ``tmp/`` (same file system), is written
  whole, fsynced (``fsync=True``, the default), then ``rename``\\ d over the key's path:
  readers open either the old file or the new one, and files are never modified once in
  place. A reader takes no lock: it opens the path and reads through that one descriptor, so
  a concurrent replace cannot tear what it reads, and the version it returns comes from the
  same descriptor's ``fstat``.
* **put_if_absent** is ``link(temp, path)``, which the kernel refuses when the path exists:
  atomic against every other process without any lock (also on NFS).
* **put_if_match, put and delete** take the key's lock stripe (``flock``, after a thread lock
  of this store, since flock does not exclude threads sharing a descriptor), compare the
  current file's version under it, then rename or unlink. Every replace and delete holds the
  stripe, so the compare and the swap are one step for every writer using this module.
* **Durability.** With ``fsync=True`` a write returns after the file and its directory (and
  any directory it created) are fsynced; with ``fsync=False`` writes stay atomic for
  concurrent processes and across a process crash, but an OS crash or power loss may lose
  recent writes or, on file systems that do not order data before renames, leave an empty
  file.
* **Versions** are ``<inode>.<mtime_ns>.<size>`` in hexadecimal. Inode numbers are reused once
  a file is freed, and kernel timestamps are coarse (a clock tick), so the kernel's own mtime
  could repeat ``(inode, mtime, size)`` within a few milliseconds (A, then B, then C reusing
  A's inode: an ABA). This store therefore sets each new file's mtime itself, under the stripe
  lock, to ``max(now, current mtime + 1 step)`` with a nanosecond clock: a key's mtimes
  strictly increase across replaces, and a file created after a delete gets a later time than
  the deleted one had (the wall clock would have to step back by the time between the two
  writes for a collision, *and* the inode and size repeat). The step is the file system's
  timestamp resolution, probed once per root; file systems coarser than 1 µs (FAT, HFS+,
  ext4 with 128-byte inodes) are refused with ConfigurationError. Versions need no side file,
  and a listing gets them from the ``stat`` it does anyway. Tools that rewrite files in place
  or ``touch`` them are not writers of this module and break the guarantees.
* **Temp files** carry an ``flock`` held by their writer until it is done with them.
  :meth:`FileObjectStore.sweep_temporaries` (run when a store is opened, for files older than
  ``temp_grace``) removes only temp files whose lock it can take, that is whose writer died:
  never a live writer's, however slow.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from curvestore.errors import ConfigurationError, InvalidKeyError
from curvestore.objects._posix import (
    CLOEXEC,
    Stripes,
    fcntl,
    file_version,
    map_at,
    read_at,
    write_all,
)
from curvestore.objects.base import RESERVED_PREFIX, Data, ObjectInfo, ObjectStore

__all__ = ["FileObjectStore"]

_TEMP_SUFFIX = ".tmp"
#: Bytes of a streamed write (``put_parts``) flushed to disk at a time while it goes on.
_SYNC_EVERY = 8 << 20
#: Ranges from this size on are mapped, not read, by ``get_ranges(..., views=True)``: below
#: it a read's copy costs less than setting up a mapping.
_MAP_AT_LEAST = 1 << 16
_MAX_RESOLUTION_NS = 1000
_PROBE_NS = 1_700_000_000_123_456_789
#: root -> timestamp step (ns) of its file system, probed once per process.
_STEPS: dict[str, int] = {}


def _span(start: int, length: int | None, size: int) -> tuple[int, int]:
    """(offset, length) of the range ``start``, ``length`` of an object of ``size`` bytes."""
    end = size if length is None else min(size, start + length)
    return start, end - start


def _map_or_read(fd: int, length: int, offset: int) -> bytes | memoryview:
    return map_at(fd, length, offset) if length >= _MAP_AT_LEAST else read_at(fd, length, offset)


class FileObjectStore(ObjectStore):
    """Objects as files under ``root``; see :mod:`curvestore.objects.files`.

    Parameters
    ----------
    root : str or Path
        The directory holding the objects; created (with parents) when missing.
    fsync : bool
        Make every write durable before it returns (default True).
    temp_grace : float
        Seconds after which an unlocked temp file (its writer died) is removed when a store
        is opened; see :meth:`sweep_temporaries`.

    Raises
    ------
    ConfigurationError
        When ``root`` cannot be created or used, its file system's timestamps are coarser
        than 1 µs, or the platform has no ``flock``.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True,
                 temp_grace: float = 3600.0) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise ConfigurationError("the file object store needs POSIX flock (not Windows)")
        self.root = os.path.abspath(os.fspath(root))
        self.fsync = bool(fsync)
        self._tmp = os.path.join(self.root, RESERVED_PREFIX, "tmp")
        locks = os.path.join(self.root, RESERVED_PREFIX, "locks")
        try:
            os.makedirs(self._tmp, exist_ok=True)
            os.makedirs(locks, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot use {self.root!r} as an object store root: "
                                     f"{exc.strerror}") from exc
        self._stripes = Stripes(locks)
        self._step = self._timestamp_step()
        self.sweep_temporaries(older_than=temp_grace)

    def __repr__(self) -> str:
        return f"FileObjectStore(root={self.root!r}, fsync={self.fsync})"

    def __reduce__(self) -> tuple[Any, ...]:
        return functools.partial(FileObjectStore, fsync=self.fsync), (self.root,)

    def close(self) -> None:
        self._stripes.close()

    # -- paths, temp files, directories ------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _timestamp_step(self) -> int:
        step = _STEPS.get(self.root)
        if step is not None:
            return step
        fd, temp = self._write_temp(b"")
        try:
            os.utime(fd, ns=(_PROBE_NS, _PROBE_NS))
            stored = os.fstat(fd).st_mtime_ns
        finally:
            # Unlink while the flock is held: the probe's mtime is old, so once unlocked another
            # process's sweep_temporaries may take it for a dead writer's file and remove it.
            os.unlink(temp)
            os.close(fd)
        step = next((g for g in (1, 10, 100, 1000, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9)
                     if _PROBE_NS // g * g == stored), 2 * 10**9)
        if step > _MAX_RESOLUTION_NS:
            raise ConfigurationError(
                f"the file system of {self.root!r} keeps timestamps to {step} ns only; object "
                f"versions need a resolution of {_MAX_RESOLUTION_NS} ns or finer")
        _STEPS[self.root] = step
        return step

    def _write_temp(self, data: bytes | Iterable[Data]) -> tuple[int, str]:
        """A new temp file holding ``data`` (bytes, or parts written as they come),
        flock-ed (alive) and fsynced: (fd, path)."""
        path = os.path.join(self._tmp, uuid.uuid4().hex + _TEMP_SUFFIX)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if isinstance(data, bytes):
                write_all(fd, (data,))
            else:  # parts that come as they are made: flush what came while waiting
                write_all(fd, data, sync_every=_SYNC_EVERY if self.fsync else 0)
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return fd, path

    def _stamp(self, fd: int, current: os.stat_result | None) -> str:
        """Give the temp file its mtime (see the module docstring) and return its version."""
        step = self._step
        mtime = time.time_ns() // step * step
        if current is not None and mtime <= current.st_mtime_ns:
            mtime = current.st_mtime_ns + step
        os.utime(fd, ns=(mtime, mtime))
        return file_version(os.fstat(fd))

    def _sync_dir(self, path: str) -> None:
        if self.fsync:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _collision(self, key: str) -> InvalidKeyError:
        return InvalidKeyError(f"object key {key!r} collides with a key it is a prefix of (or "
                               "one that is a prefix of it): a file store cannot hold both "
                               "'a' and 'a/b'", key)

    def _ensure_dir(self, key: str, directory: str) -> None:
        missing = []
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise self._collision(key) from None
            except NotADirectoryError:
                raise self._collision(key) from None
            else:
                self._sync_dir(os.path.dirname(path))

    def _publish(self, key: str, temp: str, path: str, *, exclusive: bool) -> None:
        """Link (``exclusive``) or rename ``temp`` to ``path``, creating its directory; again
        if a concurrent delete removed that directory in between."""
        for _ in range(100):
            self._ensure_dir(key, os.path.dirname(path))
            try:
                if exclusive:
                    os.link(temp, path)
                else:
                    os.replace(temp, path)
                return
            except FileExistsError:
                if os.path.isdir(path):
                    raise self._collision(key) from None
                raise self._conflict(key, "exists already") from None
            except IsADirectoryError:
                raise self._collision(key) from None
            except FileNotFoundError:
                continue  # the directory was pruned by a delete: create it again
        raise self._conflict(key, "its directory keeps being removed by concurrent deletes")

    def _prune(self, directory: str) -> None:
        while len(directory) > len(self.root):
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (the common case), or already gone
            directory = os.path.dirname(directory)

    def _current(self, path: str) -> os.stat_result | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temp files left by writers that died (killed mid-write).

        A temp file is removed only when it is older than ``older_than`` seconds AND its
        writer's ``flock`` is free: a live writer holds it from just after creating the file
        until it is done, so a live writer's file is never removed, and the age only covers
        the instant between creating a file and locking it.

        Parameters
        ----------
        older_than : float
            Minimum age in seconds (by the file's mtime).

        Returns
        -------
        int
            How many temp files were removed.
        """
        removed = 0
        cutoff = time.time_ns() - int(older_than * 1e9)
        with os.scandir(self._tmp) as entries:
            candidates = [e.path for e in entries if e.name.endswith(_TEMP_SUFFIX)]
        for path in candidates:
            try:
                fd = os.open(path, os.O_RDONLY | CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_mtime_ns > cutoff:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
            finally:
                os.close(fd)
        return removed

    # -- reads --------------------------------------------------------------------------------
    def _read(self, key: str, span: Callable[[int], tuple[int, int]],
              fetch: Callable[[int, int, int], Any] = read_at
              ) -> tuple[Any, os.stat_result] | None:
        """The bytes ``span(size)`` (offset, length) of a regular file, read by
        ``fetch(fd, length, offset)`` from the one descriptor whose ``fstat`` gave the size
        (a rename in between cannot mix two files), with that ``stat``; None when there is no
        such file."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset, length = span(st.st_size)
            return (fetch(fd, length, offset) if length > 0 else b""), st
        finally:
            os.close(fd)

    def _get(self, key: str) -> tuple[bytes, str] | None:
        got = self._read(key, lambda size: (0, size))
        return None if got is None else (got[0], file_version(got[1]))

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        got = self._read(key, functools.partial(_span, start, length))
        return None if got is None else got[0]

    def _view_ranges(self, requests: list[tuple[str, int, int | None]]
                     ) -> list[bytes | memoryview | None]:
        out: list[bytes | memoryview | None] = []
        for key, start, length in requests:
            got = self._read(key, functools.partial(_span, start, length), _map_or_read)
            out.append(None if got is None else got[0])
        return out

    def _get_suffix(self, key: str, length: int) -> bytes | None:
        def span(size: int) -> tuple[int, int]:
            wanted = min(length, size)
            return size - wanted, wanted

        got = self._read(key, span)
        return None if got is None else got[0]

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        head, _, name_prefix = prefix.rpartition("/")
        directory = os.path.join(self.root, head) if head else self.root
        return self._walk(directory, head + "/" if head else "", name_prefix, start_after)

    def _walk(self, directory: str, base: str, name_prefix: str, start_after: str | None
              ) -> Iterator[ObjectInfo]:
        """Objects under ``directory`` in key order: a directory ``d`` sorts as ``d/``,
        which is where all its keys sort among its siblings."""
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        ordered = []
        for entry in entries:
            name = entry.name
            if not name.startswith(name_prefix) or (not base and name == RESERVED_PREFIX):
                continue
            try:
                name.encode("utf-8")  # a name no key can have (undecodable bytes)
                is_dir = entry.is_dir(follow_symlinks=False)
            except (UnicodeEncodeError, OSError):
                continue
            ordered.append((base + name + "/" if is_dir else base + name, is_dir, entry))
        ordered.sort(key=lambda item: item[0])
        for key, is_dir, entry in ordered:
            if is_dir:
                if start_after is None or key > start_after or start_after.startswith(key):
                    yield from self._walk(entry.path, key, "", start_after)
                continue
            if start_after is not None and key <= start_after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield ObjectInfo(key, st.st_size, file_version(st))

    # -- writes -------------------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> str:
        return self._replace(key, data, None)

    def _put_parts(self, key: str, parts: Iterator[Data]) -> str:
        return self._replace(key, parts, None)

    def _put_if_match(self, key: str, data: bytes, version: str) -> str:
        return self._replace(key, data, version)

    def _replace(self, key: str, data: bytes | Iterable[Data], expected: str | None) -> str:
        fd, temp = self._write_temp(data)
        path = self._path(key)
        try:
            with self._stripes.hold(key):
                current = self._current(path)
                if expected is not None:
                    if current is None:
                        raise self._conflict(key, "does not exist (removed by a concurrent "
                                                  "writer?)")
                    if file_version(current) != expected:
                        raise self._conflict(key, "a concurrent writer replaced it")
                version = self._stamp(fd, current)
                self._publish(key, temp, path, exclusive=False)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            os.close(fd)
        self._sync_dir(os.path.dirname(path))
        return version

    def _put_if_absent(self, key: str, data: bytes) -> str:
        fd, temp = self._write_temp(data)
        path = self._path(key)
        try:
            version = self._stamp(fd, None)
            self._publish(key, temp, path, exclusive=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            os.close(fd)
        self._sync_dir(os.path.dirname(path))
        return version

    def _delete(self, key: str, if_match: str | None) -> None:
        path = self._path(key)
        with self._stripes.hold(key):
            current = self._current(path)
            if if_match is not None:
                if current is None:
                    raise self._conflict(key, "does not exist (removed by a concurrent writer?)")
                if file_version(current) != if_match:
                    raise self._conflict(key, "a concurrent writer replaced it")
            if current is None:
                return
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                return
        directory = os.path.dirname(path)
        self._sync_dir(directory)
        self._prune(directory)
