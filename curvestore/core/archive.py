"""Archival: move the chunks of closed periods from a hot store to a cold one, losing nothing.

For every series (matching a filter), the chunks whose period ends at or before the cutoff are
copied to the target, one series per target commit, then read back from the target and
checked: payloads byte-identical (same codec), or, when re-encoding for the archive (e.g. with
pcodec), decoded values bit-identical to the source's. Only then, and only when asked, are
they tombstoned in the source, each one only if it did not change since it was copied (its
version is compared under the source's transaction). A chunk already present in the target
with the same content is skipped, so re-running is a no-op and a run killed at any point
resumes where it stopped.

Archival tombstones are marked (``codec="archived"``) so a tiered store can tell "moved to
cold storage" from "deleted by a user".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core import chunks as _chunks
from curvestore.core.codec import Codec, CodecLookup
from curvestore.core.grid import to_utc_ns
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.sync import check_compatible
from curvestore.errors import ConfigurationError, IntegrityError

if TYPE_CHECKING:
    from curvestore.core.backend import Transaction
    from curvestore.core.store import Store

__all__ = ["ARCHIVED", "ArchiveReport", "archive"]

ARCHIVED = "archived"  # codec field of the tombstones archival leaves in the source


@dataclass
class ArchiveReport:
    series: int = 0
    chunks: int = 0
    skipped: int = 0
    payload_bytes: int = 0
    tombstoned: int = 0


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a.view(np.uint64) == b.view(np.uint64)).all())


def _equivalent(source: ChunkRecord, copy: ChunkRecord | None, reencode: bool,
                codecs: CodecLookup) -> bool:
    if copy is None or copy.meta.start != source.meta.start or \
            copy.meta.length != source.meta.length:
        return False
    if not reencode:
        return copy.meta.codec == source.meta.codec and copy.payload == source.payload
    return _same_values(_chunks.decode(copy, codecs).values,
                        _chunks.decode(source, codecs).values)


def _converted(record: ChunkRecord, codec: Codec | None, codecs: CodecLookup) -> ChunkRecord:
    """The record as it goes to the archive: as stored, or re-encoded with ``codec``."""
    if codec is None or codec.codec_id == record.meta.codec:
        return record
    piece = _chunks.decode(record, codecs)
    encoded = _chunks.encode(record.key, piece, codec, record.meta.dtype)
    if not _same_values(_chunks.decode(encoded, codecs).values, piece.values):
        raise IntegrityError(f"re-encoding chunk {record.chunk} of {record.key} with "
                             f"{codec.codec_id} does not give back the same values; nothing "
                             "was archived")
    return encoded.with_meta(updated_at=record.meta.updated_at)


def archive(
    source: Store,
    target: Store,
    before: Any,
    *,
    filter: dict[str, Any] | None = None,
    delete_source: bool = False,
    codec: str | None = None,
    progress: Callable[[ArchiveReport], None] | None = None,
) -> ArchiveReport:
    """Copy every chunk whose period ends at or before ``before`` from ``source`` to
    ``target``; see the module docstring for the guarantees.

    Parameters
    ----------
    before
        The cutoff (str, datetime, Timestamp; naive means the store's time zone).
    delete_source
        Tombstone the archived chunks in the source after they were verified in the target.
    codec
        Re-encode for the archive (e.g. ``"pcodec"``); None keeps payloads byte-identical.
    """
    check_compatible(source.config.manifest(), target.config)
    target.check_writable()
    if delete_source:
        source.check_writable()
    codecs = target.codecs
    new_codec = None if codec is None else codecs(codec)
    cutoff = to_utc_ns(before, source.config.tz, name="before")
    if cutoff is None:
        raise ConfigurationError("archive needs a cutoff date (before=...)")
    grid = source.grid
    # the last point strictly before the cutoff (a cutoff after the grid's end takes it all)
    last = min(grid.position_at_or_before(cutoff), int(grid.bounds[-1])) - 1
    if last < 0:
        return ArchiveReport()
    hi = int(grid.chunk_of_positions(np.array([last]))[0])
    if sum(grid.period(hi)) > last + 1:  # that period is not over at the cutoff
        hi -= 1
    report = ArchiveReport()
    where = source.schema.filter(filter)
    for key in list(source.backend.list_series(where)):
        records = source.backend.read_chunks(key, None, hi)
        if not records:
            continue
        report.series += 1
        existing = {r.chunk: r for r in target.backend.read_chunks(key, None, hi)}
        todo = [r for r in records
                if not _equivalent(r, existing.get(r.chunk), codec is not None, codecs)]
        report.skipped += len(records) - len(todo)
        if todo:
            copies = [_converted(r, new_codec, codecs) for r in todo]

            def put_copies(tx: Transaction, copies: list[ChunkRecord] = copies) -> None:
                tx.put(copies)

            target.transact([key], put_copies)
            stored = {r.chunk: r for r in target.backend.read_chunks(key, None, hi)}
            for record in todo:
                if not _equivalent(record, stored.get(record.chunk), codec is not None,
                                   codecs):
                    raise IntegrityError(f"chunk {record.chunk} of {key} does not read back "
                                         "identical from the archive; the source is untouched")
            report.chunks += len(todo)
            report.payload_bytes += sum(len(c.payload) for c in copies)
        if delete_source:
            versions = {r.chunk: r.meta.version for r in records}

            def tombstone(tx: Transaction, key: SeriesKey = key,
                          versions: dict[int, int] = versions) -> None:
                current = tx.read(key, None, hi)
                tx.put([ChunkRecord(key, ChunkMeta(chunk=r.chunk, codec=ARCHIVED, deleted=True))
                        for r in current if versions.get(r.chunk) == r.meta.version])

            report.tombstoned += len(source.transact([key], tombstone))
        if progress is not None:
            progress(report)
    return report
