"""The PostgreSQL backend: ``postgresql://user@host:port/db?table=load_curves&schema=public``.

Guarantees and how they are met:

* **Atomic batches**: chunks known to be new are COPYed (binary) into the chunk table as
  they are put, inside the open transaction (the server ingests while the core encodes the
  next series); at commit, the other new chunks are COPYed straight into the chunk table,
  rewritten ones into a session temp table applied by one UPDATE, the change rows are
  COPYed into the change table, then one COMMIT: all or nothing, whatever kills the writer.
  No round trip per chunk.
* **Writers of one series serialise**: ``begin(keys)`` takes transaction-scoped advisory
  locks on a hash of each series key, in sorted order (no deadlock), so writers exclude each
  other even before a series has rows; a transaction over more than ``_MAX_KEY_LOCKS`` series
  takes one store-wide exclusive lock instead (every transaction holds the store-wide lock in
  shared mode), which keeps PostgreSQL's lock table bounded. ``tx.read`` also row-locks the
  chunks it returns (``FOR UPDATE``), against writers that bypass curvestore.
* **Versions** are assigned in SQL: 1 on first write, the stored version + 1 afterwards.
* **Change feed**: see :meth:`PostgresBackend.feed`: every committed change exactly once,
  ordered by (writer's transaction id, sequence), never skipping a late commit.
* **Replication target**: ``tx.set_state`` upserts the replication cursor into
  ``<table>_sync_state`` inside the open transaction, so the cursor commits atomically with
  the imported chunks; ``fetch`` exports any number of chunks in one query.
* **Batches** (``begin_batch``, for ``write_frame``): the same transaction taking chunks as
  columns, committed in a fixed number of statements whatever the number of series
  (:mod:`._batch`). Fragments (days appended after a chunk's end) are COPYed into the
  fragment table without reading the chunk (stores created before that table existed
  join them to the chunk instead); reads join each chunk with its fragments
  (:mod:`._fragment_sql`, :mod:`._pieces`) and ``compact`` folds them into it
  (:mod:`._compact`).
* **Reads**: one query per single-series read; ``scan``/``list_metas`` stream through a
  server-side cursor in batches (bounded memory); meta queries never fetch payloads;
  ``read_pieces``/``scan_pieces`` leave out the fragments outside the window;
  ``summarise`` is one aggregate query (:mod:`._summary`).

The parts live in their own modules: the state they share (:mod:`._base`), the manifest and
DDL (:mod:`._manifest`), reads and scans (:mod:`._reads`), summaries (:mod:`._summary`), the
change feed (:mod:`._feed`), the transaction with its commit path (:mod:`._transaction`) and
its batch form (:mod:`._batch`, with :mod:`._rows`, :mod:`._take`, :mod:`._fragments` and
:mod:`._copybin`); this class puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from curvestore.backends.postgres._batch import PgBatchTransaction
from curvestore.backends.postgres._connect import LIBPQ_OPTIONS, ConnectionTarget, import_psycopg
from curvestore.backends.postgres._ddl import Names
from curvestore.backends.postgres._feed import PgFeed
from curvestore.backends.postgres._manifest import PgManifest
from curvestore.backends.postgres._reads import PgReads
from curvestore.backends.postgres._summary import PgSummary
from curvestore.backends.postgres._transaction import PgTransaction
from curvestore.core.backend import Transaction
from curvestore.core.records import Change, SeriesKey
from curvestore.core.url import StoreURL

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresBackend"]


class PostgresBackend(PgManifest, PgReads, PgFeed, PgSummary):
    """Chunks as rows of a PostgreSQL table; see the module docstring for the guarantees."""

    schemes = ("postgresql", "postgres")

    @property
    def fragment_codec(self) -> str | None:
        """Appended days are kept raw in the fragment table (``"none"``): a meter's day barely
        compresses, reading one is a copy, and compaction lays a month of them out without
        decoding; a store without the table joins them into its chunks, in its codec."""
        return "none" if self._fragments else None

    @classmethod
    def check_available(cls) -> None:
        import_psycopg()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> PostgresBackend:
        """Options: ``table`` (default ``load_curves``), ``schema`` (default ``public``) and
        libpq connection parameters (``sslmode``, ``connect_timeout``, ``service`` ...)."""
        import_psycopg()
        url.reject_unknown_options(frozenset({"table", "schema"}) | LIBPQ_OPTIONS)
        names = Names(url.options.get("schema", "public"), url.options.get("table", "load_curves"))
        libpq = {k: v for k, v in url.options.items() if k in LIBPQ_OPTIONS}
        return cls(ConnectionTarget.from_url(url, libpq), names, read_only=read_only)

    # -- writes ----------------------------------------------------------------------------
    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        """Lock ``keys`` in a database transaction on a pooled connection; the transaction's
        ``commit`` writes its puts in bulk and COMMITs, ``abort`` rolls everything back."""
        return PgTransaction.begin(self, keys)

    def begin_batch(self, keys: Sequence[SeriesKey]) -> Transaction:
        """:meth:`begin`, returning a transaction that also takes chunks as columns
        (``put_batch``, ``live_chunks``): see :mod:`._batch`."""
        return PgBatchTransaction.begin(self, keys)

    def _write(self, conn: psycopg.Connection[Any], tx: PgTransaction) -> list[Change]:
        """Write the staged chunks and their change rows (the COMMIT follows): see
        :meth:`PgTransaction.write`. A step of its own, so that a commit can be held open
        between its writes and its COMMIT (the feed's late-commit tests do)."""
        return tx.write()

    # -- maintenance -----------------------------------------------------------------------
    def compact(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None,
                *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Fold the fragments of matching series' chunks ``lo..hi`` into their chunk rows
        (:mod:`._compact`); a store without a fragment table has nothing to fold."""
        from curvestore.backends.postgres._compact import compact

        return compact(self, where, lo, hi, progress=progress)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections (idempotent; borrowed ones close when returned)."""
        self.pool.close()
        super().close()
