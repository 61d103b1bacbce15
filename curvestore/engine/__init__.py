"""The log-structured storage engine: one design for local files and object storage.

The engine is written against the small object interface of :mod:`curvestore.objects` (get,
ranged get, put-if-absent, put-if-match, atomic put, list, delete), so the same code stores on
local files and on S3. Its objects:

``manifest.json``
    The store's frozen configuration (the core's manifest) plus ``"engine": {"format": 2}``.
    Format 2 added entries that carry a small commit's payloads themselves; a store in
    format 1 is read, and written on in format 1. A store in another format is refused
    with a message naming the versions.
``log/<seq>`` (20 digits)
    Log entries, one per commit, created with ``put_if_absent``: creating entry ``seq`` is the
    commit point, so commits are all-or-nothing and totally ordered. Kinds: ``commit`` (rows
    of chunks written or tombstoned, new series, saved states) and ``compact`` (rows that
    rewrite existing chunks in a new layout without changing their content). The log is kept
    whole: it is the change feed.
``data/<random>.seg``
    Segments: the payloads (codec output) of one commit or one compaction, back to back,
    written before the entry that refers to them and never modified. A commit of at most
    64 KiB of payloads puts them in its entry instead (one object, not two: on files,
    two syncs instead of four), and its rows point into the entry.
``catalog/<seq>``
    Checkpoints of the catalog after entry ``seq`` (an optimisation: the log alone gives the
    same catalog).

Entries and checkpoints share one container (:mod:`curvestore.engine._format`): a JSON header
and a block of fixed-size rows (LZ4), closed by a CRC-32. A row is one chunk of one series:
where its payload is (segment, offset, size), its span, count of values, codec, dtype,
payload CRC-32, version (the entry's sequence number) and flags (tombstone, or *fragment*:
points appended after the chunk's stored end, kept beside the chunk instead of rewriting it).
So a daily append writes one segment of the new points and one entry, whatever the history.

The catalog (:mod:`curvestore.engine._catalog`) is the fold of the log: live rows as numpy
columns sorted by (series, chunk, version), series names as one column per key attribute.
Readers use the catalog instead of listing objects; metadata calls are reductions over it.
Compaction (:mod:`curvestore.engine._compact`) joins a chunk's fragments into one payload
when its period has closed or on demand, in new segments, and unreferenced segments are
removed after a grace period (readers holding an older catalog may still need them).
"""

from __future__ import annotations

__all__ = ["EngineBackend"]


def __getattr__(name: str) -> object:
    if name == "EngineBackend":
        from curvestore.engine.backend import EngineBackend

        return EngineBackend
    raise AttributeError(f"module 'curvestore.engine' has no attribute {name!r}")
