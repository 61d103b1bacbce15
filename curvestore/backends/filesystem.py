"""Filesystem backend (the embedded default): ``file:///abs/path``, ``file://./rel`` or a path.

Layout::

    manifest.json                              the store's frozen configuration
    series/<k1>=<v1>/<k2>=<v2>/<shard>.cvs     a shard: the chunks of one series and one year
    log/<first seq>.log                        the change log, in segments
    sync/<name>.json                           replication cursors kept by this store
    tmp/, locks/                               staged files and lock files

Key directories are Hive-style (:mod:`curvestore.backends._layout`); shard files are described
in :mod:`curvestore.backends._file_shard_format` (a year of month chunks per file: a twelfth of
the files to create, open and fsync). Guarantees and how they are met:

* **Atomic chunks**: every shard is written whole to ``tmp/`` and renamed into place, so a
  reader sees the old or the new file, never a torn one; shard indexes and payloads carry
  CRC-32s.
* **All-or-nothing batches**: a commit appends its change entries and the renames it will do to
  the log as one batch (a begin line with the line count; every line carries a CRC-32, see
  :mod:`curvestore.backends._fslog`) and fsyncs it: that append is the commit point. Then it
  renames the temp files and appends an end line. A batch cut short in the log is rolled back
  (temp files removed, log truncated); a fully logged one is rolled forward (the remaining
  renames redone) by the next writer or read-write open, under the commit lock. Transactions
  and their commit are in :mod:`curvestore.backends._fstx`.
* **Readers never see half a batch**, and do no recovery: while a fully logged batch lacks its
  end line, readers read its shards from its temp files (or the final paths once renamed),
  and each series read is checked against the log's tail (:mod:`curvestore.backends._fsread`).
* **Several processes**: a transaction holds ``flock`` locks on the lock stripes of its series
  (64 stripes, taken in order, so no deadlock), and commits are serialised by a store-wide
  commit lock held only for the log append and the renames. Each writing handle holds
  ``locks/writer-<id>.lock`` while open and names its temp files after ``<id>``: the cleanup of
  stale temp files removes only those whose lock is free (a PID means nothing across
  containers).
* **Damage is detected**: the manifest carries a CRC-32 (:mod:`curvestore.backends._fsmanifest`),
  every shard index names its series and the store/grid fingerprint (checked against the path
  and the manifest on every read), log lines carry CRC-32s; ``curvestore verify`` checks them
  all and the shards against the log (:mod:`curvestore.backends._fscheck`).
* **Change feed**: the log is the feed: batches with their end line. Cursors carry the position
  (sequence number, segment, byte offset) so resuming is a seek. A failed log append (a full
  disk) cuts itself off; one cut by a kill is cut off by the next writer.
* **Durability**: with ``fsync=true`` (default) temp files, the log and touched directories are
  fsynced before a commit returns; ``fsync=false`` trades power-loss durability for speed
  (process crashes stay safe either way).

Chunk versions count the writes of each chunk (1, 2, ...), tombstones included.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.backends import _layout as layout
from curvestore.backends._fsmanifest import manifest_bytes, parse_manifest
from curvestore.backends._fsread import NO_VIEW, ShardReads
from curvestore.backends._fstx import FileTransaction
from curvestore.core.backend import Backend, IntegrityProblem, Transaction, bound_schema
from curvestore.core.records import FeedBatch, Position, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    IntegrityError,
    StoreExistsError,
)

__all__ = ["FileBackend"]

_STRIPES = 64
_MANIFEST = "manifest.json"


def _fsync_path(path: str | Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):  # not Linux: fall back to one fsync per file
        return None


_SYNCFS = _load_syncfs()
_SYNCFS_MIN_FILES = 16


class FileBackend(ShardReads, Backend):
    """Chunks as files under a directory; see the module docstring for the guarantees."""

    schemes = ("file-shards",)
    feed_arity = 3  # (sequence, segment, offset): see :func:`curvestore.backends._fslog.feed`

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.root = Path(root).absolute()
        self.fsync = fsync
        self.series_dir = self.root / "series"
        self.log = fslog.Log(self.root / "log")
        self._pool: ThreadPoolExecutor | None = None
        self._manifest: dict[str, Any] = {}
        self._manifest_id: tuple[int, ...] | None = None
        self.grid = ""
        self._paths: dict[SeriesKey, Path] = {}
        self._view = NO_VIEW
        self._writer: tuple[str, int] | None = None  # (writer id, fd of its held lock file)
        self._writer_mutex = threading.Lock()
        self._tx_numbers = itertools.count()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> FileBackend:
        url.reject_unknown_options(frozenset({"fsync"}))
        path = url.netloc + url.path if url.netloc in ("", ".", "..", "~") else None
        if path is None:
            raise ConfigurationError(
                f"file URLs are file:///absolute/path or file://./relative/path; got host "
                f"{url.netloc!r}"
            )
        path = os.path.expanduser(path) if path.startswith("~") else path
        if not path:
            raise ConfigurationError("a file:// URL needs a path")
        fsync = url.options.get("fsync", "true").lower()
        if fsync not in ("true", "false", "1", "0"):
            raise ConfigurationError(f"fsync must be true or false, got {fsync!r}")
        return cls(path, fsync=fsync in ("true", "1"), read_only=read_only)

    def __repr__(self) -> str:
        return f"FileBackend(path={str(self.root)!r})"

    # -- manifest --------------------------------------------------------------------------
    def _load_manifest(self) -> tuple[dict[str, Any], bool, tuple[int, ...]] | None:
        path = self.root / _MANIFEST
        try:
            with open(path, "rb") as f:
                raw = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IntegrityError(f"{path}: unreadable manifest: {exc}") from exc
        manifest, sealed = parse_manifest(raw, str(path))
        return manifest, sealed, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _adopt_manifest(self, manifest: dict[str, Any], identity: tuple[int, ...] | None
                        ) -> None:
        self._manifest = manifest
        self._manifest_id = identity
        self.grid = file_shards.grid_fingerprint(manifest)

    def read_manifest(self) -> dict[str, Any] | None:
        loaded = self._load_manifest()
        if loaded is None:
            return None
        manifest, sealed, identity = loaded
        self._adopt_manifest(manifest, identity)
        if not self.read_only:
            self._recover_locked(seal_manifest=not sealed)
        return dict(manifest)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("series", "log", "tmp", "locks"):
            (self.root / sub).mkdir(exist_ok=True)
        tmp = self.root / "tmp" / f"manifest-{uuid.uuid4().hex}.json"
        tmp.write_bytes(manifest_bytes(manifest))
        if self.fsync:
            _fsync_path(tmp)
        try:
            os.link(tmp, self.root / _MANIFEST)  # fails if it exists: no clobbering
        except FileExistsError as exc:
            raise StoreExistsError(f"a store already exists at {self.root}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        if self.fsync:
            _fsync_path(self.root, directory=True)
        st = os.stat(self.root / _MANIFEST)
        self._adopt_manifest(dict(manifest), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))

    def _seal_manifest(self) -> None:
        """Give a manifest written before checksums existed its checksum (commit lock held)."""
        loaded = self._load_manifest()
        if loaded is None or loaded[1]:
            return
        tmp = self.root / "tmp" / f"manifest-{uuid.uuid4().hex}.json"
        tmp.write_bytes(manifest_bytes(loaded[0]))
        if self.fsync:
            _fsync_path(tmp)
        os.replace(tmp, self.root / _MANIFEST)
        if self.fsync:
            _fsync_path(self.root, directory=True)

    def _check_manifest_current(self) -> None:
        """Refuse to write when the manifest changed under this handle (the store was
        re-created, or its manifest edited): its chunks would land on another grid."""
        path = self.root / _MANIFEST
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise IntegrityError(f"{path} is gone: the store was deleted under this "
                                 "handle") from None
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == self._manifest_id:
            return
        loaded = self._load_manifest()
        if loaded is None:
            raise IntegrityError(f"{path} is gone: the store was deleted under this handle")
        manifest, _sealed, identity = loaded
        differences = {name: (manifest.get(name), self._manifest.get(name))
                       for name in sorted(set(manifest) | set(self._manifest))
                       if manifest.get(name) != self._manifest.get(name)}
        if differences:
            raise ConfigMismatchError(differences)
        self._manifest_id = identity

    # -- locking and commit ----------------------------------------------------------------
    @contextmanager
    def _flock(self, name: str) -> Iterator[None]:
        fd = os.open(self.root / "locks" / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _stripe(self, key: SeriesKey) -> int:
        parts = layout.series_parts(bound_schema(self.schema), key)
        return zlib.crc32("/".join(parts).encode()) % _STRIPES

    def _writer_id(self) -> str:
        """This handle's writer id: temp files are named after it, and it holds
        ``locks/writer-<id>.lock`` while open, so a cleanup in any process (whatever its PID
        namespace) can tell a live writer's temp files from a dead one's."""
        with self._writer_mutex:
            if self._writer is None:
                wid = uuid.uuid4().hex[:16]
                staging = self.root / "locks" / f".{wid}.new"
                fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                # visible under its name only once locked, so a sweep never sees it unlocked
                os.rename(staging, self.root / "locks" / f"writer-{wid}.lock")
                self._writer = (wid, fd)
            return self._writer[0]

    def _writer_alive(self, wid: str) -> bool:
        if self._writer is not None and wid == self._writer[0]:
            return True
        path = self.root / "locks" / f"writer-{wid}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            path.unlink(missing_ok=True)  # its owner is gone
            return False
        finally:
            os.close(fd)

    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        txid = f"{self._writer_id()}-{next(self._tx_numbers)}"
        locks = contextlib.ExitStack()  # released by the transaction's commit or abort
        try:
            for stripe in sorted({self._stripe(k) for k in keys}):
                locks.enter_context(self._flock(f"stripe-{stripe:02d}.lock"))
            # A dead writer's logged batch must be rolled forward before this transaction
            # reads the shards it would rewrite, or the rewrite would undo it.
            tail = self.log.tail()
            if tail.pending or tail.torn:
                self._recover_locked()
        except BaseException:
            locks.close()
            raise
        return FileTransaction(self, txid, locks)

    def _sync_files(self, paths: list[str]) -> None:
        """Make written files durable: one ``syncfs`` for big batches (one journal commit
        instead of one per file), else an fsync per file."""
        if len(paths) >= _SYNCFS_MIN_FILES and _SYNCFS is not None:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
        self._parallel(_fsync_path, paths)

    def _sync_dirs(self, directories: list[str]) -> None:
        if len(directories) >= _SYNCFS_MIN_FILES and _SYNCFS is not None:
            self._sync_files(directories)
        else:
            self._parallel(lambda d: _fsync_path(d, directory=True), directories)

    def _parallel(self, fn: Callable[[str], object], items: list[str]) -> None:
        if len(items) < 8:
            for item in items:
                fn(item)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="curvestore-fs")
        list(self._pool.map(fn, items))

    # -- replication state -------------------------------------------------------------------
    def _state_path(self, name: str) -> str:
        return os.path.join(self.root, "sync", quote(name, safe="") + ".json")

    def get_state(self, name: str) -> str | None:
        path = self._state_path(name)
        data = self._consistent(lambda view: self._read_file(path, view))
        if data is None:
            return None
        try:
            return str(json.loads(data)["value"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{path}: unreadable replication state: {exc}") from exc

    # -- recovery ----------------------------------------------------------------------------
    def _finish_tail(self) -> fslog.Tail:
        """The log's tail with any unfinished batch finished or undone (commit lock held)."""
        tail = self.log.tail()
        if tail.segment is not None and (tail.pending or tail.torn):  # no segment: empty log
            self._recover(tail, tail.segment)
            tail = self.log.tail()
        return tail

    def _recover(self, tail: fslog.Tail, segment: Path) -> None:
        """Finish or undo what a killed or failed writer left at the log's tail (commit lock
        held). A committed batch (all its lines logged, fsynced before any rename) is rolled
        forward; a batch cut short never renamed anything, so it is cut off with its files."""
        if tail.torn:  # an append cut short by a kill: drop the incomplete line
            fslog.truncate(segment, tail.complete, sync=self.fsync)
        batch = tail.batch
        if batch is not None and batch.complete:
            directories = set()
            for temp, final in batch.moves:
                tmp = self.root / "tmp" / temp
                if tmp.exists():
                    os.replace(tmp, self.root / final)
                    directories.add(str((self.root / final).parent))
            if self.fsync:
                self._sync_dirs(sorted(directories))
            last = batch.last_seq
            fslog.append(segment, fslog.encode_line({"e": tail.head if last is None else last}),
                         sync=self.fsync)
            return
        if batch is None and any("r" not in entry for entry in tail.pending):
            raise IntegrityError(f"{segment}: log lines after the last batch belong to no "
                                 f"batch (from byte {tail.pending_at})")
        doomed = [str(self.root / "tmp" / temp) for temp, _final in
                  (batch.moves if batch is not None else [])]
        if batch is not None:
            prefix = f"{batch.txid}-"
            with os.scandir(self.root / "tmp") as found:
                doomed += [e.path for e in found if e.name.startswith(prefix)]
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        fslog.truncate(segment, tail.pending_at, sync=self.fsync)

    def _recover_locked(self, *, seal_manifest: bool = False) -> None:
        locks = self.root / "locks"
        if not locks.is_dir():
            return
        with self._flock("commit.lock"):
            self._finish_tail()
            if seal_manifest:
                self._seal_manifest()
            self._sweep()

    def _sweep(self) -> None:
        """Remove temp files (and lock files) of writers that are gone: a writer holds its
        lock file for as long as it lives, so this never touches a live writer's files, in
        whatever process or PID namespace it runs. Runs after recovery, so no committed batch
        still needs its temp files."""
        alive: dict[str, bool] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / "tmp") as entries:
            for entry in entries:
                if not entry.name.endswith(".tmp"):
                    continue
                wid = entry.name.split("-", 1)[0]
                if wid not in alive:
                    alive[wid] = self._writer_alive(wid)
                if not alive[wid]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / "locks") as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("writer-") and name.endswith(".lock"):
                    wid = name[len("writer-"):-len(".lock")]
                    if wid not in alive:
                        alive[wid] = self._writer_alive(wid)

    # -- change feed -----------------------------------------------------------------------
    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        """See :func:`curvestore.backends._fslog.feed`. Keys are not filtered here: the
        core does it, and every log line is parsed either way."""
        return fslog.feed(self.log, after)

    # -- integrity -------------------------------------------------------------------------
    def check_integrity(self, where: Mapping[str, Any]
                        ) -> tuple[list[SeriesKey] | None, list[IntegrityProblem]]:
        from curvestore.backends._fscheck import check_store

        return check_store(self, where)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._writer_mutex:
            if self._writer is not None:
                wid, fd = self._writer
                self._writer = None
                with contextlib.suppress(OSError):
                    (self.root / "locks" / f"writer-{wid}.lock").unlink()
                os.close(fd)
        super().close()
