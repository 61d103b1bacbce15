"""The backend contract.

A backend stores :class:`~curvestore.core.records.ChunkRecord` s and knows nothing about pandas,
grids, merging, codecs or cursors: the core owns those. What a backend must provide:

* a manifest (the store's frozen config as a JSON-able dict), created once;
* reads: the live chunks of one series in a chunk-index range, the keys of the series that have
  live chunks; bulk reads (``scan``, ``list_metas``) have defaults built on those two that a
  backend overrides to batch its I/O;
* transactions: ``backend.begin(keys)`` gives exclusive access to those series (file locks, row
  locks, or optimistic conditional writes that raise :class:`ConflictError` at commit, in which
  case the core re-runs its whole read-merge-write); the core reads current state, ``put`` s new
  chunks and tombstones, then calls ``commit()``, which writes them all-or-nothing where the
  medium allows it (a backend that cannot commit several objects atomically documents it and
  commits each chunk atomically), or ``abort()``, which forgets them;
* a change feed: every committed put or tombstone exactly once, in commit order, as batches
  each followed by a *position* (a tuple of non-negative integers) that stays valid across
  restarts; the core turns positions into opaque cursors and filters by key;
* ``close()``, idempotent.

The core checks what is the same for every backend before a call reaches it: that the store
is writable, that a transaction only writes the keys it was opened for, that cursors are
well-formed and come from this store, and that key filters are valid. Versions are assigned
by the backend at commit and grow strictly for each chunk; the change feed's order is the
commit order. Payload checksums are verified by the core on decode; a backend that wraps
records in its own framing verifies that framing itself.

Optional capabilities are declared by implementing a protocol of
:mod:`curvestore.core.capabilities` (keeping replication state, checking integrity, decoding
pieces itself); the core checks them once, when the store is opened.

Key filters (``where``) are dicts of key name -> value over a subset of the store's keys.
Backends learn the key schema through :meth:`Backend.bind` right after the manifest has been
read or created.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from curvestore.errors import ConflictError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema
    from curvestore.core.records import (
        Change,
        ChunkMeta,
        ChunkRecord,
        FeedBatch,
        Position,
        SeriesKey,
    )
    from curvestore.core.url import StoreURL

__all__ = ["Backend", "IntegrityProblem", "StaleStateError", "Transaction", "bound_schema",
           "stale_state"]

#: A problem found by a backend's ``check_integrity``: (series key or None for the store
#: as a whole, chunk index or None, message naming what is damaged).
IntegrityProblem = tuple["SeriesKey | None", "int | None", str]


class StaleStateError(ConflictError):
    """A commit's compare-and-set of a saved state lost to another commit (see
    :meth:`curvestore.core.capabilities.StateTransaction.set_state`). Unlike other conflicts,
    re-running the same commit cannot succeed: the caller must re-read the state."""


class Transaction(ABC):
    """Exclusive read-modify-write access to a set of series, made by :meth:`Backend.begin`.

    The core calls :meth:`read` / :meth:`live_metas` and :meth:`put` any number of times, then
    exactly one of :meth:`commit` or :meth:`abort`. It has checked that every record put
    belongs to one of the transaction's keys.
    """

    @abstractmethod
    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        """The series' live chunks with ``lo <= chunk <= hi``, ordered by chunk, as the
        transaction sees them. The core reads a chunk before it puts it, never after, so
        whether a backend shows its own staged puts here is left open."""

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        """Metas of the series' live chunks (tombstones excluded), ordered by chunk.

        Note for implementers: the default reads the payloads too; override it when cheaper.
        """
        return [r.meta for r in self.read(key)]

    @abstractmethod
    def put(self, records: Sequence[ChunkRecord]) -> None:
        """Stage chunks to write; a record whose ``meta.deleted`` is true is a tombstone.

        The version in the given metas is ignored: the backend assigns the next one at
        commit. ``updated_at`` is kept when non-zero (replicated chunks keep their origin's
        time), else set to the commit time. A chunk put twice keeps the last record.
        """

    @abstractmethod
    def commit(self) -> list[Change]:
        """Write everything staged, all-or-nothing, and release the transaction's locks;
        return the changes written, in commit order. Raises :class:`ConflictError` when an
        optimistic commit lost a race (nothing was written; the core retries)."""

    def abort(self) -> None:
        """Forget everything staged and release the transaction's locks. Called instead of
        :meth:`commit` when the core's read-merge-write failed; must not raise.

        Note for implementers: the default does nothing (a transaction that stages in memory
        and takes no lock before commit has nothing to undo)."""
        return  # deliberately concrete: optimistic transactions hold nothing until commit


def stale_state(name: str) -> StaleStateError:
    """The error of a ``set_state`` whose expected value was overtaken."""
    return StaleStateError(
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

    ``feed_arity`` is the number of integers in a change-feed position (the core refuses a
    cursor whose position has another length before it reaches :meth:`feed`).

    Note for implementers: ``scan`` is the bulk read path. It must stream (one series' chunks
    in memory at a time) and batch its I/O (bulk listing, server-side cursors, concurrent
    fetches); the default, a loop calling :meth:`read_chunks` per key, is correct but slow.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    feed_arity: int = 1

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
        """Create the store (StoreExistsError if a manifest is already there). The core only
        calls it on a backend opened for writing."""

    def bind(self, schema: KeySchema) -> None:
        """Learn the store's key schema (called once the manifest is known)."""
        self.schema = schema

    # -- reads -----------------------------------------------------------------------------
    @abstractmethod
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        """Live chunks of one series with ``lo <= chunk <= hi`` (None: unbounded), by chunk."""

    @abstractmethod
    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        """Keys of matching series with at least one live chunk, ordered."""

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        """Each matching series with live chunks in range, ordered by key, chunks by index."""
        for key in list(self.list_series(where)):
            records = self.read_chunks(key, lo, hi)
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        """Each matching series that has live chunks, with their metas; ordered by key.

        Note for implementers: the default reads every payload; override it when cheaper.
        """
        for key, records in self.scan(where):
            yield key, [r.meta for r in records]

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

    # -- writes ----------------------------------------------------------------------------
    @abstractmethod
    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        """Start a read-merge-write over ``keys`` (sorted, distinct): take whatever locks or
        snapshot the transaction needs. The core then calls the transaction's ``commit`` or
        ``abort``; it only begins transactions on a backend opened for writing."""

    # -- change feed -----------------------------------------------------------------------
    @abstractmethod
    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        """The batches of changes committed after position ``after`` (None: from the start),
        in commit order; each batch carries the position right after it.

        The core cuts pages between batches and stops iterating (closing the iterator) once
        it has about ``limit`` changes, so a backend sizes its reads on ``limit`` and yields
        lazily. ``where`` is a hint: a backend may leave out changes of series that do not
        match (the core filters again), and may yield a batch without changes to move the
        position past what it left out.

        ``after`` comes from a cursor, and cursors can be forged (they carry a checksum, not
        a signature): a backend raises :class:`~curvestore.errors.InvalidCursorError`
        (:func:`~curvestore.core.cursor.unknown_position`) for a position its feed never
        issued, beyond the current end or between two batches where that can be told, before
        yielding anything. A client handed such a page would skip the changes in between.
        The shared suite forges cursors to check this (``curvestore.testing.cursors``).
        """

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
