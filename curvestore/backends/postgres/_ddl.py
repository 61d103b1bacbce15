"""Table names and DDL of the PostgreSQL backend (no driver needed to build them).

A store named ``<table>`` in schema ``<schema>`` is five tables:

* ``<table>``: one row per chunk (tombstones included), the key attributes as typed columns
  named after the keys (``text COLLATE "C"`` so ORDER BY matches Python's string order, or
  ``bigint``), the chunk meta as columns and the payload as ``bytea`` stored EXTERNAL
  (payloads are compressed already: pglz would only burn CPU); primary key
  (keys..., _chunk_index);
* ``<table>_manifest``: the store's frozen configuration, one jsonb row;
* ``<table>_changes``: the change feed, one row per committed chunk write, with the writing
  transaction's id (``xid8``) for the watermark (see ``_feed``);
* ``<table>_sync_state``: small named values (replication cursors of a replica), written in
  the same transaction as the chunks they describe;
* ``<table>_fragments``: appended days, one row per fragment (keys, ``_chunk_index``,
  ``_version``, span, codec, checksum, payload): a daily append adds rows here instead of
  rewriting its chunk; reads join a chunk's fragments after its row, compaction folds them
  into it. Primary key (keys..., _chunk_index, _version), its index including the span,
  count, size and time. Stores created before it existed
  have no such table and no ``"fragments"`` in their manifest's ``"postgresql"`` field: they
  join appended days into their chunk rows, as before, until upgraded
  (:func:`upgrade_statements`).

The backend's own columns of the chunk and change tables carry the prefix the core reserves
(``_chunk_index``, ``_version``, ``_payload``, ``_txid``...), so any key name is free. Stores
created before that have unprefixed columns (``chunk_index``, ``version``...); the manifest
row records the prefix of the store's columns (``{"postgresql": {"column_prefix": "_"}}``), and
a manifest without it means the old, unprefixed names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curvestore.core.config import RESERVED_PREFIX, KeySchema
from curvestore.errors import ConfigurationError

__all__ = ["COLUMN_PREFIX", "FRAGMENT_COLUMNS", "LEGACY_PREFIX", "MANIFEST_FIELD",
           "META_COLUMNS", "Names", "create_statements", "ddl_statements", "upgrade_statements"]

# Lower-case, so SQL users need no quotes (except around '-'); at most 40 characters, which
# leaves room for the suffixes of derived names within PostgreSQL's 63 bytes.
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,39}$")

CHUNK_MIN, CHUNK_MAX = -(2**31), 2**31 - 1  # the range of chunk_index (integer)

#: Prefix of the backend's own columns in stores created by this version; LEGACY_PREFIX is
#: that of older stores (no prefix: their key names had to avoid the column names).
COLUMN_PREFIX = RESERVED_PREFIX
LEGACY_PREFIX = ""
#: The manifest row's field holding this backend's layout settings (the column prefix).
MANIFEST_FIELD = "postgresql"

META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chunk_index", "integer"),
    ("start_offset", "integer"),
    ("length", "integer"),
    ("valid_count", "integer"),
    ("codec", "text"),
    ("dtype", "text"),
    ("checksum", "bigint"),
    ("size", "integer"),
    ("version", "bigint"),
    ("updated_at", "bigint"),
    ("deleted", "boolean"),
)
#: The fragment table's own columns, after the keys, in COPY order.
FRAGMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chunk_index", "integer"),
    ("version", "bigint"),
    ("start_offset", "integer"),
    ("length", "integer"),
    ("valid_count", "integer"),
    ("codec", "text"),
    ("dtype", "text"),
    ("checksum", "bigint"),
    ("size", "integer"),
    ("updated_at", "bigint"),
    ("payload", "bytea"),
)
#: The fragment metas the primary key's index also holds.
_INDEXED_METAS = ("start_offset", "length", "valid_count", "size", "updated_at")
# psycopg type names for binary COPY, in the same order, then the payload
COPY_TYPES: tuple[str, ...] = ("int4", "int4", "int4", "int4", "text", "text", "int8", "int4",
                               "int8", "int8", "bool", "bytea")


def _check(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"invalid PostgreSQL {kind} name {name!r}: use lower-case letters, digits and '_', "
            "starting with a letter or '_' (then also '-'), at most 40 characters"
        )
    return name


@dataclass(frozen=True)
class Names:
    """Validated identifiers of one store's tables."""

    schema: str
    table: str

    def __post_init__(self) -> None:
        _check("schema", self.schema)
        _check("table", self.table)

    @property
    def manifest(self) -> str:
        return f"{self.table}_manifest"

    @property
    def changes(self) -> str:
        return f"{self.table}_changes"

    @property
    def sync_state(self) -> str:
        return f"{self.table}_sync_state"

    @property
    def fragments(self) -> str:
        return f"{self.table}_fragments"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_-]*$")


def _quote(name: str) -> str:
    """Double-quote an identifier. Names were validated (``_NAME``, key names) before they
    are combined into these, so a failure here is a bug; it is still checked, not asserted:
    the result goes into SQL text, and PostgreSQL would silently truncate past 63 bytes."""
    if not _IDENTIFIER.match(name) or len(name) >= 64:
        raise ConfigurationError(f"{name!r} is not usable as a PostgreSQL identifier "
                                 "(lower-case letters, digits, '_' and '-', under 64 bytes)")
    return f'"{name}"'


#: The backend's own columns (unprefixed) of the chunk and change tables.
OWN_COLUMNS = frozenset({n for n, _ in META_COLUMNS} | {"payload", "seq", "txid"})


