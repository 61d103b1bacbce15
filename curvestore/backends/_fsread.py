"""The filesystem backend's read path: shards read consistently with the change log.

A batch becomes visible when its lines are in the log (its commit point), but its shards are
renamed into place one by one after that. Readers never see half of one:

* a committed batch whose end line is missing (its writer is renaming right now, or was
  killed) is found at the log's tail, and its shards are read from its temp files, or from
  their final paths once renamed (:class:`ReadView`);
* a read of one series is a seqlock on the log: renames happen only between two appends, so
  if the last segment's size is the same after the read as before it, every file read belongs
  to one log state; otherwise the read runs again (a few times, then under the commit lock,
  shared).

When no batch is pending this costs two ``stat`` calls per series read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.backends import _layout as layout
from curvestore.core.backend import bound_schema
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["NO_VIEW", "ReadView", "ShardReads"]

_T = TypeVar("_T")
_DIRECT_READ_MAX = 6  # shard ranges up to this size are opened by name, not listed
_OPTIMISTIC_READS = 3  # then a read waits for the commit lock (shared)


@dataclass(frozen=True)
class ReadView:
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



NO_VIEW = ReadView(None, -1)


class ShardReads:
    """The read half of :class:`~curvestore.backends.filesystem.FileBackend`."""

    root: Path
    series_dir: Path
    log: fslog.Log
    schema: KeySchema | None
    grid: str
    _manifest: dict[str, Any]
    _paths: dict[SeriesKey, Path]
    _view: ReadView

    def _series_path(self, key: SeriesKey) -> Path:
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) > 100_000:  # a cache, not a leak, on stores with many series
                self._paths.clear()
            path = self._paths[key] = self.series_dir.joinpath(
                *layout.series_parts(bound_schema(self.schema), key))
        return path

    @property
    def per_shard(self) -> int:
        return file_shards.shard_chunks(str(self._manifest.get("chunking", "month")))

    def _load_shard(self, path: str, key: SeriesKey, shard: int) -> dict[int, ChunkRecord]:
        """Every record of the live shard file at ``path`` by chunk (empty if there is none)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        index, records = file_shards.decode_records(data, path)
        file_shards.check_index(index, path, key, shard, self.per_shard, self.grid)
        return {r.chunk: r for r in records}

    # -- reads: consistent with the log ----------------------------------------------------
    def _current_view(self) -> ReadView:
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
        view = self._view = ReadView(tail.segment, tail.size, staged)
        return view

    def _view_holds(self, view: ReadView) -> bool:
        if view.segment is None:
            return view.size == 0 and not self.log.segments()
        try:
            return os.stat(view.segment).st_size == view.size
        except FileNotFoundError:
            return False

    def _consistent(self, read: Callable[[ReadView], _T]) -> _T:
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
    def _with_file(path: str, view: ReadView, read: Callable[[BinaryIO], _T]) -> _T | None:
        """``read`` applied to the pending batch's temp file for ``path`` when it stages one,
        else to ``path``; None when neither exists."""
        temp = view.temp_for(path) if view.staged else None
        for candidate in (path,) if temp is None else (temp, path):
            try:
                with open(candidate, "rb") as f:
                    return read(f)
            except FileNotFoundError:
                continue  # a temp file renamed since: the live file is the batch's
        return None

    @classmethod
    def _read_file(cls, path: str, view: ReadView) -> bytes | None:
        return cls._with_file(path, view, lambda f: f.read())

    def _shard_files(self, directory: Path | str, lo: int | None, hi: int | None,
                     view: ReadView) -> list[tuple[int, str]]:
        per_shard = self.per_shard
        first = None if lo is None else lo // per_shard
        last = None if hi is None else hi // per_shard
        base = str(directory)
        if first is not None and last is not None and last - first < _DIRECT_READ_MAX:
            return [(n, os.path.join(base, file_shards.shard_name(n)))
                    for n in range(first, last + 1)]
        found = {}
        suffix = file_shards.SHARD_SUFFIX
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(suffix):
                    found[entry.name] = entry.path
        for name in view.staged.get(base, ()):  # shards the pending batch creates
            found.setdefault(name, os.path.join(base, name))
        listed = []
        for name, path in found.items():
            shard = file_shards.parse_shard_name(name, path)
            if (first is None or shard >= first) and (last is None or shard <= last):
                listed.append((shard, path))
        listed.sort()
        return listed

    def _read_series(self, key: SeriesKey, lo: int | None, hi: int | None, view: ReadView,
                     directory: Path | None = None) -> list[ChunkRecord]:
        wanted = range(-(1 << 62) if lo is None else lo, (1 << 62) if hi is None else hi + 1)
        records = []
        per_shard, grid = self.per_shard, self.grid
        for shard, path in self._shard_files(directory or self._series_path(key), lo, hi, view):
            data = self._read_file(path, view)
            if data is None:
                continue
            index, found = file_shards.decode_records(data, path, wanted)
            file_shards.check_index(index, path, key, shard, per_shard, grid)
            records += [r for r in found if not r.meta.deleted]
        return records

    def _series_metas(self, key: SeriesKey, directory: Path, *, first_only: bool = False
                      ) -> list[ChunkMeta]:
        def read(view: ReadView) -> list[ChunkMeta]:
            metas = []
            for shard, path in self._shard_files(directory, None, None, view):
                index = self._read_index(path, view)
                if index is None:
                    continue
                file_shards.check_index(index, path, key, shard, self.per_shard, self.grid)
                for meta in index.metas:
                    if not meta.deleted:
                        metas.append(meta)
                        if first_only:
                            return metas
            return metas

        return self._consistent(read)

    @classmethod
    def _read_index(cls, path: str, view: ReadView) -> file_shards.ShardIndex | None:
        def read(f: BinaryIO) -> file_shards.ShardIndex:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - file_shards.TAIL_READ))
            tail = f.read()
            start, length = file_shards.index_span(tail, size, path)
            if length + file_shards.TRAILER_SIZE > len(tail):  # a long index: read it all
                f.seek(start)
                tail = f.read()
            return file_shards.decode_index(tail, size, path)

        return cls._with_file(path, view, read)

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return self._consistent(lambda view: self._read_series(key, lo, hi, view))

    def _walk(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, Path]]:
        """Series directories matching ``where``, in key order, pruning by key prefix."""
        schema = bound_schema(self.schema)
        names, types = schema.names, schema.types

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
            records = self._consistent(partial(self._read_series, key, lo, hi,
                                               directory=directory))
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
