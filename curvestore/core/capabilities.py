"""Optional backend capabilities, as protocols.

A backend declares a capability by implementing the protocol's methods (no registration, no
base class); the store checks them once, when it is opened, and records the outcome in
:attr:`Store.capabilities`, so an operation that needs one fails before doing any work
(``replicate`` into a backend without state) instead of half way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from curvestore.core.backend import Backend, IntegrityProblem, Transaction
    from curvestore.core.batch import ChunkBatch, SeriesSummary
    from curvestore.core.chunks import Piece
    from curvestore.core.records import ChunkRecord, SeriesKey

__all__ = ["BatchTransaction", "Capabilities", "ChecksIntegrity", "Compacts", "DecodesPieces",
           "KeepsState", "ScansKeys", "StateTransaction", "Summarises", "WritesBatches"]


@runtime_checkable
class KeepsState(Protocol):
    """A backend that keeps small named values (replication cursors) in its commits: it can be
    a replication target. Its transactions implement :class:`StateTransaction`."""

    def get_state(self, name: str) -> str | None:
        """The value saved under ``name`` by a committed ``set_state``, or None."""


class StateTransaction(Protocol):
    """The transaction side of :class:`KeepsState`."""

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        """Save ``value`` under ``name`` in the same commit as the puts, if the value stored
        under ``name`` when the commit lands is ``expected`` (None: no value); otherwise the
        whole commit fails with :class:`~curvestore.core.backend.StaleStateError`
        (:func:`~curvestore.core.backend.stale_state`).

        The comparison and the write are one atomic step with the commit (under the commit's
        lock, row lock or conditional write), so two replications into one target can never
        both commit from the same cursor: the slower one cannot land a stale page."""


@runtime_checkable
class ChecksIntegrity(Protocol):
    """A backend that can check what it keeps besides chunk payloads (manifest, journal or
    log, layout, indexes), for ``curvestore verify``."""

    def check_integrity(self, where: Mapping[str, Any]
                        ) -> tuple[list[SeriesKey] | None, list[IntegrityProblem]]:
        """The series keys to verify chunk by chunk (None: ask ``list_series``) and every
        problem found, one per entry; it must not stop at the first one. Payload checksums
        are verified by the core for every backend."""


@runtime_checkable
class DecodesPieces(Protocol):
    """A backend whose stored form is not the core's encoded chunks (an adapter over another
    library's tables) and decodes pieces itself, so reads skip building checksummed records
    only to decode them again."""

    def read_pieces(self, key: SeriesKey, lo: int | None = None, hi: int | None = None, *,
                    first: int | None = None, last: int | None = None) -> list[Piece]:
        """What ``read_chunks`` and the core's decode would give. ``first`` is the offset in
        chunk ``lo``'s period of the first point the caller wants, ``last`` that of the last
        in chunk ``hi``: pieces of those chunks wholly outside may be left out (a backend
        that keeps a chunk in several pieces then reads only those it needs)."""

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None, *, first: int | None = None,
                    last: int | None = None) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        """What ``scan`` and the core's decode would give (``first``, ``last``: as for
        :meth:`read_pieces`)."""


@runtime_checkable
class ScansKeys(Protocol):
    """A backend that reads a given list of series in bulk, as ``scan_pieces`` reads the
    series of a filter: partitioned readers (one task per group of series) then cost what
    their series cost, not one call per series."""

    def scan_keys(self, keys: Sequence[SeriesKey], lo: int | None = None,
                  hi: int | None = None, *, first: int | None = None,
                  last: int | None = None) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        """Each of ``keys`` that has live chunks in range, with its decoded pieces, ordered
        by key (``first``, ``last``: as for :meth:`DecodesPieces.read_pieces`)."""


class BatchTransaction(Protocol):
    """A transaction that takes chunks as columns (:class:`~curvestore.core.batch.ChunkBatch`),
    made by :meth:`WritesBatches.begin_batch`. It is also a full
    :class:`~curvestore.core.backend.Transaction` (``read``, ``put``, ``commit``, ``abort``):
    the core may mix ``put`` (tombstones, merged chunks) with ``put_batch``; a chunk staged
    twice keeps the last one, fragments included: a fragment extends the chunk as committed
    before the transaction, never one staged in it (no writer stages both)."""

    def live_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(series, chunk, end)`` of every live chunk of the transaction's keys as this
        transaction sees them, ordered by (series, chunk): ``series`` indexes the keys given
        to ``begin_batch``, ``end`` is the offset right after the chunk's stored span
        (``start + length`` of its meta). int64 arrays."""

    def read_chunks(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord | None]:
        """Optional: the live record of each ``(key, chunk)`` of the transaction's keys as
        this transaction sees them (None where the chunk has none), as ``read`` would give
        them, for any number of chunks at once. The core reads what a batch overlaps through
        it when the transaction has it, and one ``read`` per series otherwise."""

    def put_batch(self, batch: ChunkBatch) -> None:
        """Stage a batch whose ``keys`` are the keys given to ``begin_batch``; rows with
        ``append`` set extend their chunk (see :class:`~curvestore.core.batch.ChunkBatch`),
        and the chunk's version is the commit's. The core only stages a fragment at or after
        the end :meth:`live_chunks` reported."""


@runtime_checkable
class WritesBatches(Protocol):
    """A backend that writes many chunks per commit from columns, and keeps fragments
    appended to a chunk without rewriting it (a log-structured backend): frame writes then
    cost what the new data costs. Others get the same writes as records."""

    #: Optional attribute: the codec id the backend wants fragments (``append`` rows) in,
    #: when not the store's (a log-structured engine keeps them raw, ``"none"``, to join
    #: many in bulk when it compacts); read with ``getattr``, absent means the store's.

    def begin_batch(self, keys: Sequence[SeriesKey]) -> Transaction:
        """:meth:`~curvestore.core.backend.Backend.begin`, returning a transaction that is
        also a :class:`BatchTransaction`."""


@runtime_checkable
class Summarises(Protocol):
    """A backend that answers metadata calls (``keys``, ``info``, ``max_timestamp``) from
    an index, without reading every series' chunk metas one by one."""

    def summarise(self, where: Mapping[str, Any]) -> SeriesSummary:
        """A :class:`~curvestore.core.batch.SeriesSummary` of the matching series."""


@runtime_checkable
class Compacts(Protocol):
    """A backend whose writes leave work for later (fragments appended beside chunks, segments
    that outlive what they hold): ``compact`` rewrites and cleans up, and returns a report of
    what it did (JSON-able numbers: chunks, rows, bytes read, written and removed...)."""

    def compact(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None,
                *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Compact the matching series' chunks ``lo..hi`` (None: unbounded), calling
        ``progress(done, total)`` as it goes."""


@dataclass(frozen=True)
class Capabilities:
    """Which optional protocols a store's backend implements."""

    state: bool
    integrity: bool
    pieces: bool
    batches: bool = False
    summaries: bool = False
    compacts: bool = False
    key_scans: bool = False

    @classmethod
    def of(cls, backend: Backend) -> Capabilities:
        return cls(state=isinstance(backend, KeepsState),
                   integrity=isinstance(backend, ChecksIntegrity),
                   pieces=isinstance(backend, DecodesPieces),
                   batches=isinstance(backend, WritesBatches),
                   summaries=isinstance(backend, Summarises),
                   compacts=isinstance(backend, Compacts),
                   key_scans=isinstance(backend, ScansKeys))
