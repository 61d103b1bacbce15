"""PostgreSQL paths of :class:`~curvestore.adapters.django.backend.DjangoModelBackend`.

Used when the model's database is Django's ``postgresql`` engine on psycopg 3; every other
database keeps the ORM paths. The statements run on Django's own connection (so they join
the caller's ``transaction.atomic`` blocks and its error handling) but through a psycopg
cursor with server-side binding: payloads travel as binary parameters and binary COPY rows
instead of the hex literals a client-side-binding cursor would have the server parse, and
rows come back without ORM model or converter work per row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import connections, models

from curvestore.errors import StoreNotFoundError

__all__ = ["PgPaths", "pg_paths"]

T = TypeVar("T")

_INT_TYPES = {"IntegerField": "int4", "PositiveIntegerField": "int4",
              "BigIntegerField": "int8", "PositiveBigIntegerField": "int8",
              "SmallIntegerField": "int2", "PositiveSmallIntegerField": "int2"}
_TEXT_TYPES = {"CharField", "TextField", "SlugField"}
_PK_TYPES = {"AutoField": "int4", "BigAutoField": "int8", "SmallAutoField": "int2"}
#: Below this many rows a multi-row INSERT (one round trip) beats COPY (two).
_COPY_MIN_ROWS = 64
_UPDATE_BATCH = 500
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


class Rel(int):
    """A version given relative to the store's counter once raised: the version is
    ``counter - self``, computed by the server (so a small commit takes its versions in the
    same round trip as its writes)."""


def ns_of(value: dt.datetime) -> int:
    """UTC epoch nanoseconds of an aware datetime (psycopg's timestamptz values)."""
    return (value - _EPOCH) // _US * 1000


def dt_of(ns: int) -> dt.datetime:
    """An aware UTC datetime, to the microsecond (DateTimeField's precision)."""
    return _EPOCH + dt.timedelta(microseconds=int(ns) // 1000)


def pg_paths(model: type[models.Model], using: str, names: Sequence[str]) -> PgPaths | None:
    """The PostgreSQL paths of ``model`` on database ``using``, or None when they do not
    apply (another engine, psycopg 2, or fields whose wire types are not known here)."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return None
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3
    except ImportError:  # pragma: no cover - Django without the postgresql backend
        return None
    if not is_psycopg3:
        return None
    meta = model._meta
    key_types = []
    for name in names:
        kind = meta.get_field(name).get_internal_type()
        wire = _INT_TYPES.get(kind) or ("text" if kind in _TEXT_TYPES else None)
        if wire is None:
            return None
        key_types.append(wire)
    pk_type = _PK_TYPES.get(meta.pk.get_internal_type())
    if pk_type is None:
        return None
    return PgPaths(model, using, names, key_types)


class PgPaths:
    """SQL of one chunk-store model; see the module docs."""

    def __init__(self, model: type[models.Model], using: str, names: Sequence[str],
                 key_types: Sequence[str]) -> None:
        from curvestore.adapters.django.bookkeeping import ChunkChange, StoreManifest

        self.using = using
        conn = connections[using]
        q = conn.ops.quote_name
        meta = model._meta

        def col(name: str, m: Any = meta) -> str:
            return q(m.get_field(name).column)

        self.table = q(meta.db_table)
        self.store = meta.db_table  # the store's name in the manifest and change tables
        self.keys = [col(n) for n in names]
        self.key_types = list(key_types)
        self._col = col
        self.pk = q(meta.pk.column)
        self.chunk = col("chunk_index")
        self.deleted = col("is_deleted")
        # the row fields the backend reads, in FIELDS order (chunk_index first; see ._base)
        read_cols = ", ".join(col(n) for n in ("chunk_index", "start_ts", "dtype", "data",
                                                "updated_at", "row_version"))
        # a model without key fields holds one series: every row is its
        key_match = " AND ".join(f"{k} = %s" for k in self.keys) or "TRUE"
        self._read = (f"SELECT {read_cols} FROM {self.table} WHERE {key_match} AND NOT "
                      f"{self.deleted}")
        self._locked = (f"SELECT {self.pk}, {self.deleted}, {read_cols} FROM {self.table} "
                        f"WHERE {key_match}")
        write_fields = ("chunk_index", "start_ts", "dtype", "updated_at", "is_deleted", "data",
                        "row_version")
        self.insert_cols = [*self.keys, *(col(n) for n in write_fields)]
        self.insert_types = [*key_types, "int4", "timestamptz", "text", "timestamptz", "bool",
                             "bytea", "int8"]
        sets = ", ".join(f"{col(n)} = v.{col(n)}" for n in write_fields[1:])
        self._update_head = f"UPDATE {self.table} AS t SET {sets} FROM (VALUES "
        self._update_tail = (f") AS v({self.pk}, " + ", ".join(col(n) for n in write_fields[1:])
                             + f") WHERE t.{self.pk} = v.{self.pk}")
        self._update_types = ["int8", "timestamptz", "text", "timestamptz", "bool", "bytea",
                              "int8"]
        mm = StoreManifest._meta
        self._ensure_manifest = (
            f"INSERT INTO {q(mm.db_table)} ({col('store', mm)}, {col('manifest', mm)}, "
            f"{col('last_version', mm)}) VALUES (%s, %s, 0) ON CONFLICT ({col('store', mm)}) "
            "DO NOTHING")
        self._lock_version = (f"SELECT {col('last_version', mm)} FROM {q(mm.db_table)} WHERE "
                              f"{col('store', mm)} = %s FOR UPDATE")
        self._set_version = (f"UPDATE {q(mm.db_table)} SET {col('last_version', mm)} = %s "
                             f"WHERE {col('store', mm)} = %s")
        self._current_version = (f"(SELECT {col('last_version', mm)} FROM {q(mm.db_table)} "
                                 f"WHERE {col('store', mm)} = %s) - %s")
        self._bump = (f"UPDATE {q(mm.db_table)} SET {col('last_version', mm)} = "
                      f"{col('last_version', mm)} + %s WHERE {col('store', mm)} = %s "
                      f"RETURNING {col('last_version', mm)}")
        cm = ChunkChange._meta
        self.change_table = q(cm.db_table)
        self.change_cols = [col(n, cm) for n in ("store", "version", "key", "chunk", "deleted")]
        self.change_types = ["text", "int8", "text", "int4", "bool"]
        self._toast_lz4: bool | None = None

    # -- plumbing --------------------------------------------------------------------------
    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A server-side-binding psycopg cursor on Django's connection; database errors
        come out as Django's (``django.db.IntegrityError``...), as from the ORM."""
        import psycopg

        conn = connections[self.using]
        conn.ensure_connection()
        conn.validate_no_broken_transaction()
        with conn.wrap_database_errors, psycopg.Cursor(conn.connection) as cur:
            yield cur

    @staticmethod
    def _range(sql: str, params: list[Any], column: str, lo: int | None, hi: int | None
               ) -> str:
        if lo is not None:
            sql += f" AND {column} >= %s"
            params.append(lo)
        if hi is not None:
            sql += f" AND {column} <= %s"
            params.append(hi)
        return sql

    # -- reads -----------------------------------------------------------------------------
    def read(self, key: Sequence[Any], lo: int | None, hi: int | None) -> list[tuple]:
        """Live rows of one series: ``(chunk_index, start_ts, dtype, data, updated_at,
        row_version)`` by chunk."""
        params = list(key)
        sql = self._range(self._read, params, self.chunk, lo, hi)
        with self.cursor() as cur:
            cur.execute(sql + f" ORDER BY {self.chunk}", params, binary=True)
            return cur.fetchall()

    def read_locked(self, key: Sequence[Any], lo: int | None, hi: int | None) -> list[tuple]:
        """Every row of one series in the range, tombstones included, locked FOR UPDATE:
        ``(pk, is_deleted, chunk_index, start_ts, dtype, data, updated_at, row_version)``."""
        params = list(key)
        sql = self._range(self._locked, params, self.chunk, lo, hi)
        with self.cursor() as cur:
            cur.execute(sql + f" ORDER BY {self.chunk} FOR UPDATE", params, binary=True)
            return cur.fetchall()

    def fetch(self, qs: models.QuerySet) -> list[tuple]:
        """The rows of an ORM ``values_list`` queryset, without per-row ORM conversion."""
        return self.fetch_sql(*qs.query.get_compiler(using=self.using).as_sql())

    def scan(self, qs: models.QuerySet, names: Sequence[str], fields: Sequence[str],
             keys_q: Callable[[list[tuple]], models.Q], chunk_size: int,
             decode: Callable[[list[tuple]], list[T]]) -> Iterator[T]:
        """``decode`` of the rows ``values_list(*names, *fields)`` of ``qs``, ordered by key
        and chunk, a few whole series at a time (about ``chunk_size`` rows per query).

        The series and their row counts are listed first, then each batch of series is one
        query. Unlike a server-side cursor, nothing is held open between batches, so there
        is no need for a cursor WITH HOLD (outside a transaction, PostgreSQL materialises the
        whole result of such a cursor before the first row). Each series is read by one
        statement, so it is consistent in itself. (Fetching the next batch in a helper
        thread while one is decoded was measured: no faster on two cores.)"""
        if not names:  # a model without key fields holds one series
            yield from decode(self.fetch(qs.order_by("chunk_index").values_list(*fields)))
            return
        counts = (qs.order_by().values(*names).annotate(cvs_rows=models.Count("pk"))
                  .order_by(*names).values_list(*names, "cvs_rows"))
        n = len(names)
        batch: list[tuple] = []
        rows = 0
        listed = self.fetch(counts)
        batch_query = self._batch_query(qs, fields)
        for i, row in enumerate(listed):
            batch.append(tuple(row[:n]))
            rows += row[n]
            if rows >= chunk_size or i == len(listed) - 1:
                if batch_query is None:
                    found = self.fetch(qs.filter(keys_q(batch)).order_by(
                        *names, "chunk_index").values_list(*names, *fields))
                else:
                    found = self.fetch_sql(*batch_query(batch))
                yield from decode(found)
                batch, rows = [], 0

    def _batch_query(self, qs: models.QuerySet, fields: Sequence[str]
                     ) -> Callable[[list[tuple]], tuple[str, list[Any]]] | None:
        """The SQL of ``qs``'s rows for a batch of series, with the queryset's WHERE compiled
        once (the ORM would build and compile an OR of every batch's keys, ~1.5 ms a batch);
        None for a queryset that is not one plain filtered table."""
        query = qs.query
        if len(query.alias_map) != 1 or query.distinct or query.group_by:
            return None
        where_sql, where_params = query.get_compiler(using=self.using).compile(query.where)
        keys = ", ".join(self.keys)
        head = (f"SELECT {keys}, {', '.join(self._col(f) for f in fields)} FROM {self.table} "
                f"WHERE ({where_sql}) AND ({keys}) IN (VALUES ")
        tail = f") ORDER BY {keys}, {self.chunk}"
        one = "(" + ", ".join(f"%s::{t}" for t in self.key_types) + ")"

        def build(batch: list[tuple]) -> tuple[str, list[Any]]:
            return (head + ", ".join([one] * len(batch)) + tail,
                    [*where_params, *(v for key in batch for v in key)])

        return build

    def fetch_sql(self, sql: str, params: Any) -> list[tuple]:
        with self.cursor() as cur:
            cur.execute(sql, params, binary=True)
            return cur.fetchall()

    # -- writes ----------------------------------------------------------------------------
    def _lz4_toast(self, cur: Any) -> bool:
        """Whether the server can compress TOAST with lz4 (PostgreSQL >= 14 built with it)."""
        if self._toast_lz4 is None:
            cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                        "WHERE name = 'default_toast_compression'")
            row = cur.fetchone()
            self._toast_lz4 = bool(row and row[0])
        return self._toast_lz4

    def _prepare_writes(self, cur: Any, store: str, manifest: str, lz4: bool) -> None:
        if lz4:
            cur.execute("SET LOCAL default_toast_compression = 'lz4'")
        cur.execute(self._ensure_manifest, [store, manifest])

    def open_stream(self, store: str, manifest: str) -> NewChunks:
        """Lock the store's version counter now and COPY new chunk rows as they come (see
        :class:`NewChunks`); ``manifest`` as for :meth:`begin_commit`."""
        return NewChunks(self, store, manifest)

    def begin_commit(self, store: str, count: int, manifest: str) -> int:
        """Take ``count`` versions: the store's manifest row (``manifest``, its JSON, if it
        has none yet, e.g. after a flush) has its counter raised and stays locked until
        commit, which orders commits. Returns the new top. One round trip.

        Also, for this transaction only (``SET LOCAL``): the blobs are LZ4 already, but
        holcstore's ``data`` column is ``bytea`` with PostgreSQL's default EXTENDED storage,
        so the server tries to compress every blob again before storing it out of line; with
        the default pglz that attempt dominates the write (about 25 MB/s here). Where the
        column has no compression method of its own, the attempt then uses lz4, which gives
        up on incompressible input at memory speed. Readers see no difference (the server
        decompresses TOAST), holcstore included."""
        with self.cursor() as cur:
            lz4 = self._lz4_toast(cur)
            with cur.connection.pipeline():
                self._prepare_writes(cur, store, manifest, lz4)
                cur.execute(self._bump, [count, store])
            row = cur.fetchone()
        return int(row[0])

    def _insert(self, cur: Any, table: str, cols: list[str], types: list[str],
                rows: list[tuple]) -> None:
        """Rows into ``table``: binary COPY, or one multi-row INSERT for a few rows."""
        if not rows:
            return
        if len(rows) >= _COPY_MIN_ROWS:
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)"
                          ) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            return
        sql, params = self._values(types, rows)
        cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES {sql}", params)

    def _values(self, types: list[str], rows: list[tuple]) -> tuple[str, list[Any]]:
        """A VALUES list of ``rows`` (typed placeholders; a :class:`Rel` becomes the
        server-side version expression) and its parameters."""
        groups, params = [], []
        for row in rows:
            cells = []
            for value, kind in zip(row, types, strict=True):
                if isinstance(value, Rel):
                    cells.append(self._current_version)
                    params += [self.store, int(value)]
                else:
                    cells.append(("%b" if kind == "bytea" else "%s") + f"::{kind}")
                    params.append(value)
            groups.append("(" + ", ".join(cells) + ")")
        return ", ".join(groups), params

    def small(self, inserts: int, changes: int) -> bool:
        """Whether rows this many go in VALUES lists (one pipeline) rather than COPY."""
        return inserts < _COPY_MIN_ROWS and changes < _COPY_MIN_ROWS

    def write(self, inserts: list[tuple], updates: list[tuple], changes: list[tuple],
              top: int | None = None, begin: tuple[int, str] | None = None) -> int | None:
        """New chunk rows (``insert_cols`` order), rewrites of existing rows ``(pk, start_ts,
        dtype, updated_at, is_deleted, data, row_version)`` and change-feed rows; with
        ``top``, the store's version counter is then set to it. One round trip when no COPY
        is needed (a pipeline), else one statement after another.

        ``begin`` = (count, manifest JSON) does :meth:`begin_commit` in the same pipeline
        (only when :meth:`small`): versions are then :class:`Rel` to the raised counter,
        which is returned."""
        small = self.small(len(inserts), len(changes))
        if begin is not None and not small:
            raise ValueError("begin= needs a small commit")
        import psycopg

        with self.cursor() as cur:
            lz4 = begin is not None and self._lz4_toast(cur)
            bump = None if begin is None else psycopg.Cursor(cur.connection)
            with cur.connection.pipeline() if small else contextlib.nullcontext():
                if bump is not None and begin is not None:
                    self._prepare_writes(cur, self.store, begin[1], lz4)
                    bump.execute(self._bump, [begin[0], self.store])
                self._write_rows(cur, inserts, updates, changes, top)
        if bump is None:
            return None
        with bump:
            row = bump.fetchone()
        if row is None:  # pragma: no cover - the pipeline ensured the manifest row
            raise StoreNotFoundError(f"no manifest row for {self.store!r}")
        return int(row[0])

    def _write_rows(self, cur: Any, inserts: list[tuple], updates: list[tuple],
                    changes: list[tuple], top: int | None) -> None:
        self._insert(cur, self.table, self.insert_cols, self.insert_types, inserts)
        for i in range(0, len(updates), _UPDATE_BATCH):
            sql, params = self._values(self._update_types, updates[i:i + _UPDATE_BATCH])
            cur.execute(self._update_head + sql + self._update_tail, params)
        self._insert(cur, self.change_table, self.change_cols, self.change_types, changes)
        if top is not None:
            cur.execute(self._set_version, [top, self.store])


