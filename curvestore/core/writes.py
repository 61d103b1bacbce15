"""The per-series read-merge-write every write call runs inside its transaction: insert
refuses series that have data, update merges chunk by chunk with what is stored, replace
tombstones the chunks the new data does not cover. ``write``, ``write_many`` and, on backends
that do not write batches, ``write_frame`` all go through :func:`apply_writes`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curvestore.core import chunks as _chunks
from curvestore.core.backend import Transaction
from curvestore.core.codec import Codec, CodecLookup
from curvestore.core.config import KeySchema
from curvestore.core.merge import update
from curvestore.core.records import ChunkRecord, SeriesKey
from curvestore.errors import SeriesExistsError

__all__ = ["Prepared", "apply_writes", "has_values"]


@dataclass(slots=True)
class Prepared:
    """One series to write: its pieces, one per chunk period the input covers, and, when the
    caller encoded them already, ``records``: those pieces that hold a value, trimmed and
    encoded (frames encode all their columns at once)."""

    key: SeriesKey
    pieces: list[_chunks.Piece]
    records: list[ChunkRecord] | None = None


def has_values(item: Prepared) -> bool:
    return any(np.isfinite(p.values).any() for p in item.pieces)


def apply_writes(tx: Transaction, items: list[Prepared], mode: str, *, codec: Codec,
                 codecs: CodecLookup, dtype: str, schema: KeySchema) -> None:
    """Stage the writes of ``items`` (sorted by key) in ``tx`` with ``mode``'s rules; new
    chunks are encoded with ``codec``, stored ones decoded through ``codecs``."""
    if mode == "insert":
        existing = [p.key for p in items if tx.live_metas(p.key)]
        if existing:
            raise SeriesExistsError(schema.as_dict(k) for k in existing)
    for item in items:
        if mode == "update":
            tx.put(_updated(tx, item, codec, codecs, dtype))
            continue
        records = (item.records if item.records is not None
                   else _chunks.encode_trimmed(item.key, item.pieces, codec, dtype))
        if mode == "replace":
            written = {r.chunk for r in records}
            records = records + [_chunks.tombstone(item.key, m.chunk)
                                 for m in tx.live_metas(item.key) if m.chunk not in written]
        tx.put(records)


def _updated(tx: Transaction, item: Prepared, codec: Codec, codecs: CodecLookup, dtype: str
             ) -> list[ChunkRecord]:
    """The chunks of ``item`` merged with what is stored (``new.combine_first(old)``)."""
    if not item.pieces:
        return []
    chunk_ids = [p.chunk for p in item.pieces]
    old = {r.chunk: r for r in tx.read(item.key, min(chunk_ids), max(chunk_ids))}
    encoded = {} if item.records is None else {r.chunk: r for r in item.records}
    records = []
    for piece in item.pieces:
        record = old.get(piece.chunk)
        if record is None and piece.chunk in encoded:
            records.append(encoded[piece.chunk])  # nothing to merge with: already encoded
            continue
        old_piece = None if record is None else _chunks.decode(record, codecs)
        merged = update(old_piece, piece)
        if merged is not None:
            records.append(_chunks.encode(item.key, merged, codec, dtype))
    return records
