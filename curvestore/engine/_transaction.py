"""Optimistic transactions: stage in memory, then one segment and one log entry.

A transaction reads from the catalog snapshot it began with. ``commit`` writes every staged
payload into one new segment (``data/<random>.seg``), then creates the next log entry with
``put_if_absent``: that single conditional write is the commit point, so a commit is all or
nothing and two writers can never both take one sequence number. A writer that loses the race
folds the entries it missed: if one touched its series (or created a series it creates, or
changed a state it expects), the core re-runs its whole read-merge-write (ConflictError);
otherwise it renumbers its new series and tries the next number, keeping its segment.
Compaction entries never conflict with writers: they change how data is laid out, not what it
is. A failed commit removes its segment; a crash leaves an unreferenced segment that garbage
collection removes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.backend import Transaction, stale_state
from curvestore.core.batch import ChunkBatch
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.engine._catalog import Catalog, chunk_keys
from curvestore.engine._format import (
    APPEND,
    DELETED,
    INLINE_AT,
    ROW,
    Container,
    encode_container,
    log_key,
    segment_key,
)
from curvestore.errors import ConflictError

if TYPE_CHECKING:
    from curvestore.engine.backend import EngineBackend

__all__ = ["CHECKPOINT_EVERY", "CHECKPOINT_ROWS", "EngineTransaction"]

#: Entries after which a commit also writes a catalog checkpoint (compaction writes one too):
#: opening then folds at most this many entries after reading the checkpoint.
CHECKPOINT_EVERY = 128
#: ... or after entries holding this many rows and half as many as the catalog: opening a
#: store then merges at most that many rows into the checkpoint's (a bulk load of a million
#: series in ten commits is checkpointed twice or three times, not read back entry by entry),
#: and checkpoints written over a growing store add up to a few times its final one.
CHECKPOINT_ROWS = 100_000
#: A commit's payloads up to this size travel in its entry (format 2 on): one object
#: written instead of two, which halves a small commit's syncs on files (an update of a few
#: chunks costs its syncs more than its bytes); larger ones go to a segment, so that
#: reading the log (every handle's refresh) stays cheap.
INLINE_BYTES = 64 << 10


class EngineTransaction(Transaction):
    """A read-merge-write over ``keys`` (sorted, distinct) against one catalog snapshot."""

    def __init__(self, backend: EngineBackend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = list(keys)
        self.snapshot = backend.current()
        self._index = {k: i for i, k in enumerate(self.keys)}
        self._staged: list[ChunkBatch | list[ChunkRecord]] = []
        self._states: dict[str, tuple[str, str | None]] = {}

    # -- reads -----------------------------------------------------------------------------
    def _sid(self, key: SeriesKey) -> int:
        return int(self.snapshot.names.sids([key])[0])

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        sid = self._sid(key)
        if sid < 0:
            return []
        return self.backend.read_records(self.snapshot, key, sid, lo, hi)

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        sid = self._sid(key)
        if sid < 0:
            return []
        return self.backend.metas(self.snapshot, key, sid)

    def live_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sids = self.snapshot.names.sids(self.keys)
        known = np.flatnonzero(sids >= 0)
        empty = np.empty(0, dtype=np.int64)
        if not len(known):
            return empty, empty, empty
        rows = self.snapshot.rows_of(sids[known])
        if not len(rows):
            return empty, empty, empty
        by_sid = np.argsort(sids[known])
        series = known[by_sid][np.searchsorted(sids[known][by_sid], rows["sid"])]
        keys = chunk_keys(rows["sid"], rows["chunk"])
        firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        end = np.maximum.reduceat(rows["start"] + rows["length"], firsts)
        series, chunk = series[firsts], rows["chunk"][firsts]
        order = np.lexsort((chunk, series))
        return series[order], chunk[order], end[order]

    # -- staging ---------------------------------------------------------------------------
    def put(self, records: Sequence[ChunkRecord]) -> None:
        if records:
            self._staged.append(list(records))

    def put_batch(self, batch: ChunkBatch) -> None:
        if len(batch):
            self._staged.append(batch)

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self._states[name] = (value, expected)

    # -- commit ----------------------------------------------------------------------------
    def commit(self) -> list[Change]:
        now = time.time_ns()
        staged = _Staged(self.keys, self._index, self._staged, now)
        segment = None
        inline = (self.backend.format >= 2 and 0 < staged.size <= INLINE_BYTES)
        if staged.size and not inline:
            segment = segment_key()
            # written part by part (writev on files): joining a bulk commit's payloads first
            # would fault in as much fresh memory as the segment holds
            self.backend.objects.put_parts(segment, staged.payloads)
        try:
            while True:
                self._check_states(self.snapshot)
                header, rows, keys = staged.entry(self.snapshot, segment, now,
                                                  {n: v for n, (v, _) in self._states.items()},
                                                  inline=inline)
                try:
                    self.backend.objects.put_if_absent(
                        log_key(header["seq"]),
                        encode_container(header, rows,
                                         b"".join(staged.payloads) if inline else b""))
                except ConflictError:
                    self._rebase(staged)
                    continue
                committed = self.snapshot.fold(Container(header, rows))
                self.backend.adopt(committed)
                self.backend.conflicts = 0
                if (committed.pending >= CHECKPOINT_EVERY or committed.pending_rows
                        >= max(CHECKPOINT_ROWS, len(committed.rows) // 2)):
                    self.backend.checkpoint(committed)
                return _changes(keys, rows, header["seq"])
        except BaseException:
            if segment is not None:
                self.backend.discard(segment)
            raise

    def _check_states(self, catalog: Catalog) -> None:
        for name, (_value, expected) in self._states.items():
            if catalog.states.get(name) != expected:
                raise stale_state(name)

    def _rebase(self, staged: _Staged) -> None:
        """Move the snapshot past entries committed meanwhile, or raise ConflictError."""
        old = self.snapshot
        newer = self.backend.current()
        mine = old.names.sids(self.keys)
        created = set(self.keys) - {k for k, s in zip(self.keys, mine.tolist(), strict=True)
                                    if s >= 0}
        for entry in self.backend.entries(old.seq + 1, newer.seq):
            header = entry.header
            if header.get("kind") == "compact":
                continue
            if len(entry.rows) and np.isin(entry.rows["sid"], mine[mine >= 0]).any():
                raise self._conflict("another commit wrote these series meanwhile")
            new = header.get("new_series")
            if created and new and created.intersection(zip(*new["columns"], strict=True)):
                raise self._conflict("another commit created these series meanwhile")
        self.snapshot = newer

    def _conflict(self, why: str) -> ConflictError:
        """The error for a lost race, after a random pause growing with the handle's
        consecutive losses: writers of one series in lockstep would otherwise lose to each
        other every time (the core re-runs the transaction at once)."""
        backend = self.backend
        backend.conflicts += 1
        time.sleep(random.uniform(0, min(0.2, 0.001 * 2 ** min(backend.conflicts, 10))))
        return ConflictError(f"{why}; nothing was committed")


class _Staged:
    """Everything a transaction staged, as rows relative to its keys (sids are resolved per
    attempt, since a rebase renumbers new series), and its payloads (for one segment, or
    the entry)."""

    def __init__(self, keys: list[SeriesKey], index: dict[SeriesKey, int],
                 staged: list[ChunkBatch | list[ChunkRecord]], now: int) -> None:
        parts: list[np.ndarray] = []
        payloads: list[bytes] = []
        codecs: dict[str, int] = {}
        dtypes: dict[str, int] = {}
        self.key_index: list[np.ndarray] = []
        size = 0
        for item in staged:
            if isinstance(item, ChunkBatch):
                rows = np.zeros(len(item), dtype=ROW)
                rows["chunk"], rows["start"], rows["length"] = item.chunk, item.start, item.length
                rows["count"], rows["checksum"] = item.count, item.checksum
                rows["size"], rows["offset"] = item.size, item.offset + size
                rows["codec"] = codecs.setdefault(item.codec, len(codecs))
                rows["dtype"] = dtypes.setdefault(item.dtype, len(dtypes))
                rows["updated_at"] = now
                rows["flags"] = np.where(item.append, APPEND, 0)
                self.key_index.append(np.asarray(item.series, dtype=np.int64))
                payloads.append(item.data)
                size += len(item.data)
            else:
                rows = np.zeros(len(item), dtype=ROW)
                which = np.empty(len(item), dtype=np.int64)
                for i, record in enumerate(item):
                    meta = record.meta
                    which[i] = index[record.key]
                    rows[i] = (0, meta.chunk, 0, 0,
                               0 if meta.deleted else codecs.setdefault(meta.codec, len(codecs)),
                               0 if meta.deleted else dtypes.setdefault(meta.dtype, len(dtypes)),
                               size, len(record.payload), meta.start, meta.length, meta.count,
                               meta.checksum, meta.updated_at or now,
                               DELETED if meta.deleted else 0)
                    if record.payload:
                        payloads.append(record.payload)
                        size += len(record.payload)
                self.key_index.append(which)
            parts.append(rows)
        self.keys = keys
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=ROW)
        which = np.concatenate(self.key_index) if parts else np.empty(0, dtype=np.int64)
        # a chunk staged twice keeps the last one
        ck = (which << 32) | (rows["chunk"] + (1 << 31))
        order = np.lexsort((np.arange(len(ck)), ck))
        last = np.r_[ck[order][1:] != ck[order][:-1], True] if len(ck) else np.empty(0, bool)
        keep = order[last]
        self.rows, self.which = rows[keep], which[keep]
        self.codecs = sorted(codecs, key=codecs.__getitem__)
        self.dtypes = sorted(dtypes, key=dtypes.__getitem__)
        self.payloads = payloads
        self.size = size

    def entry(self, snapshot: Catalog, segment: str | None, now: int, states: dict[str, str],
              *, inline: bool = False) -> tuple[dict[str, Any], np.ndarray, list[SeriesKey]]:
        """The log entry for committing on ``snapshot``: header, rows, and the key of each
        row. New series get the next sids; tombstones of series never created are dropped.
        With ``inline``, the payloads travel in the entry itself (its rows point into it)."""
        sids = snapshot.names.sids(self.keys)
        rows, which = self.rows.copy(), self.which
        row_sid = sids[which]
        unknown = row_sid < 0
        dead = unknown & ((rows["flags"] & DELETED) != 0)
        if dead.any():
            rows, which, row_sid, unknown = (rows[~dead], which[~dead], row_sid[~dead],
                                             unknown[~dead])
        new_keys = np.unique(which[unknown])
        if inline:
            segment = log_key(snapshot.seq + 1)
            rows["offset"] += INLINE_AT
        header: dict[str, Any] = {
            "kind": "commit", "seq": snapshot.seq + 1, "time_ns": now,
            "objects": [segment] if segment else [], "codecs": self.codecs,
            "dtypes": self.dtypes}
        if len(new_keys):
            first = len(snapshot.names)
            sids = sids.copy()
            sids[new_keys] = np.arange(first, first + len(new_keys))
            row_sid = sids[which]
            columns = list(zip(*(self.keys[i] for i in new_keys.tolist()), strict=True))
            header["new_series"] = {"first": first, "columns": [list(c) for c in columns]}
        if states:
            header["states"] = states
        rows["sid"] = row_sid
        rows["version"] = snapshot.seq + 1
        order = np.lexsort((rows["chunk"], which))
        return header, rows[order], [self.keys[i] for i in which[order].tolist()]


def _changes(keys: list[SeriesKey], rows: np.ndarray, seq: int) -> list[Change]:
    deleted = ((rows["flags"] & DELETED) != 0).tolist()
    return [Change(k, c, seq, d)
            for k, c, d in zip(keys, rows["chunk"].tolist(), deleted, strict=True)]
