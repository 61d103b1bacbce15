"""The SQL fragments of a store with a fragment table: how a chunk row meets its fragments.

Every read of chunk rows joins each row (alias ``t``) with a ``LEFT JOIN LATERAL`` over the
fragment table (alias ``f``), served by its primary key (keys, chunk, version):

* reads of records and pieces get three packed columns (:mod:`._pieces` reads them): the
  fragments' metas as fixed-size records, their codec and dtype names, their payloads, each
  aggregated in version order; reads of pieces also leave out fragments outside the
  window (before offset ``first`` of chunk ``lo``, after offset ``last`` of chunk ``hi``)
  and the chunk row's payload when it is outside too;
* reads of metas get the chunk as a whole: its stored span runs to the last fragment's end,
  its valid points and bytes add the fragments', its version and time are the newest.

A store without the table (created before it existed) gets the same columns from constants,
so the code reading rows is the same for both layouts.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql

__all__ = ["FragmentSQL"]


class FragmentSQL:
    """The lateral joins and column lists of one store (see the module docstring)."""

    def __init__(self, fragments: sql.Identifier | None, key_ids: list[sql.Identifier],
                 own: Callable[[str], sql.Identifier]) -> None:
        self.enabled = fragments is not None
        f = sql.Identifier("f")
        t = sql.Identifier("t")

        def col(alias: sql.Identifier, name: str) -> sql.Composable:
            return sql.SQL("{}.{}").format(alias, own(name))

        match = sql.SQL(" AND ").join(
            [*(sql.SQL("f.{k} = t.{k}").format(k=k) for k in key_ids),
             sql.SQL("{} = {}").format(col(f, "chunk_index"), col(t, "chunk_index"))])
        start, length = col(f, "start_offset"), col(f, "length")
        packed = sql.SQL(
            "string_agg(int4send({start}) || int4send({length}) || int4send({count}) || "
            "int8send({checksum}) || int4send({size}) || int8send({version}) || "
            "int8send({updated}), ''::bytea) AS _fm, "
            "string_agg({codec} || ' ' || {dtype}, ' ') AS _fc, "
            "string_agg({payload}, ''::bytea) AS _fd"
        ).format(start=start, length=length, count=col(f, "valid_count"),
                 checksum=col(f, "checksum"), size=col(f, "size"), version=col(f, "version"),
                 updated=col(f, "updated_at"), codec=col(f, "codec"), dtype=col(f, "dtype"),
                 payload=col(f, "payload"))
        chunk = col(t, "chunk_index")
        # the window's bounds as bigint parameters (lo, first, hi, last), never NULL: an
        # unbounded side gets values no row matches (:meth:`window`)
        # written so the first bound is a range on the third column of the fragment table's
        # index on (keys, chunk, end): a read of one day visits that day's rows only
        outside_f = sql.SQL(
            " AND ({start} + {length}) > CASE WHEN {tc} = %s::int8 THEN %s::int8 ELSE -1 END "
            "AND {start} <= CASE WHEN {tc} = %s::int8 THEN %s::int8 ELSE {top} END").format(
            tc=col(t, "chunk_index"), start=start, length=length, top=sql.Literal(2**31 - 1))
        self.base_outside = sql.SQL(
            "({c} = %s::int8 AND {start} + {length} <= %s::int8) OR "
            "({c} = %s::int8 AND {start} > %s::int8)").format(
            c=chunk, start=col(t, "start_offset"), length=col(t, "length"))
        self.records: sql.Composable
        self.pieces: sql.Composable
        self.metas: sql.Composable
        if fragments is None:
            self.packed_cols = sql.SQL(", NULL::bytea AS _fm, NULL::text AS _fc, "
                                       "NULL::bytea AS _fd")
            self.records = self.pieces = self.metas = sql.Composed([])
        else:
            self.packed_cols = sql.SQL(", f._fm, f._fc, f._fd")
            # the aggregates read the fragments in the order of the primary key's index (an
            # ORDER BY inside each aggregate would sort three times per chunk); _pieces
            # checks the versions come in order, and puts them in order if not
            lateral = ("LEFT JOIN LATERAL (SELECT {} FROM (SELECT * FROM {} AS f WHERE {}{} "
                       "ORDER BY {}) AS f) AS f ON true")
            order = col(f, "version")
            self.records = sql.SQL(" " + lateral).format(packed, fragments, match, sql.SQL(""),
                                                         order)
            self.pieces = sql.SQL(" " + lateral).format(packed, fragments, match, outside_f,
                                                        order)
            self.metas = sql.SQL(
                " LEFT JOIN LATERAL (SELECT max({start} + {length}) AS _fstop, "
                "sum({count}) AS _fcount, sum({size}) AS _fsize, max({version}) AS _fversion, "
                "max({updated}) AS _fupdated FROM {fragments} AS f WHERE {match}) AS f ON true"
            ).format(start=start, length=length, count=col(f, "valid_count"),
                     size=col(f, "size"), version=col(f, "version"),
                     updated=col(f, "updated_at"), fragments=fragments, match=match)
        # the chunk as a whole, for reads of metas (columns in META_COLUMNS order)
        names = ("chunk_index", "start_offset", "length", "valid_count", "codec", "dtype",
                 "checksum", "size", "version", "updated_at", "deleted")
        if fragments is None:
            self.meta_cols = sql.SQL(", ").join(col(t, n) for n in names)
        else:
            self.meta_cols = sql.SQL(
                "{chunk}, {start}, coalesce(f._fstop, {start} + {length}) - {start}, "
                "{count} + coalesce(f._fcount, 0), {codec}, {dtype}, {checksum}, "
                "{size} + coalesce(f._fsize, 0), greatest({version}, f._fversion), "
                "greatest({updated}, f._fupdated), {deleted}").format(
                chunk=chunk, start=col(t, "start_offset"), length=col(t, "length"),
                count=col(t, "valid_count"), codec=col(t, "codec"), dtype=col(t, "dtype"),
                checksum=col(t, "checksum"), size=col(t, "size"), version=col(t, "version"),
                updated=col(t, "updated_at"), deleted=col(t, "deleted"))

    @staticmethod
    def window(lo: int | None, hi: int | None, first: int | None, last: int | None
               ) -> list[int]:
        """The four window parameters (lo, first, hi, last) of :attr:`pieces` and
        :attr:`base_outside`."""
        never = -(2**40)  # no chunk index is this
        return [never if lo is None or first is None else lo, -1 if first is None else first,
                never if hi is None or last is None else hi, 2**40 if last is None else last]
