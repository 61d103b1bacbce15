"""The backend contract.

A backend stores :class:`~curvestore.core.records.ChunkRecord` s and knows nothing about pandas,
grids, merging or codecs: the core owns those. What a backend must provide:

* a manifest (the store's frozen config as a JSON-able dict), created once;
* reads: the live chunks of one series in a chunk-index range, a scan of many series ordered by
  key (one series' chunks at a time, so callers can stream), payload-free metas, series lists;
* transactions: ``with backend.transaction(keys) as tx`` gives exclusive access to those series
  (file locks, row locks, or optimistic conditional writes that raise :class:`ConflictError`
  at commit, in which case the core re-runs its whole read-merge-write); inside, the core reads
  current state and ``tx.put``\\ s new chunks and tombstones; leaving the block without an
  exception commits them all-or-nothing where the medium allows it (a backend that cannot
  commit several objects atomically documents it and commits each chunk atomically);
* a change feed: every committed put or tombstone exactly once, in commit order, after an
  opaque cursor that stays valid across restarts;
* ``close()``, idempotent.

Versions are assigned by the backend at commit and grow strictly for each chunk; the change
feed's order is the commit order. Payload checksums are verified by the core on decode; a
backend that wraps records in its own framing verifies that framing itself.

Key filters (``where``) are dicts of key name -> value over a subset of the store's keys;
the core validates them before they reach a backend. Backends learn the key schema through
:meth:`Backend.bind` right after the manifest has been read or created.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from curvestore.errors import ConfigurationError, ConflictError, ReadOnlyError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema
    from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
    from curvestore.core.url import StoreURL

__all__ = ["Backend", "IntegrityProblem", "Transaction", "bound_schema", "stale_state"]

#: A problem found by :meth:`Backend.check_integrity`: (series key or None for the store
#: as a whole, chunk index or None, message naming what is damaged).
IntegrityProblem = tuple["SeriesKey | None", "int | None", str]


class Transaction(ABC):
    """Exclusive read-modify-write access to a set of series, committed on success.

    After a successful commit, ``committed`` lists the changes written, in commit order.
    """

    committed: list[Change]

    @abstractmethod
    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        """Metas of the series' live chunks (tombstones excluded), ordered by chunk."""

    @abstractmethod
    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        """The series' live chunks with ``lo <= chunk <= hi``, ordered by chunk."""

    @abstractmethod
    def put(self, records: Sequence[ChunkRecord]) -> None:
        """Stage chunks to write; a record whose ``meta.deleted`` is true is a tombstone.

        Only keys passed to :meth:`Backend.transaction` may be written. The version in the
        given metas is ignored: the backend assigns the next one at commit. ``updated_at`` is
        kept when non-zero (replicated chunks keep their origin's time), else set to now.
        """

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        """Store a small named value (a replication cursor) in the same commit as the puts,
        if the value stored under ``name`` when the commit lands is ``expected`` (None: no
        value); otherwise the whole commit fails with :class:`ConflictError`.

        The comparison and the write are one atomic step with the commit (under the commit's
        lock, row lock or conditional write), so two replications into one target can never
        both commit from the same cursor: the slower one cannot land a stale page.
        Backends that can be replication targets override this and :meth:`Backend.get_state`.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot be a replication target (no set_state)"
        )


def stale_state(name: str) -> ConflictError:
    """The error of a :meth:`Transaction.set_state` whose expected value was overtaken."""
    return ConflictError(
        f"state {name!r} changed while this commit was prepared (another replication into "
        "this store committed first); nothing was committed")


def bound_schema(schema: KeySchema | None) -> KeySchema:
    """``schema`` once :meth:`Backend.bind` has set it. The core binds every backend it opens
    before using it, so the RuntimeError is only met by code that drives a backend directly
    and forgot to bind it."""
    if schema is None:
        raise RuntimeError("bind() was not called: the backend does not know the key schema")
    return schema


class Backend(ABC):
    """Where chunk records live. Subclasses set ``schemes`` and implement the abstract methods.

    Note for implementers: ``scan`` is the bulk read path. It must stream (one series' chunks
    in memory at a time) and batch its I/O (bulk listing, server-side cursors, concurrent
    fetches); a loop calling :meth:`read_chunks` per key is correct but slow.
    """

    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.schema: KeySchema | None = None
        self.closed = False

    @classmethod
    @abstractmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> Backend:
        """Build from a parsed URL; reject options you do not know (ConfigurationError)."""

    @classmethod
    def check_available(cls) -> None:
        """Raise BackendNotInstalledError (naming the pip extra) if the driver is missing.

        Called when the scheme is looked up, before ``from_url``, and by ``curvestore
        plugins``; it imports the driver and does no I/O. The default needs no driver.
        """
        return  # deliberately concrete: most backends have nothing to check

    # -- manifest --------------------------------------------------------------------------
    @abstractmethod
    def read_manifest(self) -> dict[str, Any] | None:
        """The stored manifest, or None if no store exists at this location."""

    @abstractmethod
    def create_manifest(self, manifest: dict[str, Any]) -> None:
        """Create the store (StoreExistsError if a manifest is already there)."""

    def bind(self, schema: KeySchema) -> None:
        """Learn the store's key schema (called once the manifest is known)."""
        self.schema = schema

    # -- reads -----------------------------------------------------------------------------
    @abstractmethod
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        """Live chunks of one series with ``lo <= chunk <= hi`` (None: unbounded), by chunk."""

    @abstractmethod
    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        """Each matching series with live chunks in range, ordered by key, chunks by index."""

    @abstractmethod
    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        """Each matching series that has live chunks, with their metas; ordered by key."""

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        """Keys of matching series with at least one live chunk, ordered.

        Note for implementers: the default walks every meta; override it when cheaper.
        """
        for key, _metas in self.list_metas(where):
            yield key

    # -- writes ----------------------------------------------------------------------------
    @abstractmethod
    def transaction(self, keys: Sequence[SeriesKey]) -> AbstractContextManager[Transaction]:
        """Exclusive access to ``keys`` for a read-merge-write, committed on clean exit."""

    def get_state(self, name: str) -> str | None:
        """A value saved by :meth:`Transaction.set_state`, or None."""
        raise ConfigurationError(
            f"{type(self).__name__} cannot be a replication target (no get_state)"
        )

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        """The current state of chunks named by ``(key, chunk)``: the live record, or a
        tombstone record when the chunk is deleted or absent. Used to export changes.

        Note for implementers: the default reads each series' range; override it to batch.
        """
        from curvestore.core.records import ChunkMeta, ChunkRecord

        by_key: dict[SeriesKey, list[int]] = {}
        for key, chunk in refs:
            by_key.setdefault(key, []).append(chunk)
        out = []
        for key, chunks in by_key.items():
            live = {r.chunk: r for r in self.read_chunks(key, min(chunks), max(chunks))}
            for chunk in chunks:
                record = live.get(chunk)
                out.append(record if record is not None
                           else ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True)))
        return out

    def check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self!r} is open read-only")

    # -- integrity -------------------------------------------------------------------------
    def check_integrity(self, where: Mapping[str, Any]
                        ) -> tuple[list[SeriesKey] | None, list[IntegrityProblem]]:
        """Check what the backend keeps besides chunk payloads (manifest, journal or log,
        layout, indexes), for ``curvestore verify``. Returns the series keys to verify chunk
        by chunk (None: ask :meth:`list_series`) and every problem found, one per entry; it
        must not stop at the first one.

        Note for implementers: the default checks nothing; payload checksums are verified by
        the core for every backend.
        """
        return None, []

    # -- change feed -----------------------------------------------------------------------
    @abstractmethod
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Changes committed after ``cursor`` (None: from the beginning), in cursor order,
        filtered by ``where``.

        Cursors can be forged (they carry a checksum, not a signature), so a backend decodes
        them with :func:`curvestore.core.cursor.decode_cursor` (giving its position's arity)
        and raises :class:`~curvestore.errors.InvalidCursorError` for a position its feed
        never issued: beyond the current end, or between two entries where that can be told
        (:func:`~curvestore.core.cursor.unknown_position`). It never returns a page for such
        a position: a client would skip the changes in between. The shared suite forges
        cursors to check this (``curvestore.testing.cursors``).

        A page holds about ``limit`` changes; a backend whose cursor can only stand between
        committed batches may return more when one batch is bigger (never zero while changes
        remain). ``has_more`` is a hint that more changes were already committed.
        """

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
