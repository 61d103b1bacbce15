"""The SQL of the PostgreSQL backend's columnar paths: batch commits and summaries.

Series are named by their position in a transaction's key list. A batch transaction COPYs its
keys once into a session table (``curvestore_keys_*``: the index and the key values) and the
rows it replaces into another (``curvestore_slots_*``: series index, chunk, whether a fragment),
both binary COPYs built with numpy and both emptied at commit; statements join them, so their
text never grows with the batch and no value is bound one by one. Results that only feed
numpy come back packed (``int8send``/``int4send`` concatenated by ``string_agg``) and are read
with ``numpy.frombuffer``: no row tuple per chunk. The aliases inside the statements (``k0``,
``i`` ...) are qualified everywhere, so no key name can clash with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from psycopg import sql

from curvestore.backends.postgres._ddl import FRAGMENT_COLUMNS, META_COLUMNS

if TYPE_CHECKING:
    from curvestore.backends.postgres._queries import Queries

__all__ = ["BatchQueries"]


class BatchQueries:
    """The statements of one store's batch commits and summaries (see the module docstring)."""

    def __init__(self, q: Queries) -> None:
        self.q = q
        prefix = q.prefix

        def own(name: str) -> sql.Identifier:
            return sql.Identifier(prefix + name)

        def rendered(composed: sql.Composable) -> str:
            return composed.as_string(None)

        digest = hashlib.blake2b(q.names.qualified.encode(), digest_size=8).hexdigest()
        keys_table = sql.Identifier(f"curvestore_keys_{digest}")
        self.keys_table = keys_table
        slots_table = sql.Identifier(f"curvestore_slots_{digest}")
        key_ids = [sql.Identifier(n) for n in q.keys.names]
        aliases = [sql.Identifier(f"k{j}") for j in range(q.nk)]
        alias_list = sql.SQL(", ").join(aliases)
        key_types = [sql.SQL('text COLLATE "C"' if t == "str" else "bigint")
                     for t in q.keys.types]
        self.create_keys = rendered(sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (i bigint NOT NULL, {}) ON COMMIT DELETE ROWS"
        ).format(keys_table, sql.SQL(", ").join(
            sql.SQL("{} {} NOT NULL").format(a, t)
            for a, t in zip(aliases, key_types, strict=True))))
        self.create_slots = rendered(sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (i bigint NOT NULL, c integer NOT NULL, "
            "frag boolean NOT NULL, row bigint NOT NULL) ON COMMIT DELETE ROWS"
        ).format(slots_table))
        self.copy_keys = rendered(sql.SQL("COPY {} (i, {}) FROM STDIN (FORMAT BINARY)").format(
            keys_table, alias_list))
        self.copy_slots = rendered(sql.SQL(
            "COPY {} (i, c, frag, row) FROM STDIN (FORMAT BINARY)").format(slots_table))

        def matching(left: str, right: str) -> sql.Composable:
            return sql.SQL(" AND ").join(
                sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), key, sql.Identifier(right),
                                                alias)
                for key, alias in zip(key_ids, aliases, strict=True))

        chunk, start, length = own("chunk_index"), own("start_offset"), own("length")
        deleted, version = own("deleted"), own("version")
        frag_table = q.fragment_table
        # packed as ._batch.LIVE_DTYPE reads it: a chunk's stored end and version are its
        # last fragment's when it has some (a fragment starts after everything before it)
        last: sql.Composable
        if frag_table is None:
            last = sql.SQL("")
            end = sql.SQL("t.{} + t.{}").format(start, length)
            newest = sql.SQL("t.{}").format(version)
        else:
            last = sql.SQL(
                " LEFT JOIN LATERAL (SELECT f.{start} + f.{length} AS _end, f.{version} AS _v "
                "FROM {frags} AS f WHERE {match} AND f.{chunk} = t.{chunk} "
                "ORDER BY f.{version} DESC LIMIT 1) AS f ON true").format(
                start=start, length=length, version=version, frags=frag_table,
                match=sql.SQL(" AND ").join(sql.SQL("f.{k} = t.{k}").format(k=k)
                                            for k in key_ids), chunk=chunk)
            end = sql.SQL("coalesce(f._end, t.{} + t.{})").format(start, length)
            newest = sql.SQL("greatest(t.{}, f._v)").format(version)
        self.live_chunks = rendered(sql.SQL(
            "SELECT string_agg(int8send(k.i) || int4send(t.{chunk}) || int4send({end}) "
            "|| int8send({newest}), ''::bytea) "
            "FROM {keys} AS k JOIN {table} AS t ON {match}{last} WHERE NOT t.{deleted}"
        ).format(chunk=chunk, end=end, newest=newest, keys=keys_table, table=q.table,
                 match=matching("t", "k"), last=last, deleted=deleted))
        slot_rows = sql.SQL("SELECT {}, r.c, r.row FROM {} AS r JOIN {} AS k ON k.i = r.i").format(
            sql.SQL(", ").join(sql.SQL("k.{}").format(a) for a in aliases), slots_table,
            keys_table)
        if frag_table is not None:
            # a store with fragments: the rows a commit replaces whole go, with their
            # fragments; returned packed, per commit row: the newest version it had
            self.take_whole = rendered(sql.SQL(
                "WITH s AS ({slot_rows}), "
                "gone AS (DELETE FROM {frags} AS f USING s WHERE {fmatch} AND f.{chunk} = s.c "
                "RETURNING s.row, f.{version} AS v), "
                "taken AS (DELETE FROM {table} AS t USING s WHERE {tmatch} AND t.{chunk} = s.c "
                "RETURNING s.row, t.{version} AS v) "
                "SELECT string_agg(int8send(a.row) || int8send(a.v), ''::bytea) FROM "
                "(SELECT u.row, max(u.v) AS v FROM (SELECT * FROM gone UNION ALL "
                "SELECT * FROM taken) AS u GROUP BY u.row) AS a"
            ).format(slot_rows=slot_rows, frags=frag_table, fmatch=matching("f", "s"),
                     chunk=chunk, version=version, table=q.table, tmatch=matching("t", "s")))
            self.copy_fragments = rendered(sql.SQL(
                "COPY {} ({}, {}) FROM STDIN (FORMAT BINARY)").format(
                frag_table, sql.SQL(", ").join(key_ids),
                sql.SQL(", ").join(own(n) for n, _ in FRAGMENT_COLUMNS)))
        # the rows a commit replaces, gone (it COPYs their successors), streamed back with
        # what the commit needs of them: the version, and the stored chunk a fragment
        # extends (the field order is the one ._take parses)
        returned = sql.SQL(", ").join(
            sql.SQL("t.{}").format(own(n)) for n in (
                "version", "deleted", "start_offset", "length", "valid_count", "checksum",
                "size", "codec", "dtype"))
        self.take_rows = rendered(sql.SQL(
            "COPY (DELETE FROM {table} AS t USING (SELECT {k_aliases}, r.c, r.frag, r.row "
            "FROM {slots} AS r JOIN {keys} AS k ON k.i = r.i) AS s "
            "WHERE {match} AND t.{chunk} = s.c "
            "RETURNING s.row, {returned}, "
            "CASE WHEN s.frag AND NOT t.{deleted} THEN t.{payload} END"
            ") TO STDOUT (FORMAT BINARY)"
        ).format(table=q.table, slots=slots_table, keys=keys_table, match=matching("t", "s"),
                 chunk=chunk, returned=returned, deleted=deleted, payload=own("payload"),
                 k_aliases=sql.SQL(", ").join(sql.SQL("k.{}").format(a) for a in aliases)))
        # the live rows of (series index, chunk) pairs given as arrays, row-locked as
        # PgTransaction.read locks them; columns in the order Queries.record reads
        columns = sql.SQL(", ").join(
            [*(sql.SQL("t.{}").format(k) for k in key_ids),
             *(sql.SQL("t.{}").format(own(n)) for n, _ in META_COLUMNS),
             sql.SQL("t.{}").format(own("payload"))])
        self.read_refs = rendered(sql.SQL(
            "SELECT r.row, {columns}{packed} FROM unnest(%s::int8[], %s::int4[]) WITH "
            "ORDINALITY AS r(i, c, row) JOIN {keys} AS k ON k.i = r.i JOIN {table} AS t ON "
            "{match} AND t.{chunk} = r.c{records} WHERE NOT t.{deleted} FOR UPDATE OF t"
        ).format(columns=columns, packed=q.frag.packed_cols, keys=keys_table, table=q.table,
                 match=matching("t", "k"), chunk=chunk, records=q.frag.records,
                 deleted=deleted))
        # per series: the first chunk with its start and the last with its stop, as min /
        # max of one bigint each (chunk << 32 | offset), then the counts, packed into one
        # bytea of five int8 that ._summary reads with numpy; qualified throughout, since a
        # key may be named like an aggregate ("count")
        key_list = sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in key_ids)
        if frag_table is None:
            self._summary = sql.SQL(
                "SELECT {keys}, int8send(min((t.{chunk}::int8 << 32) | t.{start})) "
                "|| int8send(max((t.{chunk}::int8 << 32) | (t.{start} + t.{length}))) "
                "|| int8send(count(*)) || int8send(sum(t.{count})) || int8send(sum(t.{size})) "
                "FROM {table} AS t WHERE NOT t.{deleted}{{where}} GROUP BY {keys} "
                "ORDER BY {keys}"
            ).format(keys=key_list, chunk=chunk, start=start, length=length,
                     count=own("valid_count"), size=own("size"), table=q.table,
                     deleted=deleted)
        else:
            # the chunk rows and the fragments summed per series apart, then matched: a
            # fragment only ever extends a live chunk, after its stored end
            f_keys = sql.SQL(", ").join(sql.SQL("f.{}").format(k) for k in key_ids)
            self._summary = sql.SQL(
                "SELECT {c_keys}, int8send(c._first) || int8send(greatest(c._last, f._last)) "
                "|| int8send(c._chunks) || int8send(c._points + coalesce(f._points, 0)) "
                "|| int8send(c._size + coalesce(f._size, 0)) FROM "
                "(SELECT {keys}, min((t.{chunk}::int8 << 32) | t.{start}) AS _first, "
                "max((t.{chunk}::int8 << 32) | (t.{start} + t.{length})) AS _last, "
                "count(*) AS _chunks, sum(t.{count}) AS _points, sum(t.{size}) AS _size "
                "FROM {table} AS t WHERE NOT t.{deleted}{{where}} GROUP BY {keys}) AS c "
                "LEFT JOIN (SELECT {f_keys}, "
                "max((f.{chunk}::int8 << 32) | (f.{start} + f.{length})) AS _last, "
                "sum(f.{count}) AS _points, sum(f.{size}) AS _size FROM {frags} AS f "
                "WHERE true{{where}} GROUP BY {f_keys}) AS f ON {match} ORDER BY {c_keys}"
            ).format(c_keys=sql.SQL(", ").join(sql.SQL("c.{}").format(k) for k in key_ids),
                     keys=key_list, f_keys=f_keys, chunk=chunk, start=start, length=length,
                     count=own("valid_count"), size=own("size"), table=q.table,
                     deleted=deleted, frags=frag_table,
                     match=sql.SQL(" AND ").join(sql.SQL("f.{k} = c.{k}").format(k=k)
                                                 for k in key_ids))
        self._summary_twice = frag_table is not None

    def summary(self, where: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
        query, params = self.q._where(self._summary, where)
        return query, params * 2 if self._summary_twice else params
