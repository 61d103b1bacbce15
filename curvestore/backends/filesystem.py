"""Filesystem backend (the embedded default): ``file:///abs/path``, ``file://./rel`` or a path.

Layout::

    manifest.json                              the store's frozen configuration
    series/<k1>=<v1>/<k2>=<v2>/<shard>.cvs     a shard: the chunks of one series and one year
    log/<first seq>.log                        the change log, in segments
    sync/<name>.json                           replication cursors kept by this store
    tmp/, locks/                               staged files and lock files

Key directories are Hive-style (:mod:`curvestore.backends._layout`); shard files are described
in :mod:`curvestore.backends._shards` (a year of month chunks per file: a twelfth of the files
to create, open and fsync). Guarantees and how they are met:

* **Atomic chunks**: every shard is written whole to ``tmp/`` and renamed into place, so a
  reader sees the old or the new file, never a torn one; shard indexes and payloads carry
  CRC-32s.
* **All-or-nothing batches**: a commit appends its change entries and the renames it will do to
  the log as one batch (a begin marker with the entry count), fsyncs it, renames the temp
  files, then appends an end marker. A writer killed before the batch was fully logged is
  rolled back (temp files removed, log truncated); one killed after is rolled forward (the
  remaining renames redone). Recovery runs under the commit lock when a store is opened for
  writing, when a transaction starts and before each commit, so no later reader or writer sees
  half a batch, and no writer rewrites a shard from a state older than a logged batch.
* **Several processes**: a transaction holds ``flock`` locks on the lock stripes of its series
  (64 stripes, taken in order, so no deadlock), and commits are serialised by a store-wide
  commit lock held only for the log append and the renames.
* **Change feed**: the log is the feed; readers return only batches that have their end marker.
  Cursors carry the position (sequence number, segment, byte offset) so resuming is a seek.
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
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from curvestore.backends import _fslog as fslog
from curvestore.backends import _layout as layout
from curvestore.backends import _shards as shards
from curvestore.backends.base import Backend, IntegrityProblem, Transaction
from curvestore.core.cursor import decode_cursor, encode_cursor
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    IntegrityError,
    StoreExistsError,
)

__all__ = ["FileBackend"]

_T = TypeVar("_T")
_STRIPES = 64
_SEGMENT_BYTES = 4 << 20
_DIRECT_READ_MAX = 6  # shard ranges up to this size are opened by name, not listed
_OPTIMISTIC_READS = 3  # then a read waits for the commit lock (shared)
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


def _manifest_checksum(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return f"{zlib.crc32(json.dumps(body, sort_keys=True, separators=(',', ':')).encode()):08x}"


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    sealed = {**manifest, "checksum": _manifest_checksum(manifest)}
    return (json.dumps(sealed, indent=2, sort_keys=True) + "\n").encode()


def _parse_manifest(raw: bytes, where: str) -> tuple[dict[str, Any], bool]:
    """(manifest without its checksum, whether it had one); IntegrityError if damaged."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise IntegrityError(f"{where}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where}: the manifest is not a JSON object")
    stored = manifest.pop("checksum", None)
    if stored is not None and stored != _manifest_checksum(manifest):
        raise IntegrityError(f"{where}: the manifest fails its checksum (damaged or edited by "
                             "hand; freq, tz, chunking and keys cannot change under a store)")
    return manifest, stored is not None


@dataclass(frozen=True)
class _View:
    """What a reader must see besides the live files: the renames of a committed batch whose
    end line is not in the log yet (a writer renaming right now, or one that was killed).

    ``staged`` maps a directory to {file name: the batch's temp file}; a reader opens the temp
    file first and the live file when the temp file is gone (renamed since). ``segment`` and
    ``size`` identify the log state the view was built from: while they hold, no batch started
    or finished (see :meth:`FileBackend._consistent`)."""

    segment: Path | None
    size: int
    staged: dict[str, dict[str, str]] = field(default_factory=dict)

    def temp_for(self, path: str) -> str | None:
        directory, _, name = path.rpartition(os.sep)
        names = self.staged.get(directory)
        return None if names is None else names.get(name)


