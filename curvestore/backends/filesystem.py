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
import json
import os
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from curvestore.backends import _layout as layout
from curvestore.backends import _shards as shards
from curvestore.backends.base import Backend, Transaction, stale_state
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigurationError,
    IntegrityError,
    StoreExistsError,
)

__all__ = ["FileBackend"]

_STRIPES = 64
_SEGMENT_BYTES = 4 << 20
_TAIL = 4096
_END_MARKER_MAX = 40  # bytes of the longest end-of-batch line, {"e":<seq>}
_DIRECT_READ_MAX = 6  # shard ranges up to this size are opened by name, not listed


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Log:
    """The change log: append-only JSON lines in segments named by their first sequence."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def segments(self) -> list[tuple[int, Path]]:
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if entry.name.endswith(".log"):
                    found.append((int(entry.name[:-4]), Path(entry.path)))
        return sorted(found)

    @staticmethod
    def segment_name(first_seq: int) -> str:
        return f"{first_seq:016d}.log"

    def tail_state(self) -> tuple[int, Path | None, list[dict[str, Any]]]:
        """(last committed seq, last segment, complete lines of an unfinished trailing batch).

        Reads backwards from the end and parses only what follows the last end marker, so a
        clean log costs one short read.
        """
        segments = self.segments()
        if not segments:
            return 0, None, []
        first, path = segments[-1]
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            window = _TAIL
            while True:
                pos = max(0, size - window)
                f.seek(pos)
                lines = f.read().split(b"\n")[:-1]  # the last piece is empty or torn
                if pos > 0:
                    lines = lines[1:]  # the first piece may start mid-line
                last_end = next(
                    (i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(b'{"e"')),
                    -1,
                )
                if last_end >= 0 or pos == 0:
                    break
                window *= 4
        head = json.loads(lines[last_end])["e"] if last_end >= 0 else first - 1
        return head, path, [json.loads(line) for line in lines[last_end + 1:] if line]


def _check_feed_position(cursor: str, position: tuple[int, int, int],
                         segments: list[tuple[int, Path]]) -> None:
    """InvalidCursorError unless ``position`` (seq, segment, offset) stands right after the
    end-of-batch line of ``seq`` in that segment, where every cursor this log issues stands.
    Costs one short read."""
    seq, seg_first, offset = position
    path = dict(segments).get(seg_first)
    if path is None:
        beyond = seg_first > max((f for f, _ in segments), default=0)
        raise unknown_position(cursor, "beyond the end of" if beyond else "between two entries of")
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if offset > size:
            raise unknown_position(cursor)
        start = max(0, offset - _END_MARKER_MAX)
        f.seek(start)
        before = f.read(offset - start)
    line = before[:-1].rpartition(b"\n")[2] if before.endswith(b"\n") else b""
    marker: object = None
    if line.startswith(b'{"e":'):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            marker = json.loads(line)["e"]
    if type(marker) is not int or marker != seq:
        raise unknown_position(cursor, "between two entries of")


class _FileTransaction(Transaction):
    """Stages whole shards as temp files; the commit logs and renames them."""

    def __init__(self, backend: FileBackend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.dirs: dict[SeriesKey, str] = {}
        self.states: list[tuple[str, str]] = []
        self.expected_states: dict[str, str | None] = {}
        # (key, shard) -> (temp file, final path, the shard's records by chunk)
        self.staged: dict[tuple[SeriesKey, int], tuple[str, str, dict[int, ChunkRecord]]] = {}
        self.written: dict[tuple[SeriesKey, int], ChunkMeta] = {}
        self.committed = []
        self.txid = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return self.backend._metas(self.backend._series_path(key))

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self.backend._read_series(key, lo, hi)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        per_shard = self.backend.per_shard
        groups: dict[tuple[SeriesKey, int], list[ChunkRecord]] = {}
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
            groups.setdefault((record.key, record.chunk // per_shard), []).append(record)
        tmp_dir = os.path.join(self.backend.root, "tmp")
        for (key, shard), group in groups.items():
            staged = self.staged.get((key, shard))
            if staged is None:
                directory = self.dirs.get(key)
                if directory is None:
                    directory = self.dirs[key] = str(self.backend._series_path(key))
                final = os.path.join(directory, shards.shard_name(shard))
                tmp = os.path.join(tmp_dir, f"{self.txid}-{len(self.staged)}.tmp")
                staged = (tmp, final, self.backend._load_shard(final))
                self.staged[(key, shard)] = staged
            tmp, final, current = staged
            for record in group:
                previous = current.get(record.chunk)
                version = (previous.meta.version if previous is not None else 0) + 1
                record = ChunkRecord(key, record.meta.committed(version, now), record.payload)
                current[record.chunk] = record
                self.written[(key, record.chunk)] = record.meta
            with open(tmp, "wb") as f:
                f.write(shards.encode_shard(key, current.values()))

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.expected_states[name] = expected
        tmp = os.path.join(self.backend.root, "tmp", f"{self.txid}-state-{len(self.states)}.tmp")
        with open(tmp, "w") as f:
            json.dump({"name": name, "value": value}, f)
        self.states.append((tmp, self.backend._state_path(name)))

    def discard(self) -> None:
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
        self.log = _Log(self.root / "log")
        self._pool: ThreadPoolExecutor | None = None
        self._manifest: dict[str, Any] = {}
        self._paths: dict[SeriesKey, Path] = {}

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
    def read_manifest(self) -> dict[str, Any] | None:
        try:
            with open(self.root / "manifest.json", "rb") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{self!r}: unreadable manifest: {exc}") from exc
        self._manifest = manifest
        if not self.read_only:
            self._recover_locked()
        return manifest  # type: ignore[no-any-return]

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        self.check_writable()
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("series", "log", "tmp", "locks"):
            (self.root / sub).mkdir(exist_ok=True)
        tmp = self.root / "tmp" / f"manifest-{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if self.fsync:
            _fsync_path(tmp)
        try:
            os.link(tmp, self.root / "manifest.json")  # fails if it exists: no clobbering
        except FileExistsError as exc:
            raise StoreExistsError(f"a store already exists at {self.root}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        if self.fsync:
            _fsync_path(self.root, directory=True)
        self._manifest = dict(manifest)

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

    def _load_shard(self, path: str) -> dict[int, ChunkRecord]:
        """Every record of the shard file at ``path`` by chunk (empty if there is none)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        return {r.chunk: r for r in shards.decode_records(data, path)[1]}

    def _shard_files(self, directory: Path | str, lo: int | None, hi: int | None
                     ) -> list[tuple[int, str]]:
        per_shard = self.per_shard
        first = None if lo is None else lo // per_shard
        last = None if hi is None else hi // per_shard
        if first is not None and last is not None and last - first < _DIRECT_READ_MAX:
            base = str(directory)
            return [(n, os.path.join(base, shards.shard_name(n))) for n in range(first, last + 1)]
        found = []
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            return []
        suffix = shards.SHARD_SUFFIX
        with entries:
            for entry in entries:
                name = entry.name
                if name.endswith(suffix):
                    shard = int(name[: -len(suffix)])
                    if (first is None or shard >= first) and (last is None or shard <= last):
                        found.append((shard, entry.path))
        found.sort()
        return found

    def _read_series(self, key: SeriesKey, lo: int | None, hi: int | None, *,
                     include_deleted: bool = False, directory: Path | None = None
                     ) -> list[ChunkRecord]:
        wanted = range(-(1 << 62) if lo is None else lo, (1 << 62) if hi is None else hi + 1)
        records = []
        for _shard, path in self._shard_files(directory or self._series_path(key), lo, hi):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            for record in shards.decode_records(data, path, wanted)[1]:
                if include_deleted or not record.meta.deleted:
                    records.append(record)
        return records

    @staticmethod
    def _read_index(path: str) -> shards.ShardIndex:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - shards.TAIL_READ))
            tail = f.read()
            start, length = shards.index_span(tail, size, path)
            if length + shards.TRAILER_SIZE > len(tail):  # a long index: read all of it
                f.seek(start)
                tail = f.read()
        return shards.decode_index(tail, size, path)

    # -- reads -----------------------------------------------------------------------------
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return self._read_series(key, lo, hi)

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
            records = self._read_series(key, lo, hi, directory=directory)
            if records:
                yield key, records

    def _metas(self, directory: Path, *, first_only: bool = False,
               include_deleted: bool = False) -> list[ChunkMeta]:
        metas = []
        for _shard, path in self._shard_files(directory, None, None):
            try:
                index = self._read_index(path)
            except FileNotFoundError:
                continue
            for meta in index.metas:
                if include_deleted or not meta.deleted:
                    metas.append(meta)
                    if first_only:
                        return metas
        return metas

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, directory in self._walk(where):
            metas = self._metas(directory)
            if metas:
                yield key, metas

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        for key, directory in self._walk(where):
            if self._metas(directory, first_only=True):
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

    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[Transaction]:
        self.check_writable()
        with contextlib.ExitStack() as stack:
            for stripe in sorted({self._stripe(k) for k in keys}):
                stack.enter_context(self._flock(f"stripe-{stripe:02d}.lock"))
            # A dead writer's logged batch must be rolled forward before this one reads the
            # shards it would rewrite, or the rewrite would undo it.
            if self.log.tail_state()[2]:
                self._recover_locked()
            tx = _FileTransaction(self, keys)
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
            head, segment, pending = self.log.tail_state()
            if pending:
                assert segment is not None
                self._recover(segment, pending)
                head, segment, pending = self.log.tail_state()
            for name, expected in tx.expected_states.items():
                if self.get_state(name) != expected:
                    raise stale_state(name)
            if segment is None or segment.stat().st_size > _SEGMENT_BYTES:
                segment = self.log.dir / self.log.segment_name(head + 1)
            changes = []
            root = str(self.root) + os.sep
            lines = []
            for i, ((key, chunk), meta) in enumerate(written, start=head + 1):
                changes.append(Change(key, chunk, meta.version, meta.deleted))
                lines.append(json.dumps({"s": i, "k": list(key), "c": chunk, "v": meta.version,
                                         "d": meta.deleted}, separators=(",", ":")))
            lines += [json.dumps({"t": os.path.basename(tmp), "p": final[len(root):]},
                                 separators=(",", ":")) for tmp, final in moves]
            begin = json.dumps({"b": len(lines), "x": tx.txid})
            self._append(segment, "\n".join([begin, *lines]) + "\n", sync=self.fsync)
            for tmp, final in moves:
                os.replace(tmp, final)
            if self.fsync:
                if len(directories) >= _SYNCFS_MIN_FILES and _SYNCFS is not None:
                    self._sync_files(sorted(directories))
                else:
                    self._parallel(lambda d: _fsync_path(d, directory=True), sorted(directories))
            self._append(segment, json.dumps({"e": head + len(written)}) + "\n", sync=False)
        tx.staged.clear()
        tx.states.clear()
        tx.written.clear()
        return changes

    # -- replication state -------------------------------------------------------------------
    def _state_path(self, name: str) -> str:
        return os.path.join(self.root, "sync", quote(name, safe="") + ".json")

    def get_state(self, name: str) -> str | None:
        try:
            with open(self._state_path(name), "rb") as f:
                return str(json.load(f)["value"])
        except FileNotFoundError:
            return None

    @staticmethod
    def _append(path: Path, text: str, *, sync: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = text.encode()
            while data:
                written = os.write(fd, data)
                data = data[written:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _recover(self, segment: Path, pending: list[dict[str, Any]]) -> None:
        """Finish or undo the batch a killed writer left at the log's tail (commit lock held).

        A batch whose entries are all in the log was fsynced before any rename, so it is rolled
        forward; a batch cut short was never renamed into place, so it is rolled back.
        """
        with open(segment, "rb+") as f:  # drop a torn final line
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
        begin = pending[0] if "b" in pending[0] else None
        entries = pending[1:] if begin is not None else pending
        if begin is not None and len(entries) == begin["b"]:
            for entry in entries:
                if "t" in entry:
                    tmp = self.root / "tmp" / entry["t"]
                    if tmp.exists():
                        os.replace(tmp, self.root / entry["p"])
            last = max((e["s"] for e in entries if "s" in e), default=None)
            if last is None:  # a batch of replication state only: the sequence did not move
                last = self.log.tail_state()[0]
            self._append(segment, json.dumps({"e": last}) + "\n", sync=self.fsync)
            return
        prefix = f"{begin['x']}-" if begin is not None else None
        with os.scandir(self.root / "tmp") as found:
            doomed = [e.path for e in found if prefix and e.name.startswith(prefix)]
        for path in doomed + [str(self.root / "tmp" / e["t"]) for e in entries if "t" in e]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with open(segment, "rb+") as f:  # cut the unfinished batch off the log
            data = f.read()
            end_marker = data.rfind(b'{"e":')
            f.truncate(data.index(b"\n", end_marker) + 1 if end_marker >= 0 else 0)

    def _recover_locked(self) -> None:
        locks = self.root / "locks"
        if not locks.is_dir():
            return
        with self._flock("commit.lock"):
            _head, segment, pending = self.log.tail_state()
            if pending:
                assert segment is not None
                self._recover(segment, pending)
            self._sweep_tmp()

    def _sweep_tmp(self) -> None:
        """Remove temp files of writers that died before logging their batch."""
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / "tmp") as entries:
            for entry in entries:
                pid = entry.name.split("-", 1)[0]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    # -- change feed -----------------------------------------------------------------------
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Pages end on batch boundaries (a page holds more than ``limit`` items only when one
        committed batch does); unfinished batches at the tail are not shown yet."""
        assert self.schema is not None
        store_id = str(self._manifest.get("store_id", ""))
        seq, seg_first, offset = (0, 0, 0) if cursor is None \
            else decode_cursor(cursor, store_id, 3)
        position = (seq, seg_first, offset)
        every = self.log.segments()
        if cursor is not None and position != (0, 0, 0):
            _check_feed_position(cursor, position, every)
        items: list[Change] = []
        segments = [(f, p) for f, p in every if f >= seg_first]
        for n, (first, path) in enumerate(segments):
            start = offset if first == seg_first else 0
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read()
            batch: list[Change] = []
            pos = start
            for raw in data.split(b"\n")[:-1]:
                pos += len(raw) + 1
                line = json.loads(raw)
                if "s" in line:
                    if line["s"] > seq:
                        key = tuple(line["k"])
                        if self.schema.matches(key, where):
                            batch.append(Change(key, line["c"], line["v"], line["d"]))
                elif "b" in line:
                    batch = []
                elif "e" in line:
                    if items and len(items) + len(batch) > limit:
                        return ChangePage(items, encode_cursor(store_id, position), True)
                    items += batch
                    batch = []
                    seq = max(seq, line["e"])
                    position = (seq, first, pos)
                    if len(items) >= limit:
                        more = pos < start + len(data) or n + 1 < len(segments)
                        return ChangePage(items, encode_cursor(store_id, position), more)
        return ChangePage(items, encode_cursor(store_id, position), False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        super().close()
