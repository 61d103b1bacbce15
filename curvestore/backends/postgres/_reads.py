"""Reads and scans of the PostgreSQL backend: single-series reads, streaming scans through a
server-side cursor, and ``fetch`` of any number of chunks in one query.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._base import PgBackendBase
from curvestore.backends.postgres._connect import translated
from curvestore.backends.postgres._ddl import CHUNK_MAX, CHUNK_MIN
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

if TYPE_CHECKING:
    import psycopg

    from curvestore.core.chunks import Piece


__all__ = ["PgReads"]

_SCAN_BATCH = 64  # rows (chunks with payload) per server-side cursor fetch
_META_BATCH = 5000


class PgReads(PgBackendBase):
    """Reads: one query per single-series read; ``scan``/``list_metas``/``list_series``
    stream through a server-side cursor in batches (bounded memory), prefetching the next
    batch while the caller decodes; ``fetch`` exports any number of chunks in one query."""

    def _read(self, conn: psycopg.Connection[Any], query: Any, key: SeriesKey,
              lo: int | None, hi: int | None) -> list[ChunkRecord]:
        q = self.queries
        with conn.cursor(binary=True) as cur:
            cur.execute(query, [*key, CHUNK_MIN if lo is None else lo,
                                CHUNK_MAX if hi is None else hi])
            return [q.record(row) for row in cur]

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        with self.pool.connection() as conn, translated(self.target, "reading"):
            return self._read(conn, self.queries.read, key, lo, hi)

    def read_pieces(self, key: SeriesKey, lo: int | None = None, hi: int | None = None, *,
                    first: int | None = None, last: int | None = None) -> list[Piece]:
        """The decoded pieces of ``key``'s chunks ``lo..hi``: each chunk row's and its
        fragments', leaving out those outside the window (``first``: the first offset
        wanted in chunk ``lo``, ``last`` the last in chunk ``hi``)."""
        q = self.queries
        bounds = [CHUNK_MIN if lo is None else lo, CHUNK_MAX if hi is None else hi]
        if (lo is None or first is None) and (hi is None or last is None):
            query, params = q.read, [*key, *bounds]  # nothing to leave out: the plainer query
        else:
            query = q.read_pieces
            params = [*q.window_params(q.frag.window(lo, hi, first, last)), *key, *bounds]
        with self.pool.connection() as conn, translated(self.target, "reading"), \
                conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            return [piece for row in cur for piece in q.pieces(row)]

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None, *, first: int | None = None,
                    last: int | None = None) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        """:meth:`read_pieces` of every series matching ``where``, ordered by key, streamed
        as :meth:`scan` is."""
        q = self.queries
        query, params = q.scan_pieces(where, lo, hi, q.frag.window(lo, hi, first, last))
        for key, parts in self._grouped(self._stream(query, params, _SCAN_BATCH), q.pieces):
            yield key, [piece for part in parts for piece in part]

    def _stream(self, query: Any, params: list[Any], batch: int) -> Iterator[tuple[Any, ...]]:
        """Rows of ``query`` through a server-side cursor, ``batch`` rows per round trip.

        After the first batch, a helper thread fetches the next batch while the caller
        decodes the current one (at most two batches wait in memory), so the server's
        work overlaps the client's."""
        with self.pool.connection() as conn, translated(self.target, "reading"), \
                conn.transaction(), conn.cursor("curvestore_scan", binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchmany(batch)
            if len(rows) < batch:
                yield from rows
                return
            ready: queue.Queue[Any] = queue.Queue(maxsize=1)
            stop = threading.Event()

            def fetch() -> None:
                try:
                    while not stop.is_set():
                        got = cur.fetchmany(batch)
                        ready.put(got)
                        if len(got) < batch:
                            return
                except BaseException as exc:  # handed to the reading thread
                    ready.put(exc)

            worker = threading.Thread(target=fetch, name="curvestore-pg-prefetch",
                                      daemon=True)
            worker.start()
            try:
                while True:
                    yield from rows
                    if len(rows) < batch:
                        return
                    item = ready.get()
                    if isinstance(item, BaseException):
                        raise item
                    rows = item
            finally:
                stop.set()
                while worker.is_alive():  # unblock a pending put, then let it end
                    with contextlib.suppress(queue.Empty):
                        ready.get(timeout=0.05)
                worker.join()

    def _grouped(self, rows: Iterator[tuple[Any, ...]], convert: Any
                 ) -> Iterator[tuple[SeriesKey, list[Any]]]:
        nk = self.queries.nk
        current: SeriesKey | None = None
        items: list[Any] = []
        for row in rows:
            key = tuple(row[:nk])
            if key != current:
                if items:
                    yield current, items  # type: ignore[misc]
                current, items = key, []
            items.append(convert(row))
        if items:
            yield current, items  # type: ignore[misc]

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        query, params = self.queries.scan(where, lo, hi)
        yield from self._grouped(self._stream(query, params, _SCAN_BATCH), self.queries.record)

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        query, params = self.queries.metas(where)
        yield from self._grouped(self._stream(query, params, _META_BATCH), self.queries.meta)

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        query, params = self.queries.series(where)
        for row in self._stream(query, params, _META_BATCH):
            yield tuple(row)

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        """The current rows of the named chunks in ONE query (a join against unnest()ed
        arrays of the key columns and chunk indexes), in the order of ``refs``: live
        records, stored tombstone rows as they are, and a tombstone record for a chunk that
        has no row at all."""
        if not refs:
            return []
        q = self.queries
        slots = list(dict.fromkeys(refs))
        with self.pool.connection() as conn, translated(self.target, "fetching chunks"), \
                conn.cursor(binary=True) as cur:
            cur.execute(q.fetch, q.slot_arrays(slots))
            found = {(r.key, r.chunk): r for r in map(q.record, cur)}
        out = []
        for key, chunk in refs:
            record = found.get((key, chunk))
            if record is None:
                record = ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True))
            elif record.meta.deleted and record.payload:
                record = ChunkRecord(key, record.meta)
            out.append(record)
        return out
