"""The sync protocol: incremental, resumable, idempotent one-way replication.

1. The target reads its saved cursor for the source (one per source store and key filter).
2. It asks the source for the changes after that cursor, a page at a time.
3. It fetches the current raw records of the changed chunks (payloads as stored: never
   decoded or re-encoded), verifies their checksums, and imports them together with the new
   cursor in ONE target transaction.

So a crash at any point resumes from the last committed page without loss or duplication, and
running it again with nothing new copies nothing. The target's own writes never move the
source cursor, which is stored apart from the target's change feed; a source change always
overwrites the target's chunk (the source wins). Works in-process between any two stores and,
through :class:`ChangeSource`, with any source that can page its feed and fetch records (the
HTTP client implements it too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from curvestore.core.codec import CodecLookup
from curvestore.core.config import StoreConfig
from curvestore.core.records import ChangePage, ChunkRecord, SeriesKey, checksum
from curvestore.core.transact import CONFLICT_RETRIES, ScopedTransaction
from curvestore.errors import ConfigMismatchError, ConflictError, IntegrityError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["ChangeSource", "ReplicationReport", "StoreSource", "replicate"]


@runtime_checkable
class ChangeSource(Protocol):
    """What replication needs from a source."""

    def manifest(self) -> dict[str, Any]:
        """The source store's manifest (its frozen configuration and store id)."""

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """A page of the source's change feed (see :meth:`Store.raw_changes`)."""

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        """Current raw records of the named chunks, tombstones for deleted ones."""


