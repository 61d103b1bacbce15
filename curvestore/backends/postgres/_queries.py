"""The SQL the PostgreSQL backend runs, built once per store from validated identifiers.

Identifiers go through :class:`psycopg.sql.Identifier`; every value is a query parameter. The
backend's own columns are named with the store's column prefix (see :mod:`._ddl`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from psycopg import sql

from curvestore.backends.postgres._ddl import (
    CHUNK_MAX,
    CHUNK_MIN,
    COLUMN_PREFIX,
    COPY_TYPES,
    META_COLUMNS,
    Names,
)
from curvestore.backends.postgres._fragment_sql import FragmentSQL
from curvestore.backends.postgres._pieces import Fragments, join_record, pieces_of
from curvestore.core.config import KeySchema
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

if TYPE_CHECKING:
    from curvestore.backends.postgres._batch_queries import BatchQueries
    from curvestore.core.chunks import Piece

__all__ = ["Queries"]

_UPDATED = [n for n, _ in META_COLUMNS if n not in ("chunk_index", "version")] + ["payload"]


class Queries:
    """Statements for one store (its names, key schema and column prefix) plus row -> record
    conversion."""

    def __init__(self, names: Names, keys: KeySchema, prefix: str = COLUMN_PREFIX,
                 fragments: bool = False) -> None:
        self.names, self.keys, self.prefix = names, keys, prefix
        self.nk = len(keys.names)
        ident = sql.Identifier

        def own(name: str) -> sql.Identifier:
            """One of the backend's own columns."""
            return ident(prefix + name)

        self.table = ident(names.schema, names.table)
        self.manifest = ident(names.schema, names.manifest)
        self.change_table = ident(names.schema, names.changes)
        self.fragment_table = ident(names.schema, names.fragments) if fragments else None
        digest = hashlib.blake2b(names.qualified.encode(), digest_size=8).hexdigest()
        self.stage = ident(f"curvestore_stage_{digest}")  # per session, emptied at commit
        key_ids = [ident(n) for n in keys.names]
        key_list = sql.SQL(", ").join(key_ids)
        meta_list = sql.SQL(", ").join(own(n) for n, _ in META_COLUMNS)
        self.key_list = key_list
        self.frag = FragmentSQL(self.fragment_table, key_ids, own)
        frag = self.frag
        self.copy_types = [("text" if t == "str" else "int8") for t in keys.types]
        self.copy_types += list(COPY_TYPES)
        all_cols = sql.SQL("{}, {}, {}").format(key_list, meta_list, own("payload"))
        meta_cols = sql.SQL("{}, {}").format(key_list, meta_list)
        self.key_match = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(k) for k in key_ids)
        range_match = sql.SQL("NOT {deleted} AND {chunk} BETWEEN %s AND %s").format(
            deleted=own("deleted"), chunk=own("chunk_index"))

        def fmt(text: str, **parts: Any) -> sql.Composed:
            return sql.SQL(text).format(
                table=self.table, cols=all_cols, meta=meta_cols, keys=key_list,
                packed=frag.packed_cols, records=frag.records, pieces=frag.pieces,
                metas=frag.metas, whole=sql.SQL("{}, {}").format(key_list, frag.meta_cols),
                t=sql.Identifier("t"),
                key_match=self.key_match, range=range_match, chunk=own("chunk_index"),
                deleted=own("deleted"), version=own("version"), **parts)

        # reads of records: each chunk row with its fragments packed (._fragment_sql)
        self.read = fmt("SELECT {cols}{packed} FROM {table} AS {t}{records} WHERE {key_match} "
                        "AND {range} ORDER BY {chunk}")
        # inside a transaction: tombstones too, so the commit knows which rows exist
        self.read_for_update = fmt("SELECT {cols}{packed} FROM {table} AS {t}{records} "
                                   "WHERE {key_match} AND {chunk} BETWEEN %s AND %s "
                                   "ORDER BY {chunk} FOR UPDATE OF {t}")
        # reads of pieces: fragments outside the window left out, and the chunk row's
        # payload when it is outside too (parameters: the window twice, then the read's)
        pieces_cols = sql.SQL("{}, {}, CASE WHEN {} THEN NULL ELSE {} END").format(
            key_list, meta_list, frag.base_outside, own("payload"))
        self.read_pieces = fmt("SELECT {pcols}{packed} FROM {table} AS {t}{pieces} WHERE "
                               "{key_match} AND {range} ORDER BY {chunk}", pcols=pieces_cols)
        self._scan_pieces = fmt("SELECT {pcols}{packed} FROM {table} AS {t}{pieces} WHERE "
                                "{range}{{where}} ORDER BY {keys}, {chunk}", pcols=pieces_cols)
        unnest = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL("text" if t == "str" else "bigint"))
            for t in keys.types)
        self.metas_of_keys = fmt(
            "SELECT {whole} FROM {table} AS {t} JOIN unnest({unnest}) AS k({keys}) "
            "USING ({keys}){metas} ORDER BY {keys}, {chunk}",
            unnest=unnest)  # tombstones too, as above
        self._scan = fmt("SELECT {cols}{packed} FROM {table} AS {t}{records} WHERE "
                         "{range}{{where}} ORDER BY {keys}, {chunk}")
        self._metas = fmt("SELECT {whole} FROM {table} AS {t}{metas} WHERE NOT "
                          "{t}.{deleted}{{where}} ORDER BY {keys}, {chunk}")
        self._series = fmt("SELECT DISTINCT {keys} FROM {table} WHERE NOT {deleted}{{where}} "
                           "ORDER BY {keys}")
        self.create_stage = sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING STORAGE) "
            "ON COMMIT DELETE ROWS").format(self.stage, self.table)
        self.copy_stage = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self.stage, all_cols)
        self.copy_chunks = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self.table, all_cols)
        slot_unnest = sql.SQL("{}, %s::int4[]").format(unnest)
        self.existing = fmt(
            "SELECT {keys}, {chunk} FROM {table} JOIN unnest({slot_unnest}) "
            "AS s({keys}, {chunk}) USING ({keys}, {chunk})", slot_unnest=slot_unnest)
        stage_match = sql.SQL(" AND ").join(
            sql.SQL("t.{c} = s.{c}").format(c=c) for c in [*key_ids, own("chunk_index")])
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = s.{c}").format(c=own(c)) for c in _UPDATED)
        chunk_id, version_id = own("chunk_index"), own("version")
        returning = sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in key_ids)
        if self.fragment_table is None:
            self.update_from_stage = sql.SQL(
                "UPDATE {table} AS t SET {updates}, {version} = t.{version} + 1 FROM {stage} "
                "AS s WHERE {match} RETURNING {returning}, t.{chunk}, t.{version}"
            ).format(table=self.table, updates=updates, stage=self.stage, match=stage_match,
                     returning=returning, chunk=chunk_id, version=version_id)
        else:
            # the staged chunks replace their fragments too: those go, and the new version
            # follows the newest of the row's and theirs
            slot = sql.SQL(", ").join([*key_ids, chunk_id])
            self.update_from_stage = sql.SQL(
                "WITH gone AS (DELETE FROM {frags} AS f USING {stage} AS s WHERE {fmatch} "
                "RETURNING {f_slot}, f.{version}), "
                "top AS (SELECT {slot}, max({version}) AS _v FROM gone GROUP BY {slot}) "
                "UPDATE {table} AS t SET {updates}, {version} = greatest(t.{version}, s._v) + 1 "
                "FROM (SELECT * FROM {stage} LEFT JOIN top USING ({slot})) AS s "
                "WHERE {match} RETURNING {returning}, t.{chunk}, t.{version}"
            ).format(frags=self.fragment_table, stage=self.stage,
                     fmatch=sql.SQL(" AND ").join(sql.SQL("f.{c} = s.{c}").format(c=c)
                                                  for c in [*key_ids, chunk_id]),
                     f_slot=sql.SQL(", ").join(sql.SQL("f.{}").format(c)
                                               for c in [*key_ids, chunk_id]),
                     version=version_id, slot=slot, table=self.table, updates=updates,
                     match=stage_match, returning=returning, chunk=chunk_id)
        # the current rows (tombstones too) of a list of (key, chunk) slots, in one query
        self.fetch = fmt(
            "SELECT {cols}{packed} FROM {table} AS {t} JOIN unnest({slot_unnest}) "
            "AS s({keys}, {chunk}) USING ({keys}, {chunk}){records}", slot_unnest=slot_unnest)
        self.sync_state = ident(names.schema, names.sync_state)
        self.get_state = sql.SQL("SELECT value FROM {} WHERE name = %s").format(self.sync_state)
        # compare-and-set: the row lock makes a concurrent setter wait, then re-check the
        # value it committed (READ COMMITTED re-evaluates the WHERE), so one of them matches
        self.insert_state = sql.SQL(
            "INSERT INTO {} (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
        ).format(self.sync_state)
        self.update_state = sql.SQL(
            "UPDATE {} SET value = %s WHERE name = %s AND value = %s").format(self.sync_state)
        change_cols = sql.SQL("{}, {}, {}, {}").format(
            key_list, own("chunk_index"), own("version"), own("deleted"))
        self.copy_changes = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self.change_table, change_cols)
        self.change_types = [*self.copy_types[:self.nk], "int4", "int8", "bool"]
        # a small commit's statements, sent in one pipeline instead of COPYs (typed
        # placeholders: psycopg's binary dumpers then need no guess)
        def typed(types: list[str]) -> sql.Composable:
            return sql.SQL(", ").join(sql.SQL("%s::" + t) for t in types)

        own_columns = [*(n for n, _ in META_COLUMNS), "payload"]  # after the keys in a row
        self._updated_positions = [self.nk + own_columns.index(c) for c in _UPDATED]
        self.insert_chunk = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.table, all_cols, typed(self.copy_types))
        self.update_chunk = sql.SQL(
            "UPDATE {table} SET {updates}, {version} = %s::int8 WHERE {key_match} "
            "AND {chunk} = %s::int4 RETURNING {version}").format(
            table=self.table, key_match=self.key_match, version=own("version"),
            chunk=own("chunk_index"),
            updates=sql.SQL(", ").join(
                sql.SQL("{} = %s::" + self.copy_types[i]).format(own(c))
                for c, i in zip(_UPDATED, self._updated_positions, strict=True)))
        self.insert_change = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.change_table, change_cols, typed(self.change_types))
        # a chunk rewritten whole drops its fragments (nothing to do without the table)
        self.drop_fragments = None if self.fragment_table is None else sql.SQL(
            "DELETE FROM {} WHERE {} AND {} = %s::int4").format(
            self.fragment_table, self.key_match, chunk_id).as_string(None)
        self._feed = sql.SQL(
            "SELECT w.xmin::text::bigint, c.* FROM "
            "(SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) AS w "
            "LEFT JOIN LATERAL (SELECT {txid}::text::bigint, {seq}, {change_cols} "
            "FROM {changes} WHERE {txid} < w.xmin AND ({txid}, {seq}) > (%s::text::xid8, %s)"
            "{{where}} ORDER BY {txid}, {seq} LIMIT %s) AS c ON true"
        ).format(change_cols=change_cols, changes=self.change_table, txid=own("txid"),
                 seq=own("seq"))

        for name in ("read", "read_for_update", "read_pieces", "metas_of_keys", "create_stage",
                     "copy_stage", "copy_chunks", "existing", "update_from_stage",
                     "copy_changes", "fetch", "get_state", "insert_state", "update_state",
                     "insert_chunk", "update_chunk", "insert_change"):
            # rendered once: psycopg then caches their parsing instead of re-composing
            setattr(self, name, getattr(self, name).as_string(None))

    @cached_property
    def batch(self) -> BatchQueries:
        """The statements of batch commits and summaries (:mod:`._batch_queries`)."""
        from curvestore.backends.postgres._batch_queries import BatchQueries

        return BatchQueries(self)

    # -- filters ---------------------------------------------------------------------------
    def _where(self, template: sql.Composed, where: Mapping[str, Any]
               ) -> tuple[sql.Composed, list[Any]]:
        """Fill a template's ``{where}`` slot with ``AND key = %s`` for each filtered key."""
        names = [n for n in self.keys.names if n in where]
        clause = sql.SQL("").join(
            sql.SQL(" AND {} = %s").format(sql.Identifier(n)) for n in names)
        return sql.SQL(template.as_string(None)).format(where=clause), [where[n] for n in names]

    def scan(self, where: Mapping[str, Any], lo: int | None, hi: int | None
             ) -> tuple[sql.Composed, list[Any]]:
        query, params = self._where(self._scan, where)
        return query, [CHUNK_MIN if lo is None else lo, CHUNK_MAX if hi is None else hi,
                       *params]

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None, hi: int | None,
                    window: list[int]) -> tuple[sql.Composed, list[Any]]:
        query, params = self._where(self._scan_pieces, where)
        return query, [*self.window_params(window), CHUNK_MIN if lo is None else lo,
                       CHUNK_MAX if hi is None else hi, *params]

    def window_params(self, window: list[int]) -> list[int]:
        """The parameters a read of pieces takes before its own: the window for the chunk
        row's payload, then for the fragments (a store without them has no such join)."""
        return [*window, *window] if self.fragment_table is not None else window

    def metas(self, where: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
        return self._where(self._metas, where)

    def series(self, where: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
        return self._where(self._series, where)

    def feed(self, where: Mapping[str, Any], txid: int, seq: int, limit: int
             ) -> tuple[sql.Composed, list[Any]]:
        query, params = self._where(self._feed, where)
        return query, [str(txid), seq, *params, limit]

    # -- rows ------------------------------------------------------------------------------
    def record(self, row: tuple[Any, ...]) -> ChunkRecord:
        """A row of a read of records: the chunk row, its fragments joined (._pieces)."""
        nk = self.nk
        record = ChunkRecord(tuple(row[:nk]), self.meta(row), row[nk + 11])
        if len(row) > nk + 12 and row[nk + 12] is not None:
            return join_record(record, Fragments.unpack(*row[nk + 12:nk + 15]))
        return record

    def pieces(self, row: tuple[Any, ...]) -> list[Piece]:
        """A row of a read of pieces: the chunk row's piece (unless left out) and its
        fragments' (._pieces)."""
        nk = self.nk
        key, meta = tuple(row[:nk]), self.meta(row)
        payload = row[nk + 11]
        record = None if payload is None else ChunkRecord(key, meta, payload)
        return pieces_of(record, key, meta.chunk, Fragments.unpack(*row[nk + 12:nk + 15]))

    def meta(self, row: tuple[Any, ...]) -> ChunkMeta:
        nk = self.nk
        return ChunkMeta(row[nk], row[nk + 1], row[nk + 2], row[nk + 3], row[nk + 4],
                         row[nk + 5], row[nk + 6], row[nk + 7], row[nk + 8], row[nk + 9],
                         row[nk + 10])

    def copy_row(self, record: ChunkRecord, now: int) -> tuple[Any, ...]:
        m = record.meta
        return (*record.key, m.chunk, m.start, m.length, m.count, m.codec, m.dtype, m.checksum,
                m.size, 1, m.updated_at or now, m.deleted, record.payload)

    def update_params(self, record: ChunkRecord, now: int, version: int) -> list[Any]:
        """Parameters of :attr:`update_chunk` rewriting the slot's row as ``record``."""
        row = self.copy_row(record, now)
        return [*(row[i] for i in self._updated_positions), version, *record.key, record.chunk]

    def key_arrays(self, keys: list[SeriesKey]) -> list[list[Any]]:
        return [[k[i] for k in keys] for i in range(self.nk)]

    def slot_arrays(self, slots: list[tuple[SeriesKey, int]]) -> list[list[Any]]:
        return [*self.key_arrays([s[0] for s in slots]), [s[1] for s in slots]]
