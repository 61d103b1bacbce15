"""Batch transactions of the PostgreSQL backend: chunks as columns, a constant number of round
trips per commit, whatever the number of series.

In a store with a fragment table, fragments are COPYed into it as they are and chunks written
whole replace their row and fragments (:meth:`PgBatchTransaction._write_fragments`): nothing
stored is read back. The steps below are those of a store created before that table existed,
which joins each fragment to the chunk it extends.

The transaction's keys go once, by binary COPY, into a session table (:mod:`._batch_queries`),
and every statement names series by their index there. :meth:`PgBatchTransaction.live_chunks`
is then one query whose answer is one packed ``bytea`` read by numpy; ``read_chunks`` (the
chunks a frame update overlaps) one row-locking query. Everything staged, batches and plain
records alike, is kept as columns (:mod:`._rows`) and written at commit in four statements:

1. a binary COPY of the slots the commit writes (series index, chunk, whether a fragment) into
   a second session table;
2. ``COPY (DELETE ... RETURNING ...) TO STDOUT`` takes the rows the commit replaces: it
   streams back their versions (the new rows get version + 1, new chunks version 1, as the
   other commit paths assign them) and, for the fragments, the stored chunk they extend,
   checked and decoded here as it arrives (:mod:`._take`); the rows it deletes stay locked
   until the COMMIT, so no other writer can change them in between;
3. one binary COPY, built with numpy (:mod:`._copybin`), writes every row into the chunk
   table. Fragments are joined to their stored chunks (:mod:`._fragments`) slice by slice
   while the previous slices are on the wire, so the server's ingest runs beside the client's
   codec;
4. one binary COPY writes the change rows, in (key, chunk) order.

The database transaction then COMMITs: all or nothing, as for every commit of this backend
(locks, change feed and replication state are the ones of :mod:`._transaction`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.backends.postgres import _copybin as cb
from curvestore.backends.postgres._connect import translated
from curvestore.backends.postgres._fragments import StoredValues, join
from curvestore.backends.postgres._rows import Rows, slot_codes
from curvestore.backends.postgres._take import take
from curvestore.backends.postgres._transaction import PgTransaction, _copy_writer
from curvestore.core.records import Change, ChunkRecord, SeriesKey
from curvestore.errors import ConflictError, InvalidKeyError
from curvestore.registry import get_codec as _codecs

if TYPE_CHECKING:
    import psycopg

    from curvestore.backends.postgres._batch_queries import BatchQueries
    from curvestore.core.batch import ChunkBatch

__all__ = ["PgBatchTransaction"]

_DOING = "writing"
#: Rows per piece of the COPY stream: a piece is joined and encoded while the previous ones
#: are sent (a month chunk of 15-minute values is ~10 KB, so a piece is ~10 MB).
_SLICE = 1024
#: Fragments per piece of their COPY stream (a raw day of 15-minute values is 768 bytes).
_FRAGMENT_SLICE = 8192
#: A live chunk as :attr:`BatchQueries.live_chunks` packs it: (series index, from 1; chunk;
#: end of its stored span; version).
LIVE_DTYPE = np.dtype([("series", ">i8"), ("chunk", ">i4"), ("end", ">i4"),
                       ("version", ">i8")])


class PgBatchTransaction(PgTransaction):
    """A :class:`PgTransaction` that also takes chunks as columns (``put_batch``) and answers
    ``live_chunks``; see the module docstring. Plain ``put`` s are staged as columns too,
    so that a chunk staged twice, by either, keeps the last one."""

    def __init__(self, backend: Any, conn: psycopg.Connection[Any],
                 keys: Sequence[SeriesKey], release: Any) -> None:
        super().__init__(backend, conn, keys, release)
        self.parts: list[Rows] = []
        self._stamps = 0
        self._numbers: dict[SeriesKey, int] | None = None
        self._key_columns: list[Any] | None = None
        self._keys_sent = False
        self._bq: BatchQueries = backend.queries.batch
        #: slot codes and versions of the live chunks, as live_chunks found them
        self._live: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def session_tables(cls, backend: Any) -> list[tuple[str, Any]]:
        bq = backend.queries.batch
        return [*super().session_tables(backend), ("keys", bq.create_keys),
                ("slots", bq.create_slots)]

    # -- the transaction's keys, by index ----------------------------------------------------
    def key_columns(self) -> list[Any]:
        """Per key column, a function from series indexes to that column's COPY values."""
        if self._key_columns is None:
            out: list[Any] = []
            for j, kind in enumerate(self.backend.queries.keys.types):
                values = [k[j] for k in self.order]
                if kind == "str":
                    out.append(cb.TextPool(values).column)
                else:
                    column = np.asarray(values, dtype=np.int64)
                    out.append(lambda series, c=column: cb.int8(c[series]))
            self._key_columns = out
        return self._key_columns

    def _send_keys(self, cur: psycopg.Cursor[Any]) -> None:
        """COPY the transaction's keys, numbered from 1, into the session's key table (once
        per transaction: the table empties at commit)."""
        if self._keys_sent:
            return
        n = len(self.order)
        every = np.arange(n, dtype=np.int64)
        with cur.copy(self._bq.copy_keys) as copy:
            copy.write(cb.copy_stream([cb.int8(every + 1),
                                       *(k(every) for k in self.key_columns())], n))
        self._keys_sent = True

    def number(self, key: SeriesKey) -> int:
        if self._numbers is None:
            self._numbers = {k: i for i, k in enumerate(self.order)}
        found = self._numbers.get(key)
        if found is None:
            raise InvalidKeyError(f"series {key!r} is not part of this transaction (it was "
                                  "begun for other keys); nothing was committed", key)
        return found

    def _renumbering(self, keys: Sequence[SeriesKey]) -> np.ndarray:
        if keys is self.order or list(keys) == self.order:
            return np.arange(len(self.order), dtype=np.int64)
        return np.asarray([self.number(k) for k in keys], dtype=np.int64)

    # -- the BatchTransaction protocol -----------------------------------------------------
    def live_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with translated(self.backend.target, _DOING), self.conn.cursor(binary=True) as cur:
            self._send_keys(cur)
            cur.execute(self._bq.live_chunks)
            row = cur.fetchone()
        live = np.frombuffer((row and row[0]) or b"", dtype=LIVE_DTYPE)
        series = live["series"].astype(np.int64) - 1
        chunk = live["chunk"].astype(np.int64)
        order = np.lexsort((chunk, series))
        series, chunk = series[order], chunk[order]
        self._live = (slot_codes(series, chunk), live["version"].astype(np.int64)[order])
        return series, chunk, live["end"].astype(np.int64)[order]

    def read_chunks(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord | None]:
        """The live records of ``refs`` in one query, row-locked (as ``read`` locks them)."""
        if not refs:
            return []
        series = [self.number(k) + 1 for k, _ in refs]
        q = self.backend.queries
        with translated(self.backend.target, _DOING), self.conn.cursor(binary=True) as cur:
            self._send_keys(cur)
            cur.execute(self._bq.read_refs, [series, [c for _, c in refs]])
            found = {row[0]: q.record(row[1:]) for row in cur}
        return [found.get(i) for i in range(1, len(refs) + 1)]

    def put_batch(self, batch: ChunkBatch) -> None:
        # a fragment extends the stored chunk; one staged earlier in this transaction for the
        # same chunk is superseded by it, as any chunk staged twice
        self.parts.append(Rows.of_batch(batch, self._renumbering(batch.keys), self._stamp(),
                                        time.time_ns()))

    def put(self, records: Sequence[ChunkRecord]) -> None:
        if records:
            self.parts.append(Rows.of_records(records, self.number, self._stamp(),
                                              time.time_ns()))

    def _stamp(self) -> int:
        self._stamps += 1
        return self._stamps

    def _join(self, rows: Rows, which: np.ndarray, stored: StoredValues) -> None:
        """Replace the fragments ``which`` of ``rows`` by their joins with ``stored``."""
        if not len(which):
            return
        names = rows.names
        codec = {names[i] for i in rows.codec[which].tolist()}
        dtype = {names[i] for i in rows.dtype[which].tolist()}
        if len(codec) != 1 or len(dtype) != 1:  # a batch is of one codec and dtype
            raise ValueError("fragments of several codecs or dtypes in one batch")
        joined = join(rows.start[which], rows.length[which], rows.count[which],
                      [rows.payloads[i] for i in which.tolist()], codec.pop(), dtype.pop(),
                      stored, _codecs)
        rows.start[which] = joined.start
        rows.length[which] = joined.length
        rows.count[which] = joined.count
        rows.checksum[which] = joined.checksum
        rows.size[which] = [len(p) for p in joined.payloads]
        for i, payload in zip(which.tolist(), joined.payloads, strict=True):
            rows.payloads[i] = payload
        rows.append[which] = False

    # -- commit ----------------------------------------------------------------------------
    def write(self) -> list[Change]:
        """Write everything staged in three statements (see the module docstring)."""
        self.finish_copy()
        if not self.parts:
            return []
        rows = Rows.latest(self.parts)
        self.parts = []
        n = len(rows)
        if not n:
            return []
        if self.backend.queries.fragment_table is not None:
            return self._write_fragments(rows)
        q = self.backend.queries
        with self.conn.cursor(binary=True) as cur:
            self._send_keys(cur)
            with cur.copy(self._bq.copy_slots) as copy:
                copy.write(cb.copy_stream(
                    [cb.int8(rows.series + 1), cb.int4(rows.chunk), cb.boolean(rows.append),
                     cb.int8(np.arange(1, n + 1))], n))
            taken = take(cur, self._bq.take_rows, n, _codecs,
                         lambda row: self._describe(rows, row))
        version, extends = taken.version, taken.extends
        keys = self.key_columns()
        with self.conn.cursor(binary=True) as cur, \
                cur.copy(q.copy_chunks, writer=_copy_writer(cur)) as copy:
            for lo in range(0, n, _SLICE):
                hi = min(n, lo + _SLICE)
                piece = rows.take(np.arange(lo, hi))
                inside = (extends >= lo) & (extends < hi)
                self._join(piece, extends[inside] - lo, taken.stored.take(inside))
                copy.write(memoryview(cb.copy_stream(
                    [*(k(piece.series) for k in keys), cb.int4(piece.chunk),
                     cb.int4(piece.start), cb.int4(piece.length), cb.int4(piece.count),
                     cb.texts(piece.names, piece.codec), cb.texts(piece.names, piece.dtype),
                     cb.int8(piece.checksum), cb.int4(piece.size), cb.int8(version[lo:hi]),
                     cb.int8(piece.updated_at), cb.boolean(piece.deleted)],
                    hi - lo, piece.payloads, first=lo == 0, last=hi == n)))
            changes = cb.copy_stream([*(k(rows.series) for k in keys), cb.int4(rows.chunk),
                                      cb.int8(version), cb.boolean(rows.deleted)], n)
        with self.conn.cursor(binary=True) as cur, cur.copy(q.copy_changes) as copy:
            copy.write(changes)
        return self._changes(rows, version)

    def _changes(self, rows: Rows, version: np.ndarray) -> list[Change]:
        order = self.order
        out = [Change(order[s], c, v, d) for s, c, v, d in zip(
            rows.series.tolist(), rows.chunk.tolist(), version.tolist(), rows.deleted.tolist(),
            strict=True)]
        if any(a > b for a, b in itertools.pairwise(order)):  # keys not given in order
            out.sort(key=lambda c: (c.key, c.chunk))
        return out

    def _write_fragments(self, rows: Rows) -> list[Change]:
        """The commit of a store with a fragment table: fragments are COPYed into it as they
        are, at the version after their chunk's (read by :meth:`live_chunks` under the
        transaction's locks; the table's key on the version refuses a duplicate); rows that
        replace their chunk whole take its row and its fragments out (their newest version
        comes back), then are COPYed into the chunk table; then the change rows. Nothing
        stored is read back or decoded."""
        n = len(rows)
        q, bq = self.backend.queries, self._bq
        version = np.ones(n, dtype=np.int64)
        frag = rows.append
        whole = np.flatnonzero(~frag)
        keys = self.key_columns()
        with self.conn.cursor(binary=True) as cur:
            self._send_keys(cur)
            if len(whole):
                with cur.copy(self._bq.copy_slots) as copy:
                    copy.write(cb.copy_stream(
                        [cb.int8(rows.series[whole] + 1), cb.int4(rows.chunk[whole]),
                         cb.boolean(np.zeros(len(whole), dtype=bool)), cb.int8(whole + 1)],
                        len(whole)))
                cur.execute(bq.take_whole)
                found = cur.fetchone()
                taken = np.frombuffer((found and found[0]) or b"", dtype=">i8").reshape(-1, 2)
                version[taken[:, 0] - 1] += taken[:, 1]
            fragments = np.flatnonzero(frag)
            if len(fragments):
                version[fragments] = self._fragment_versions(rows, fragments)
                piece = rows.take(fragments)
                with cur.copy(bq.copy_fragments, writer=_copy_writer(cur)) as copy:
                    for lo in range(0, len(fragments), _FRAGMENT_SLICE):
                        hi = min(len(fragments), lo + _FRAGMENT_SLICE)
                        part = piece.take(np.arange(lo, hi))
                        copy.write(memoryview(cb.copy_stream(
                            [*(k(part.series) for k in keys), cb.int4(part.chunk),
                             cb.int8(version[fragments[lo:hi]]), cb.int4(part.start),
                             cb.int4(part.length), cb.int4(part.count),
                             cb.texts(part.names, part.codec), cb.texts(part.names, part.dtype),
                             cb.int8(part.checksum), cb.int4(part.size),
                             cb.int8(part.updated_at)],
                            hi - lo, part.payloads, first=lo == 0,
                            last=hi == len(fragments))))
            if len(whole):
                piece = rows.take(whole)
                with cur.copy(q.copy_chunks, writer=_copy_writer(cur)) as copy:
                    copy.write(memoryview(cb.copy_stream(
                        [*(k(piece.series) for k in keys), cb.int4(piece.chunk),
                         cb.int4(piece.start), cb.int4(piece.length), cb.int4(piece.count),
                         cb.texts(piece.names, piece.codec), cb.texts(piece.names, piece.dtype),
                         cb.int8(piece.checksum), cb.int4(piece.size), cb.int8(version[whole]),
                         cb.int8(piece.updated_at), cb.boolean(piece.deleted)],
                        len(whole), piece.payloads)))
            with cur.copy(q.copy_changes) as copy:
                copy.write(cb.copy_stream([*(k(rows.series) for k in keys), cb.int4(rows.chunk),
                                           cb.int8(version), cb.boolean(rows.deleted)], n))
        return self._changes(rows, version)

    def _fragment_versions(self, rows: Rows, fragments: np.ndarray) -> np.ndarray:
        """The version each fragment commits at: its chunk's, as :meth:`live_chunks` read
        it under this transaction's locks, plus one."""
        if self._live is None:
            self.live_chunks()
        assert self._live is not None
        codes, versions = self._live
        wanted = slot_codes(rows.series[fragments], rows.chunk[fragments])
        at = np.minimum(np.searchsorted(codes, wanted), max(len(codes) - 1, 0))
        if not len(codes) or (codes[at] != wanted).any():
            raise ConflictError("a fragment extends a chunk that is not stored (it was "
                                "deleted meanwhile); nothing was written")
        return versions[at] + 1

    def _describe(self, rows: Rows, row: int) -> str:
        return f"chunk {int(rows.chunk[row])} of series {self.order[int(rows.series[row])]}"
