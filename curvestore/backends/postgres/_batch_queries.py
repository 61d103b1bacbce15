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

from curvestore.backends.postgres._ddl import META_COLUMNS

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
        deleted = own("deleted")
        # packed as ._batch.LIVE_DTYPE reads it
        self.live_chunks = rendered(sql.SQL(
            "SELECT string_agg(int8send(k.i) || int4send(t.{chunk}) "
            "|| int4send(t.{start} + t.{length}), ''::bytea) "
            "FROM {keys} AS k JOIN {table} AS t ON {match} WHERE NOT t.{deleted}"
        ).format(chunk=chunk, start=start, length=length, keys=keys_table, table=q.table,
                 match=matching("t", "k"), deleted=deleted))
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
            "SELECT r.row, {columns} FROM unnest(%s::int8[], %s::int4[]) WITH ORDINALITY "
            "AS r(i, c, row) JOIN {keys} AS k ON k.i = r.i JOIN {table} AS t ON {match} "
            "AND t.{chunk} = r.c WHERE NOT t.{deleted} FOR UPDATE OF t"
        ).format(columns=columns, keys=keys_table, table=q.table, match=matching("t", "k"),
                 chunk=chunk, deleted=deleted))
        # per series: the first chunk with its start and the last with its stop, as min /
        # max of one bigint each (chunk << 32 | offset), then the counts, packed into one
        # bytea of five int8 that ._summary reads with numpy; qualified throughout, since a
        # key may be named like an aggregate ("count")
        key_list = sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in key_ids)
        self._summary = sql.SQL(
            "SELECT {keys}, int8send(min((t.{chunk}::int8 << 32) | t.{start})) "
            "|| int8send(max((t.{chunk}::int8 << 32) | (t.{start} + t.{length}))) "
            "|| int8send(count(*)) || int8send(sum(t.{count})) || int8send(sum(t.{size})) "
            "FROM {table} AS t WHERE NOT t.{deleted}{{where}} GROUP BY {keys} ORDER BY {keys}"
        ).format(keys=key_list, chunk=chunk, start=start, length=length,
                 count=own("valid_count"), size=own("size"), table=q.table, deleted=deleted)

    def summary(self, where: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
        return self.q._where(self._summary, where)
