"""Running a read-merge-write against a backend: the checks every backend would otherwise
repeat (a transaction writes only its own keys; a replication target keeps state), and the
begin / commit / abort protocol with retries when an optimistic commit loses a race."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from curvestore.core.backend import Backend, StaleStateError, Transaction
from curvestore.core.records import Change, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import ConfigurationError, ConflictError, InvalidKeyError

if TYPE_CHECKING:
    from curvestore.core.batch import ChunkBatch

__all__ = ["CONFLICT_RETRIES", "ScopedTransaction", "run_transaction", "transaction"]

CONFLICT_RETRIES = 20


class ScopedTransaction(Transaction):
    """What a read-merge-write sees of a backend transaction: writes limited to its keys.
    ``committed`` holds the changes once :func:`transaction` committed it; ``staged_points``
    and ``staged_bytes`` sum the valid points and payload bytes staged (for tracing)."""

    def __init__(self, tx: Transaction, keys: frozenset[SeriesKey]) -> None:
        self._tx = tx
        self._keys = keys
        self.committed: list[Change] = []
        self.staged_points = 0
        self.staged_bytes = 0

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        return self._tx.read(key, lo, hi)

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return self._tx.live_metas(key)

    def put(self, records: Sequence[ChunkRecord]) -> None:
        keys = self._keys
        points = size = 0
        for record in records:
            if record.key not in keys:
                raise InvalidKeyError(
                    f"series {record.key!r} is not part of this transaction (it was begun "
                    "for other keys); nothing was committed", record.key)
            points += record.meta.count
            size += len(record.payload)
        self._tx.put(records)
        self.staged_points += points
        self.staged_bytes += size

    def live_chunks(self) -> Any:
        """The backend's :meth:`BatchTransaction.live_chunks` (batch transactions only)."""
        return self._batch().live_chunks()

    def read_chunks(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord | None]:
        """The live record of each ``(key, chunk)`` (None where there is none): the backend's
        :meth:`BatchTransaction.read_chunks` when its transaction has it, else one ``read``
        per series."""
        read_chunks = getattr(self._tx, "read_chunks", None)
        if read_chunks is not None:
            return list(read_chunks(refs))
        wanted: dict[SeriesKey, list[int]] = {}
        for key, chunk in refs:
            wanted.setdefault(key, []).append(chunk)
        found: dict[tuple[SeriesKey, int], ChunkRecord] = {}
        for key, chunks in wanted.items():
            for record in self._tx.read(key, min(chunks), max(chunks)):
                found[(key, record.chunk)] = record
        return [found.get(ref) for ref in refs]

    def put_batch(self, batch: ChunkBatch) -> None:
        """The backend's :meth:`BatchTransaction.put_batch`, once the batch's keys are
        checked to be the transaction's."""
        keys = self._keys
        if len(batch.keys) != len(keys) or not keys.issuperset(batch.keys):
            raise InvalidKeyError("a batch must name exactly the keys its transaction was "
                                  "begun for; nothing was committed")
        self._batch().put_batch(batch)
        self.staged_points += int(batch.count.sum())
        self.staged_bytes += len(batch.data)

    def _batch(self) -> Any:
        if not hasattr(self._tx, "put_batch"):
            raise ConfigurationError(f"{type(self._tx).__name__} does not take batches (its "
                                     "backend does not implement WritesBatches)")
        return self._tx

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        set_state = getattr(self._tx, "set_state", None)
        if set_state is None:
            raise ConfigurationError(f"{type(self._tx).__name__} cannot keep state (its "
                                     "backend cannot be a replication target)")
        set_state(name, value, expected=expected)

    def commit(self) -> list[Change]:
        raise RuntimeError("the core commits the transaction when the body returns")


def run_transaction(backend: Backend, keys: Sequence[SeriesKey],
                    body: Callable[[ScopedTransaction], object], *,
                    retries: int = CONFLICT_RETRIES,
                    begin: Callable[[Sequence[SeriesKey]], Transaction] | None = None
                    ) -> list[Change]:
    """Run ``body(tx)`` in a transaction over ``keys`` and commit it; re-run it all when the
    commit (or a read) raises :class:`ConflictError`, up to ``retries`` times. A lost
    compare-and-set of saved state (:class:`StaleStateError`) is not retried: the same body
    would lose again. ``begin`` replaces ``backend.begin`` (``begin_batch`` of a backend that
    writes batches); it receives the keys sorted and distinct."""
    ordered = sorted(set(keys))
    scope = frozenset(ordered)
    start = backend.begin if begin is None else begin
    for attempt in range(retries):
        try:
            tx = start(ordered)
            try:
                body(ScopedTransaction(tx, scope))
            except BaseException:
                tx.abort()
                raise
            return tx.commit()
        except StaleStateError:
            raise
        except ConflictError:
            if attempt == retries - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@contextmanager
def transaction(backend: Backend, keys: Sequence[SeriesKey]) -> Iterator[ScopedTransaction]:
    """``with transaction(backend, keys) as tx``: one attempt of a read-merge-write straight on
    a backend (committed on a clean exit, aborted on an exception; no retry, no read-only
    check). For tests and tools that drive a backend; stores use :meth:`Store.transact`."""
    ordered = sorted(set(keys))
    tx = backend.begin(ordered)
    scoped = ScopedTransaction(tx, frozenset(ordered))
    try:
        yield scoped
    except BaseException:
        tx.abort()
        raise
    scoped.committed = tx.commit()