def key_column_types(keys: KeySchema, prefix: str = COLUMN_PREFIX) -> list[tuple[str, str]]:
    own = {prefix + n for n in OWN_COLUMNS}
    clash = sorted(set(keys.names) & own)
    if clash:
        raise ConfigurationError(
            f"key name(s) {clash} clash with the PostgreSQL backend's own columns "
            f"{sorted(own)}; rename the key attributes")
    return [(n, 'text COLLATE "C"' if t == "str" else "bigint")
            for n, t in zip(keys.names, keys.types, strict=True)]


def ddl_statements(names: Names, keys: KeySchema, prefix: str = COLUMN_PREFIX
                   ) -> dict[str, list[str]]:
    """CREATE statements per table (``chunks``, ``manifest``, ``changes``, ``sync_state``,
    ``fragments``),
    in run order; the backend's own columns of the chunk and change tables are named with
    ``prefix`` (``LEGACY_PREFIX``: the layout of older stores)."""
    s = _quote(names.schema)
    chunks, manifest, changes, sync_state, fragments = (
        f"{s}.{_quote(t)}" for t in (names.table, names.manifest, names.changes,
                                     names.sync_state, names.fragments))

    def own(name: str) -> str:
        return _quote(prefix + name)

    key_cols = key_column_types(keys, prefix)
    key_list = ", ".join(_quote(n) for n, _ in key_cols)
    columns = [f"{_quote(n)} {t} NOT NULL" for n, t in key_cols]
    columns += [f"{own(n)} {t} NOT NULL" for n, t in META_COLUMNS]
    columns.append(f"{own('payload')} bytea NOT NULL")
    pkey = _quote(f"{names.table}_pkey")
    chunk_table = (
        f"CREATE TABLE {chunks} (\n    " + ",\n    ".join(columns)
        + f",\n    CONSTRAINT {pkey} PRIMARY KEY ({key_list}, {own('chunk_index')})\n)"
    )
    change_cols = [f"{own('seq')} bigserial PRIMARY KEY",
                   f"{own('txid')} xid8 NOT NULL DEFAULT pg_current_xact_id()"]
    change_cols += [f"{_quote(n)} {t} NOT NULL" for n, t in key_cols]
    change_cols += [f"{own('chunk_index')} integer NOT NULL",
                    f"{own('version')} bigint NOT NULL", f"{own('deleted')} boolean NOT NULL"]
    return {
        "chunks": [
            chunk_table,
            f"ALTER TABLE {chunks} ALTER COLUMN {own('payload')} SET STORAGE EXTERNAL",
        ],
        "manifest": [
            f"CREATE TABLE {manifest} (\n    \"id\" integer PRIMARY KEY CHECK (\"id\" = 1),\n"
            "    \"body\" jsonb NOT NULL\n)",
        ],
        "changes": [
            f"CREATE TABLE {changes} (\n    " + ",\n    ".join(change_cols) + "\n)",
            f"CREATE INDEX {_quote(names.changes + '_txid_seq')} ON {changes} "
            f"({own('txid')}, {own('seq')})",
        ],
        "sync_state": [
            f"CREATE TABLE {sync_state} (\n    \"name\" text PRIMARY KEY,\n"
            "    \"value\" text NOT NULL\n)",
        ],
        "fragments": [
            f"CREATE TABLE {fragments} (\n    " + ",\n    ".join(
                [f"{_quote(n)} {t} NOT NULL" for n, t in key_cols]
                + [f"{own(n)} {t} NOT NULL" for n, t in FRAGMENT_COLUMNS])
            + f",\n    CONSTRAINT {_quote(names.fragments + '_pkey')} PRIMARY KEY "
            f"({key_list}, {own('chunk_index')}, {own('version')})\n"
            # the metas in the index: summaries, metas and stored ends are index-only scans
            # (the heap rows hold the payloads)
            f"    INCLUDE ({', '.join(own(n) for n in _INDEXED_METAS)})\n)",
            # raw days barely compress: no pglz attempt on them
            f"ALTER TABLE {fragments} ALTER COLUMN {own('payload')} SET STORAGE EXTERNAL",
            # a read of a window finds the fragments that end inside it without visiting
            # the others
            f"CREATE INDEX {_quote(names.fragments + '_end')} ON {fragments} ({key_list}, "
            f"{own('chunk_index')}, ({own('start_offset')} + {own('length')}))",
        ],
    }


def create_statements(keys: KeySchema, table: str = "load_curves", schema: str = "public"
                      ) -> list[str]:
    """The SQL a DBA runs to create a store's tables ahead of time.

    ``create_store`` then only inserts the manifest row, so the application's role needs
    SELECT/INSERT/UPDATE on the tables (and DELETE on the chunk and fragment tables) and
    USAGE on the changes sequence, not CREATE.
    """
    by_table = ddl_statements(Names(schema, table), keys)
    return [stmt for part in ("chunks", "manifest", "changes", "sync_state", "fragments")
            for stmt in by_table[part]]


def upgrade_statements(keys: KeySchema, table: str = "load_curves", schema: str = "public",
                       prefix: str = COLUMN_PREFIX) -> list[str]:
    """The SQL that moves a store created before the fragment table existed to appended-day
    fragments: the table, then the manifest's record of it, to run in one transaction while
    no process has the store open (a handle opened before keeps rewriting chunks on append,
    and does not see fragments others append). ``prefix``: the store's column prefix
    (``""`` for stores whose columns have none)."""
    names = Names(schema, table)
    manifest = f"{_quote(schema)}.{_quote(names.manifest)}"
    return [*ddl_statements(names, keys, prefix)["fragments"],
            f"UPDATE {manifest} SET body = jsonb_set(body, '{{{MANIFEST_FIELD}}}', "
            f"coalesce(body->'{MANIFEST_FIELD}', '{{\"column_prefix\": \"\"}}'::jsonb) "
            "|| '{\"fragments\": true}'::jsonb) WHERE id = 1"]