class StoreSource:
    """A local :class:`Store` as a :class:`ChangeSource`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def manifest(self) -> dict[str, Any]:
        return self.store.config.manifest()

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        return self.store.raw_changes(cursor, where, limit)

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        return self.store.backend.fetch(refs)


@dataclass
class ReplicationReport:
    """What one :func:`replicate` call did."""

    pages: int = 0
    changes: int = 0
    chunks: int = 0
    tombstones: int = 0
    payload_bytes: int = 0
    cursor: str | None = None


def state_name(source_id: str, where: Mapping[str, Any]) -> str:
    """The name under which a target keeps its cursor for one source and key filter."""
    suffix = json.dumps(dict(sorted(where.items())), separators=(",", ":")) if where else ""
    return f"replica-of:{source_id}{':' + suffix if suffix else ''}"


def check_compatible(source: Mapping[str, Any], target: StoreConfig) -> None:
    """Both stores must share keys, grid and dtype (codecs may differ: chunks keep theirs)."""
    config = StoreConfig.from_manifest(source)
    differences = {
        name: (getattr(target, name), getattr(config, name))
        for name in ("keys", "freq", "tz", "chunking", "dtype")
        if getattr(target, name) != getattr(config, name)
    }
    if differences:
        raise ConfigMismatchError(differences)


def verify(records: Sequence[ChunkRecord], codecs: CodecLookup) -> None:
    """Refuse records whose payload fails its checksum or whose codec is unknown here."""
    for record in records:
        if record.meta.deleted:
            continue
        if checksum(record.payload) != record.meta.checksum or \
                len(record.payload) != record.meta.size:
            raise IntegrityError(f"chunk {record.meta.chunk} of {record.key} arrived corrupt "
                                 "(checksum mismatch); nothing of this page was imported")
        codecs(record.meta.codec)


def replicate(
    source: Store | ChangeSource,
    target: Store,
    *,
    filter: Mapping[str, Any] | None = None,
    batch: int = 500,
    progress: Callable[[ReplicationReport], None] | None = None,
) -> ReplicationReport:
    """Copy to ``target`` every change of ``source`` since the target's saved cursor.

    Parameters
    ----------
    source
        A :class:`Store` or any :class:`ChangeSource` (e.g. the HTTP client).
    target
        The store receiving the chunks; its cursor for ``source`` is saved in the same commit
        as each imported page.
    filter
        A partial key: only matching series are replicated (a separate cursor is kept).
    batch
        Changes per page (one fetch and one target commit per page).
    progress
        Called after each committed page with the running report.
    """

    tracer = target.tracer
    if tracer is None:
        return _replicate(source, target, filter, batch, progress)
    with tracer.span("replicate", target):
        report = _replicate(source, target, filter, batch, progress)
        # the commits added series, chunks, points and bytes; pages are pulled in a thread
        tracer.count(pages=report.pages, changes=report.changes)
        return report


def _replicate(source: Store | ChangeSource, target: Store, filter: Mapping[str, Any] | None,
               batch: int, progress: Callable[[ReplicationReport], None] | None
               ) -> ReplicationReport:
    from curvestore.core.store import Store

    src: ChangeSource = StoreSource(source) if isinstance(source, Store) else source
    manifest = src.manifest()
    check_compatible(manifest, target.config)
    target.check_writable()
    target.require_state()
    where = target.schema.filter(filter)
    name = state_name(str(manifest["store_id"]), where)
    report = ReplicationReport(cursor=target.get_state(name))

    def pull(after: str | None) -> tuple[ChangePage, list[ChunkRecord]]:
        page = src.changes(after, where, batch)
        latest = {(c.key, c.chunk): c for c in page.items}  # several changes of a chunk: once
        records = src.fetch(list(latest)) if latest else []
        verify(records, target.codecs)
        return page, records

    # Each page commits only if the target's saved cursor is still the one the page was
    # pulled after (compare-and-set in the same commit): when another replication into this
    # target committed first, this one's pulled pages may be stale (a chunk fetched before
    # the source changed it again), so they are dropped and pulling resumes from the cursor
    # the other run saved. Every conflict means another commit landed, so the runs progress.
    for attempt in range(CONFLICT_RETRIES):
        try:
            _pull_pages(target, name, pull, report, progress)
            break
        except ConflictError:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            report.cursor = target.get_state(name)
    if report.changes:
        target.notify("sync_pulled", target=target, report=report)
    return report


def _pull_pages(target: Store, name: str,
                pull: Callable[[str | None], tuple[ChangePage, list[ChunkRecord]]],
                report: ReplicationReport,
                progress: Callable[[ReplicationReport], None] | None) -> None:
    """Pull pages after ``report.cursor`` and commit them in order until the feed's end.

    One page is pulled ahead while the previous one commits: reading the source (or the
    network) and writing the target overlap instead of adding up. Pages still commit in
    order, each with its own cursor, so a crash leaves the target at a page boundary."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curvestore-pull") as puller:
        ahead: Future[tuple[ChangePage, list[ChunkRecord]]] | None = puller.submit(
            pull, report.cursor)
        try:
            while ahead is not None:
                page, records = ahead.result()
                last = not page.has_more or not page.items
                ahead = None if last else puller.submit(pull, page.cursor)
                _commit_page(target, name, report.cursor, page, records)
                report.cursor = page.cursor
                report.pages += 1
                report.changes += len(page.items)
                report.chunks += sum(1 for r in records if not r.meta.deleted)
                report.tombstones += sum(1 for r in records if r.meta.deleted)
                report.payload_bytes += sum(len(r.payload) for r in records)
                if progress is not None:
                    progress(report)
        finally:
            if ahead is not None:
                ahead.cancel()


def _commit_page(target: Store, name: str, cursor: str | None, page: ChangePage,
                 records: list[ChunkRecord]) -> None:
    """Import one page and its cursor in one target transaction, if the saved cursor is
    still ``cursor`` (ConflictError otherwise)."""
    if not records and page.cursor == cursor:
        return
    keys = sorted({r.key for r in records})

    def body(tx: ScopedTransaction) -> None:
        tx.put(records)
        tx.set_state(name, page.cursor, expected=cursor)

    # a conflict on the chunks re-runs this same page (the source wins anyway); a lost
    # compare-and-set of the cursor (StaleStateError) goes up to re-pull from the new cursor
    target.transact(keys, body)
