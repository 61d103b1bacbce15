"""The SQL of the PostgreSQL backend's columnar paths: batch commits and summaries.

Series are named by their position in a transaction's key list: the key values travel once, as
one array per key column unnested ``WITH ORDINALITY``, and rows refer to them by index, so a
statement's parameters grow with the batch, never its text. Results that only feed numpy come
back packed (``int4send``/``int8send`` concatenated by ``string_agg``) and are read with
``numpy.frombuffer``: no row tuple per chunk. Aliases inside the statements (``k0``, ``i`` ...)
are qualified everywhere, so no key name can clash with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from psycopg import sql

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

        key_ids = [sql.Identifier(n) for n in q.keys.names]
        aliases = [sql.Identifier(f"k{j}") for j in range(q.nk)]
        alias_list = sql.SQL(", ").join(aliases)
        key_params = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL("text" if t == "str" else "bigint"))
            for t in q.keys.types)
        # the transaction's keys, numbered from 1 in the order given
        keys_unnest = sql.SQL("unnest({}) WITH ORDINALITY AS k({}, i)").format(
            key_params, alias_list)

        def matching(left: str, right: str) -> sql.Composable:
            return sql.SQL(" AND ").join(
                sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), key, sql.Identifier(right),
                                                alias)
                for key, alias in zip(key_ids, aliases, strict=True))

        chunk, start, length = own("chunk_index"), own("start_offset"), own("length")
        deleted = own("deleted")
        # packed as ._batch.LIVE_DTYPE reads it
        self.live_chunks = sql.SQL(
            "SELECT string_agg(int8send(k.i) || int4send(t.{chunk}) "
            "|| int4send(t.{start} + t.{length}), ''::bytea) "
            "FROM {keys_unnest} JOIN {table} AS t ON {match} WHERE NOT t.{deleted}"
        ).format(chunk=chunk, start=start, length=length, keys_unnest=keys_unnest,
                 table=q.table, match=matching("t", "k"), deleted=deleted).as_string(None)
        # the rows a commit replaces, gone (it COPYs their successors), streamed back with
        # what the commit needs of them: the version, and the stored chunk a fragment
        # extends (the field order is the one ._take parses)
        returned = sql.SQL(", ").join(
            sql.SQL("t.{}").format(own(n)) for n in (
                "version", "deleted", "start_offset", "length", "valid_count", "checksum",
                "size", "codec", "dtype"))
        self.take_rows = sql.SQL(
            "COPY (DELETE FROM {table} AS t USING (SELECT {k_aliases}, r.c, r.frag, r.row "
            "FROM unnest(%s::int8[], %s::int4[], %s::bool[]) WITH ORDINALITY "
            "AS r(i, c, frag, row) JOIN {keys_unnest} ON k.i = r.i) AS s "
            "WHERE {match} AND t.{chunk} = s.c "
            "RETURNING s.row, {returned}, "
            "CASE WHEN s.frag AND NOT t.{deleted} THEN t.{payload} END"
            ") TO STDOUT (FORMAT BINARY)"
        ).format(table=q.table, keys_unnest=keys_unnest, match=matching("t", "s"), chunk=chunk,
                 returned=returned, deleted=deleted, payload=own("payload"),
                 k_aliases=sql.SQL(", ").join(sql.SQL("k.{}").format(a) for a in aliases)
                 ).as_string(None)
        # the first chunk with its start and the last with its stop, as min / max of one
        # bigint each: chunk << 32 | offset, unpacked by ._summary with numpy;
        # qualified throughout, since a key may be named like an aggregate ("count")
        key_list = sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in key_ids)
        self._summary = sql.SQL(
            "SELECT {keys}, min((t.{chunk}::int8 << 32) | t.{start}), "
            "max((t.{chunk}::int8 << 32) | (t.{start} + t.{length})), count(*), "
            "sum(t.{count}), sum(t.{size}) FROM {table} AS t WHERE NOT t.{deleted}{{where}} "
            "GROUP BY {keys} ORDER BY {keys}"
        ).format(keys=key_list, chunk=chunk, start=start, length=length,
                 count=own("valid_count"), size=own("size"), table=q.table, deleted=deleted)

    def summary(self, where: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
        return self.q._where(self._summary, where)
