"""The filesystem backend's transactions: a read-merge-write over a few series, under their
stripe locks, staged as whole-shard temp files and committed by one append to the log.

A transaction keeps the shards it reads until it writes them: ``put`` rewrites a shard from
the records ``read`` loaded, so an update reads each shard once. Nothing can change them in
between: every writer of these series holds their stripe locks, and a dead writer's logged
batch was rolled forward by :meth:`FileBackend.begin`, before the first read. For the same
reason a transaction reads the live files directly, without the seqlock readers go through
(:mod:`curvestore.backends._fsread`); the index checksum and the series, year and grid named
in it are checked as on every read, payload checksums by the core when it decodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.backends._fsread import NO_VIEW
from curvestore.core.backend import Transaction, stale_state
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey

if TYPE_CHECKING:
    from curvestore.backends.filesystem import FileBackend

__all__ = ["FileTransaction"]

_Shard = tuple[SeriesKey, int]


@dataclass(frozen=True)
class _Staged:
    """A shard to rename into place: its temp file, its final path and its records by chunk
    (as read, with this transaction's puts applied)."""

    temp: str
    final: str
    records: dict[int, ChunkRecord]


class FileTransaction(Transaction):
    """Holds the stripe locks of its series from :meth:`FileBackend.begin` until
    :meth:`commit` or :meth:`abort`, which release them whatever happens."""

    def __init__(self, backend: FileBackend, txid: str, locks: contextlib.ExitStack) -> None:
        self.backend = backend
        self.txid = txid
        self.locks = locks
        self.loaded: dict[_Shard, dict[int, ChunkRecord]] = {}  # shards as read, by chunk
        self.staged: dict[_Shard, _Staged] = {}
        self.written: dict[tuple[SeriesKey, int], ChunkMeta] = {}
        self.states: list[tuple[str, str]] = []  # (temp file, final path) of saved states
        self.expected_states: dict[str, str | None] = {}
        self.logged = False  # once the batch is in the log it is committed: keep its files

    # -- reads -----------------------------------------------------------------------------
    def _shard(self, key: SeriesKey, shard: int, path: str) -> dict[int, ChunkRecord]:
        """The shard's records by chunk as stored (not as this transaction's puts left them)."""
        records = self.loaded.get((key, shard))
        if records is None:
            records = self.backend._load_shard(path, key, shard)
            if (key, shard) not in self.staged:  # a put will take it over
                self.loaded[(key, shard)] = records
        return records

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        backend = self.backend
        out = []
        for shard, path in backend._shard_files(backend._series_path(key), lo, hi, NO_VIEW):
            records = self._shard(key, shard, path)
            out += [r for chunk, r in sorted(records.items()) if not r.meta.deleted
                    and (lo is None or chunk >= lo) and (hi is None or chunk <= hi)]
        return out

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        # the shard indexes only: a replace or a delete rewrites the shards without reading
        # their payloads again, an insert rarely finds any
        return self.backend._series_metas(key, self.backend._series_path(key))

    # -- writes ----------------------------------------------------------------------------
    def put(self, records: Sequence[ChunkRecord]) -> None:
        now = time.time_ns()
        backend = self.backend
        per_shard = backend.per_shard
        groups: dict[_Shard, list[ChunkRecord]] = {}
        for record in records:
            groups.setdefault((record.key, record.chunk // per_shard), []).append(record)
        tmp_dir = os.path.join(backend.root, "tmp")
        for (key, shard), group in groups.items():
            staged = self.staged.get((key, shard))
            if staged is None:
                final = os.path.join(backend._series_path(key), file_shards.shard_name(shard))
                temp = os.path.join(tmp_dir, f"{self.txid}-{len(self.staged)}.tmp")
                # the records read are taken over (a later read of the shard loads it again:
                # the transaction's reads do not see its own puts)
                stored = self.loaded.pop((key, shard), None)
                if stored is None:
                    stored = backend._load_shard(final, key, shard)
                staged = _Staged(temp, final, stored)
                self.staged[(key, shard)] = staged
            current = staged.records
            for record in group:
                previous = current.get(record.chunk)
                version = (previous.meta.version if previous is not None else 0) + 1
                record = ChunkRecord(key, record.meta.committed(version, now), record.payload)
                current[record.chunk] = record
                self.written[(key, record.chunk)] = record.meta
            with open(staged.temp, "wb") as f:
                f.write(file_shards.encode_shard(key, current.values(), backend.grid))

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.expected_states[name] = expected
        tmp = os.path.join(self.backend.root, "tmp", f"{self.txid}-state-{len(self.states)}.tmp")
        with open(tmp, "w") as f:
            json.dump({"name": name, "value": value}, f)
        self.states.append((tmp, self.backend._state_path(name)))

    # -- end -------------------------------------------------------------------------------
    def commit(self) -> list[Change]:
        try:
            return self._write()
        except BaseException:
            self.discard()
            raise
        finally:
            self.locks.close()

    def abort(self) -> None:
        try:
            self.discard()
        finally:
            self.locks.close()

    def discard(self) -> None:
        """Remove the temp files of a batch that did not reach the log (a failed unlink is
        left to the sweep of a later open: this runs while an error is being raised)."""
        if not self.logged:
            for tmp in [s.temp for s in self.staged.values()] + [t for t, _ in self.states]:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self._forget()

    def _forget(self) -> None:
        self.loaded.clear()
        self.staged.clear()
        self.states.clear()
        self.written.clear()

    def _write(self) -> list[Change]:
        """Log the batch (the commit point), rename its files into place, end it."""
        if not self.staged and not self.states:
            return []
        backend = self.backend
        moves = [(s.temp, s.final) for s in self.staged.values()] + self.states
        if backend.fsync:
            backend._sync_files([tmp for tmp, _final in moves])
        directories = {os.path.dirname(final) for _tmp, final in moves}
        for directory in directories:
            os.makedirs(directory, exist_ok=True)
        written = sorted(self.written.items(), key=lambda item: item[0])
        with backend._flock("commit.lock"):
            backend._check_manifest_current()
            tail = backend._finish_tail()
            head, segment = tail.head, tail.segment
            for name, expected in self.expected_states.items():
                if backend.get_state(name) != expected:
                    raise stale_state(name)
            if segment is None or tail.size > fslog.SEGMENT_BYTES:
                if segment is not None:  # changes the old segment's size: readers look again
                    fslog.append(segment, fslog.encode_line({"r": head + 1}), sync=False)
                segment = backend.log.dir / backend.log.segment_name(head + 1)
            changes = []
            root = str(backend.root) + os.sep
            lines = [fslog.encode_line({"b": len(written) + len(moves), "x": self.txid})]
            for i, ((key, chunk), meta) in enumerate(written, start=head + 1):
                changes.append(Change(key, chunk, meta.version, meta.deleted))
                lines.append(fslog.encode_line({"s": i, "k": list(key), "c": chunk,
                                                "v": meta.version, "d": meta.deleted}))
            lines += [fslog.encode_line({"t": os.path.basename(tmp), "p": final[len(root):]})
                      for tmp, final in moves]
            fslog.append(segment, "".join(lines), sync=backend.fsync)
            self.logged = True  # the commit point: from here on the batch only rolls forward
            for tmp, final in moves:
                os.replace(tmp, final)
            if backend.fsync:
                backend._sync_dirs(sorted(directories))
            # A failed end line (full disk) cut itself off: the batch stays committed and
            # readers see it; the next writer or read-write open writes the end line.
            with contextlib.suppress(OSError):
                fslog.append(segment, fslog.encode_line({"e": head + len(written)}), sync=False)
        self._forget()
        return changes