_NO_VIEW = _View(None, -1)


class _FileTransaction(Transaction):
    """Stages whole shards as temp files; the commit logs and renames them."""

    def __init__(self, backend: FileBackend, keys: Sequence[SeriesKey], txid: str) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.dirs: dict[SeriesKey, str] = {}
        self.states: list[tuple[str, str]] = []
        # (key, shard) -> (temp file, final path, the shard's records by chunk)
        self.staged: dict[tuple[SeriesKey, int], tuple[str, str, dict[int, ChunkRecord]]] = {}
        self.written: dict[tuple[SeriesKey, int], ChunkMeta] = {}
        self.committed = []
        self.txid = txid
        self.logged = False  # once the batch is in the log it is committed: keep its files

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return self.backend._series_metas(key, self.backend._series_path(key))

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self.backend.read_chunks(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        backend = self.backend
        per_shard = backend.per_shard
        groups: dict[tuple[SeriesKey, int], list[ChunkRecord]] = {}
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
            groups.setdefault((record.key, record.chunk // per_shard), []).append(record)
        tmp_dir = os.path.join(backend.root, "tmp")
        for (key, shard), group in groups.items():
            staged = self.staged.get((key, shard))
            if staged is None:
                directory = self.dirs.get(key)
                if directory is None:
                    directory = self.dirs[key] = str(backend._series_path(key))
                final = os.path.join(directory, shards.shard_name(shard))
                tmp = os.path.join(tmp_dir, f"{self.txid}-{len(self.staged)}.tmp")
                staged = (tmp, final, backend._load_shard(final, key, shard))
                self.staged[(key, shard)] = staged
            tmp, final, current = staged
            for record in group:
                previous = current.get(record.chunk)
                version = (previous.meta.version if previous is not None else 0) + 1
                record = ChunkRecord(key, record.meta.committed(version, now), record.payload)
                current[record.chunk] = record
                self.written[(key, record.chunk)] = record.meta
            with open(tmp, "wb") as f:
                f.write(shards.encode_shard(key, current.values(), backend.grid))

    def set_state(self, name: str, value: str) -> None:
        tmp = os.path.join(self.backend.root, "tmp", f"{self.txid}-state-{len(self.states)}.tmp")
        with open(tmp, "w") as f:
            json.dump({"name": name, "value": value}, f)
        self.states.append((tmp, self.backend._state_path(name)))

    def discard(self) -> None:
        if not self.logged:
            for tmp in [s[0] for s in self.staged.values()] + [t for t, _ in self.states]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.staged.clear()
        self.states.clear()
        self.written.clear()


class FileBackend(Backend):
    """Chunks as files under a directory; see the module docstring for the guarantees."""

    schemes = ("file",)

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
        self._view = _NO_VIEW
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
        manifest, sealed = _parse_manifest(raw, str(path))
        return manifest, sealed, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _adopt_manifest(self, manifest: dict[str, Any], identity: tuple[int, ...] | None
                        ) -> None:
        self._manifest = manifest
        self._manifest_id = identity
        self.grid = shards.grid_fingerprint(manifest)

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
        self.check_writable()
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("series", "log", "tmp", "locks"):
            (self.root / sub).mkdir(exist_ok=True)
        tmp = self.root / "tmp" / f"manifest-{uuid.uuid4().hex}.json"
        tmp.write_bytes(_manifest_bytes(manifest))
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
        tmp.write_bytes(_manifest_bytes(loaded[0]))
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

    # -- paths and single objects ----------------------------------------------------------
    def _series_path(self, key: SeriesKey) -> Path:
        path = self._paths.get(key)
        if path is None:
            assert self.schema is not None, "bind() was not called"
            if len(self._paths) > 100_000:  # a cache, not a leak, on stores with many series
                self._paths.clear()
            path = self._paths[key] = self.series_dir.joinpath(
                *layout.series_parts(self.schema, key))
        return path

    @property
    def per_shard(self) -> int:
        return shards.shard_chunks(str(self._manifest.get("chunking", "month")))

    def _load_shard(self, path: str, key: SeriesKey, shard: int) -> dict[int, ChunkRecord]:
        """Every record of the live shard file at ``path`` by chunk (empty if there is none)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        index, records = shards.decode_records(data, path)
        shards.check_index(index, path, key, shard, self.per_shard, self.grid)
        return {r.chunk: r for r in records}

    # -- reads: consistent with the log ----------------------------------------------------
    def _current_view(self) -> _View:
        view = self._view
        if self._view_holds(view):
            return view
        tail = self.log.tail()
        staged: dict[str, dict[str, str]] = {}
        batch = tail.committed
        if batch is not None:
            root, tmp = str(self.root), os.path.join(str(self.root), "tmp")
            for temp, final in batch.moves:
                directory, _, name = os.path.join(root, final).rpartition(os.sep)
                staged.setdefault(directory, {})[name] = os.path.join(tmp, temp)
        view = self._view = _View(tail.segment, tail.size, staged)
        return view

    def _view_holds(self, view: _View) -> bool:
        if view.segment is None:
            return view.size == 0 and not self.log.segments()
        try:
            return os.stat(view.segment).st_size == view.size
        except FileNotFoundError:
            return False

    def _consistent(self, read: Callable[[_View], _T]) -> _T:
        """Run ``read`` against the log state it sees, as a seqlock: a batch's renames happen
        between two appends to the log, so when the last segment's size is the same after the
        read as before, the files read belong to one state (the renames of a committed batch
        still pending are read from its temp files). After a few retries (writers committing
        all the time), the read waits for the commit lock, shared."""
        for _ in range(_OPTIMISTIC_READS):
            view = self._current_view()
            result = read(view)
            if self._view_holds(view):
                return result
        with self._shared_commit_lock():
            return read(self._current_view())

    @contextmanager
    def _shared_commit_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self.root / "locks" / "commit.lock", os.O_RDONLY)
        except OSError:  # no lock file yet, or no permission: nothing commits through it
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _read_file(path: str, view: _View) -> bytes | None:
        temp = view.temp_for(path) if view.staged else None
        for candidate in (temp, path):
            if candidate is None:
                continue
            try:
                with open(candidate, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                continue  # a temp file renamed since: the live file is the batch's
        return None

    def _shard_files(self, directory: Path | str, lo: int | None, hi: int | None,
                     view: _View) -> list[tuple[int, str]]:
        per_shard = self.per_shard
        first = None if lo is None else lo // per_shard
        last = None if hi is None else hi // per_shard
        base = str(directory)
        if first is not None and last is not None and last - first < _DIRECT_READ_MAX:
            return [(n, os.path.join(base, shards.shard_name(n))) for n in range(first, last + 1)]
        found = {}
        suffix = shards.SHARD_SUFFIX
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(suffix):
                    found[entry.name] = entry.path
        for name in view.staged.get(base, ()):  # shards the pending batch creates
            found.setdefault(name, os.path.join(base, name))
        listed = []
        for name, path in found.items():
            shard = shards.parse_shard_name(name, path)
            if (first is None or shard >= first) and (last is None or shard <= last):
                listed.append((shard, path))
        listed.sort()
        return listed

    def _read_series(self, key: SeriesKey, lo: int | None, hi: int | None, view: _View,
                     directory: Path | None = None) -> list[ChunkRecord]:
        wanted = range(-(1 << 62) if lo is None else lo, (1 << 62) if hi is None else hi + 1)
        records = []
        per_shard, grid = self.per_shard, self.grid
        for shard, path in self._shard_files(directory or self._series_path(key), lo, hi, view):
            data = self._read_file(path, view)
            if data is None:
                continue
            index, found = shards.decode_records(data, path, wanted)
            shards.check_index(index, path, key, shard, per_shard, grid)
            records += [r for r in found if not r.meta.deleted]
        return records

    def _series_metas(self, key: SeriesKey, directory: Path, *, first_only: bool = False
                      ) -> list[ChunkMeta]:
        def read(view: _View) -> list[ChunkMeta]:
            metas = []
            for shard, path in self._shard_files(directory, None, None, view):
                index = self._read_index(path, view)
                if index is None:
                    continue
                shards.check_index(index, path, key, shard, self.per_shard, self.grid)
                for meta in index.metas:
                    if not meta.deleted:
                        metas.append(meta)
                        if first_only:
                            return metas
            return metas

        return self._consistent(read)

    @staticmethod
    def _read_index(path: str, view: _View) -> shards.ShardIndex | None:
        temp = view.temp_for(path) if view.staged else None
        for candidate in (temp, path):
            if candidate is None:
                continue
            try:
                with open(candidate, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(0, size - shards.TAIL_READ))
                    tail = f.read()
                    start, length = shards.index_span(tail, size, path)
                    if length + shards.TRAILER_SIZE > len(tail):  # a long index: read it all
                        f.seek(start)
                        tail = f.read()
                return shards.decode_index(tail, size, path)
            except FileNotFoundError:
                continue
        return None

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return self._consistent(lambda view: self._read_series(key, lo, hi, view))

    def _walk(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, Path]]:
        """Series directories matching ``where``, in key order, pruning by key prefix."""
        assert self.schema is not None
        names, types = self.schema.names, self.schema.types

        def level(i: int, directory: Path, prefix: tuple[Any, ...]
                  ) -> Iterator[tuple[SeriesKey, Path]]:
            if i == len(names):
                yield prefix, directory
                return
            if names[i] in where:
                value = where[names[i]]
                child = directory / layout.encode_component(names[i], value)
                if child.is_dir():
                    yield from level(i + 1, child, (*prefix, value))
                return
            try:
                with os.scandir(directory) as entries:
                    children = [
                        (layout.parse_component(e.name, names[i], types[i]), e.path)
                        for e in entries if e.is_dir()
                    ]
            except FileNotFoundError:
                return
            for value, path in sorted(children):
                yield from level(i + 1, Path(path), (*prefix, value))

        yield from level(0, self.series_dir, ())

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        for key, directory in self._walk(where):
            records = self._consistent(
                lambda view, k=key, d=directory: self._read_series(k, lo, hi, view, d))
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, directory in self._walk(where):
            metas = self._series_metas(key, directory)
            if metas:
                yield key, metas

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        for key, directory in self._walk(where):
            if self._series_metas(key, directory, first_only=True):
                yield key

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
        assert self.schema is not None
        return zlib.crc32("/".join(layout.series_parts(self.schema, key)).encode()) % _STRIPES

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

    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[Transaction]:
        self.check_writable()
        txid = f"{self._writer_id()}-{next(self._tx_numbers)}"
        with contextlib.ExitStack() as stack:
            for stripe in sorted({self._stripe(k) for k in keys}):
                stack.enter_context(self._flock(f"stripe-{stripe:02d}.lock"))
            # A dead writer's logged batch must be rolled forward before this one reads the
            # shards it would rewrite, or the rewrite would undo it.
            tail = self.log.tail()
            if tail.pending or tail.torn:
                self._recover_locked()
            tx = _FileTransaction(self, keys, txid)
            try:
                yield tx
                tx.committed = self._commit(tx)
            except BaseException:
                tx.discard()
                raise

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

    def _parallel(self, fn: Any, items: list[Any]) -> None:
        if len(items) < 8:
            for item in items:
                fn(item)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="curvestore-fs")
        list(self._pool.map(fn, items))

    def _commit(self, tx: _FileTransaction) -> list[Change]:
        if not tx.staged and not tx.states:
            return []
        moves = [(tmp, final) for tmp, final, _records in tx.staged.values()] + tx.states
        if self.fsync:
            self._sync_files([tmp for tmp, _final in moves])
        directories = {os.path.dirname(final) for _tmp, final in moves}
        for directory in directories:
            os.makedirs(directory, exist_ok=True)
        written = sorted(tx.written.items(), key=lambda item: item[0])
        with self._flock("commit.lock"):
            self._check_manifest_current()
            tail = self._finish_tail()
            head, segment = tail.head, tail.segment
            if segment is None or tail.size > _SEGMENT_BYTES:
                if segment is not None:  # changes the old segment's size: readers look again
                    fslog.append(segment, fslog.encode_line({"r": head + 1}), sync=False)
                segment = self.log.dir / self.log.segment_name(head + 1)
            changes = []
            root = str(self.root) + os.sep
            lines = [fslog.encode_line({"b": len(written) + len(moves), "x": tx.txid})]
            for i, ((key, chunk), meta) in enumerate(written, start=head + 1):
                changes.append(Change(key, chunk, meta.version, meta.deleted))
                lines.append(fslog.encode_line({"s": i, "k": list(key), "c": chunk,
                                                "v": meta.version, "d": meta.deleted}))
            lines += [fslog.encode_line({"t": os.path.basename(tmp), "p": final[len(root):]})
                      for tmp, final in moves]
            fslog.append(segment, "".join(lines), sync=self.fsync)
            tx.logged = True  # the commit point: from here on the batch only rolls forward
            for tmp, final in moves:
                os.replace(tmp, final)
            if self.fsync:
                self._sync_dirs(sorted(directories))
            # A failed end line (full disk) cut itself off: the batch stays committed and
            # readers see it; the next writer or read-write open writes the end line.
            with contextlib.suppress(OSError):
                fslog.append(segment, fslog.encode_line({"e": head + len(written)}), sync=False)
        tx.staged.clear()
        tx.states.clear()
        tx.written.clear()
        return changes

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
        if tail.pending or tail.torn:
            self._recover(tail)
            tail = self.log.tail()
        return tail

    def _recover(self, tail: fslog.Tail) -> None:
        """Finish or undo what a killed or failed writer left at the log's tail (commit lock
        held). A committed batch (all its lines logged, fsynced before any rename) is rolled
        forward; a batch cut short never renamed anything, so it is cut off with its files."""
        segment = tail.segment
        assert segment is not None
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
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Pages end on batch boundaries (a page holds more than ``limit`` items only when one
        committed batch does); a batch still being logged at the tail is not shown yet, a
        committed one whose end line is missing is."""
        assert self.schema is not None
        store_id = str(self._manifest.get("store_id", ""))
        seq, seg_first, offset = (0, 0, 0) if cursor is None else decode_cursor(cursor, store_id)
        position = (seq, seg_first, offset)
        items: list[Change] = []
        segments = [(f, p) for f, p in self.log.segments() if f >= seg_first]
        for n, (first, path) in enumerate(segments):
            start = offset if first == seg_first else 0
            batch: list[Change] = []
            expected: int | None = None
            seen = 0
            batch_seq = seq
            pos = start
            for pos, line in self.log.lines(path, start):
                if "b" in line:
                    batch, expected, seen, batch_seq = [], int(line["b"]), 0, seq
                    continue
                if "e" in line:
                    end_seq, expected = max(batch_seq, int(line["e"])), None
                elif expected is None:
                    continue  # a segment switch, or lines of a batch before the cursor
                else:
                    seen += 1
                    if "s" in line:
                        batch_seq = max(batch_seq, line["s"])
                        if line["s"] > seq:
                            key = tuple(line["k"])
                            if self.schema.matches(key, where):
                                batch.append(Change(key, line["c"], line["v"], line["d"]))
                    if seen < expected or n + 1 < len(segments):
                        continue
                    end_seq, expected = batch_seq, None  # committed, end line not yet written
                if items and len(items) + len(batch) > limit:
                    return ChangePage(items, encode_cursor(store_id, position), True)
                items += batch
                batch = []
                seq = max(seq, end_seq)
                position = (seq, first, pos)
                if len(items) >= limit:
                    more = pos < os.stat(path).st_size or n + 1 < len(segments)
                    return ChangePage(items, encode_cursor(store_id, position), more)
        return ChangePage(items, encode_cursor(store_id, position), False)

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
