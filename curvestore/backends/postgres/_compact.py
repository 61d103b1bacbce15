"""Compaction of a PostgreSQL store: appended-day fragments folded into their chunk rows.

The series holding fragments in the chunk range are listed with one query, then compacted in
steps of :data:`_STEP` series, each step one database transaction under the same locks as a
writer of those series (:class:`~._batch.PgBatchTransaction`: over 256 series, the store-wide
lock), so a writer waits at most one step and never sees a half-folded chunk:

1. the step's keys go to the session's key table (one binary COPY);
2. one query returns every chunk of those series in the range that has fragments, with its
   fragments packed (:mod:`._fragment_sql`): one row per chunk, whatever the fragments;
3. each chunk is joined here (:func:`._pieces.join_record`: every part's checksum checked,
   the fragments laid after the chunk's values, encoded in the chunk's codec), at the
   chunk's version and time: a compaction changes no value, version or change-feed item;
4. one statement deletes the chunk rows and their fragments, one binary COPY writes the
   joined rows, then COMMIT.

A compaction killed at any point leaves every step either done or untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql

from curvestore.backends.postgres import _copybin as cb
from curvestore.backends.postgres._connect import translated
from curvestore.backends.postgres._ddl import CHUNK_MAX, CHUNK_MIN, META_COLUMNS
from curvestore.backends.postgres._pieces import Fragments, join_record

if TYPE_CHECKING:
    from curvestore.backends.postgres._backend import PostgresBackend
    from curvestore.core.records import ChunkRecord

__all__ = ["compact"]

#: Series per step (one transaction): bounds the memory of a step (a month chunk and a month
#: of raw days is ~35 KB a series) and how long a writer may wait for one.
_STEP = 2000


def compact(backend: PostgresBackend, where: Mapping[str, Any], lo: int | None,
            hi: int | None, *, progress: Callable[[int, int], None] | None = None
            ) -> dict[str, Any]:
    """Fold the fragments of matching series' chunks ``lo..hi`` into their chunk rows; see
    the module docstring. Returns what was done (chunks, fragments, bytes read and
    written, seconds); ``progress(done, total)`` counts chunks."""
    began = time.perf_counter()
    report = {"chunks": 0, "rows": 0, "bytes_read": 0, "bytes_written": 0, "seconds": 0.0}
    q = backend.queries
    if q.fragment_table is not None:
        lo = CHUNK_MIN if lo is None else lo
        hi = CHUNK_MAX if hi is None else hi
        keys, chunks = _fragmented(backend, where, lo, hi)
        total = int(chunks.sum())
        for at in range(0, len(keys), _STEP):
            _step(backend, keys[at:at + _STEP], lo, hi, report)
            if progress is not None:
                progress(int(chunks[:at + _STEP].sum()), total)
    report["seconds"] = time.perf_counter() - began
    return report


def _fragmented(backend: PostgresBackend, where: Mapping[str, Any], lo: int, hi: int
                ) -> tuple[list[tuple[Any, ...]], np.ndarray]:
    """The keys of the series matching ``where`` with fragments in chunks ``lo..hi``, and
    how many of their chunks have some."""
    q = backend.queries
    keys = sql.SQL(", ").join(sql.Identifier(n) for n in q.keys.names)
    chunk = sql.Identifier(q.prefix + "chunk_index")
    template = sql.SQL(
        "SELECT {keys}, count(DISTINCT {chunk}) FROM {frags} WHERE {chunk} BETWEEN %s AND %s"
        "{{where}} GROUP BY {keys} ORDER BY {keys}").format(keys=keys, frags=q.fragment_table,
                                                            chunk=chunk)
    query, params = q._where(template, where)
    with backend.pool.connection() as conn, translated(backend.target, "compacting"), \
            conn.cursor(binary=True) as cur:
        cur.execute(query, [lo, hi, *params])
        rows = cur.fetchall()
    nk = q.nk
    return [tuple(r[:nk]) for r in rows], np.asarray([r[nk] for r in rows], dtype=np.int64)


def _chunks_query(backend: PostgresBackend) -> str:
    """The chunks of the transaction's keys (numbered in the session's key table) in a
    range that have fragments, packed: (series index, columns as Queries.record reads)."""
    q = backend.queries
    bq = q.batch

    def own(name: str) -> sql.Identifier:
        return sql.Identifier(q.prefix + name)

    columns = sql.SQL(", ").join(
        [*(sql.SQL("t.{}").format(sql.Identifier(k)) for k in q.keys.names),
         *(sql.SQL("t.{}").format(own(n)) for n, _ in META_COLUMNS),
         sql.SQL("t.{}").format(own("payload"))])
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = k.{}").format(sql.Identifier(n), sql.Identifier(f"k{j}"))
        for j, n in enumerate(q.keys.names))
    return sql.SQL(
        "SELECT k.i, {columns}{packed} FROM {keys} AS k JOIN {table} AS t ON {match}"
        "{records} WHERE t.{chunk} BETWEEN %s AND %s AND NOT t.{deleted} "
        "AND f._fm IS NOT NULL ORDER BY k.i, t.{chunk}"
    ).format(columns=columns, packed=q.frag.packed_cols, keys=bq.keys_table, table=q.table,
             match=match, records=q.frag.records, chunk=own("chunk_index"),
             deleted=own("deleted")).as_string(None)


def _step(backend: PostgresBackend, keys: list[tuple[Any, ...]], lo: int, hi: int,
          report: dict[str, Any]) -> None:
    from curvestore.backends.postgres._batch import PgBatchTransaction

    q = backend.queries
    tx = PgBatchTransaction.begin(backend, keys)
    assert isinstance(tx, PgBatchTransaction)
    try:
        with translated(backend.target, "compacting"), tx.conn.cursor(binary=True) as cur:
            tx._send_keys(cur)
            cur.execute(_chunks_query(backend), [lo, hi])
            series: list[int] = []
            joined: list[ChunkRecord] = []
            for row in cur:
                nk = q.nk
                base = q.record(row[1:nk + 13])
                fragments = Fragments.unpack(*row[nk + 13:nk + 16])
                report["rows"] += 1 + (0 if fragments is None else len(fragments))
                report["bytes_read"] += len(base.payload) + (
                    0 if fragments is None else len(fragments.data))
                series.append(int(row[0]) - 1)
                joined.append(join_record(base, fragments))
            if joined:
                _replace(tx, cur, np.asarray(series, dtype=np.int64), joined, report)
        tx.commit()
    except BaseException:
        tx.abort()
        raise


def _replace(tx: Any, cur: Any, series: np.ndarray, joined: list[ChunkRecord],
             report: dict[str, Any]) -> None:
    """Delete the chunk rows and fragments of ``joined``'s chunks, then COPY ``joined``."""
    q = tx.backend.queries
    bq = q.batch
    n = len(joined)
    metas = [r.meta for r in joined]
    chunk = np.fromiter((m.chunk for m in metas), dtype=np.int64, count=n)
    with cur.copy(bq.copy_slots) as copy:
        copy.write(cb.copy_stream([cb.int8(series + 1), cb.int4(chunk),
                                   cb.boolean(np.zeros(n, dtype=bool)),
                                   cb.int8(np.arange(1, n + 1))], n))
    cur.execute(bq.take_whole)
    names = sorted({m.codec for m in metas} | {m.dtype for m in metas})
    number = {name: i for i, name in enumerate(names)}

    def column(values: Any) -> np.ndarray:
        return np.fromiter(values, dtype=np.int64, count=n)

    payloads = [r.payload for r in joined]
    keys = tx.key_columns()
    with cur.copy(q.copy_chunks) as copy:
        copy.write(cb.copy_stream(
            [*(k(series) for k in keys), cb.int4(chunk),
             cb.int4(column(m.start for m in metas)), cb.int4(column(m.length for m in metas)),
             cb.int4(column(m.count for m in metas)),
             cb.texts(names, column(number[m.codec] for m in metas)),
             cb.texts(names, column(number[m.dtype] for m in metas)),
             cb.int8(column(m.checksum for m in metas)), cb.int4(column(m.size for m in metas)),
             cb.int8(column(m.version for m in metas)),
             cb.int8(column(m.updated_at for m in metas)), cb.boolean(np.zeros(n, dtype=bool))],
            n, payloads))
    report["chunks"] += n
    report["bytes_written"] += sum(len(p) for p in payloads)