class NewChunks:
    """A binary COPY of new chunk rows, open while the caller prepares the next ones, so the
    server stores series k while series k+1 is being encoded.

    Opening it locks the store's manifest row (after creating it if needed) and reads the
    version counter: the rows written get the next versions, and the counter is set at
    commit, so versions still follow commit order. Nothing else may use the connection
    until :meth:`finish`."""

    def __init__(self, paths: PgPaths, store: str, manifest: str) -> None:
        import psycopg

        self.paths = paths
        self.conn = connections[paths.using]
        self.conn.ensure_connection()
        self.conn.validate_no_broken_transaction()
        with self.conn.wrap_database_errors:
            self.cur = psycopg.Cursor(self.conn.connection)
            lz4 = paths._lz4_toast(self.cur)
            with self.cur.connection.pipeline():
                paths._prepare_writes(self.cur, store, manifest, lz4)
                self.cur.execute(paths._lock_version, [store])
            row = self.cur.fetchone()
            if row is None:  # pragma: no cover - the pipeline ensured the manifest row
                raise StoreNotFoundError(f"no manifest row for {paths.store!r}")
            self.base = int(row[0])
            self._cm: Any = self.cur.copy(f"COPY {paths.table} ({', '.join(paths.insert_cols)}) "
                                          "FROM STDIN (FORMAT BINARY)")
            self._copy = self._cm.__enter__()
            self._copy.set_types(paths.insert_types)

    def write(self, row: tuple) -> None:
        with self.conn.wrap_database_errors:
            self._copy.write_row(row)

    @property
    def open(self) -> bool:
        return self._cm is not None

    def finish(self) -> None:
        """End the COPY; a duplicate chunk (a concurrent writer's) raises IntegrityError."""
        if self._cm is None:
            return
        cm, self._cm = self._cm, None
        with self.conn.wrap_database_errors:
            cm.__exit__(None, None, None)
            self.cur.close()

    def abort(self) -> None:
        """Abandon the COPY (the transaction is being rolled back)."""
        if self._cm is None:
            return
        cm, self._cm = self._cm, None
        reason = RuntimeError("the transaction was rolled back")  # the server logs it
        # the caller is rolling back because of another error (or raises one): an error
        # from cancelling the COPY would only hide it
        with contextlib.suppress(Exception):
            cm.__exit__(type(reason), reason, None)
            self.cur.close()
