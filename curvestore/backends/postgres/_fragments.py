"""Fragments joined to the chunks they extend, for the PostgreSQL backend's batch commits.

A store created before the fragment table existed keeps one row per chunk, so there a
fragment (a batch row that extends its chunk, see :class:`~curvestore.core.batch.ChunkBatch`)
is stored as the joined chunk: the stored values,
NaN from the stored end to the fragment's start, then the fragment's values. Where the two
overlap (a writer that bypassed curvestore's locks extended the chunk meanwhile) the join is the
core's update rule, the new value wherever it is not NaN, so what is stored is always what
``write_many`` of the same data stores.

The rows of a batch are joined together: one flat buffer holds every joined chunk end to end,
gaps and fragments are laid into it and the valid points counted with a few numpy operations
for the whole batch. Only the checksums and the codec (a C call per payload) run row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curvestore.backends.postgres._copybin import spans
from curvestore.core.codec import CodecLookup
from curvestore.core.records import checksum
from curvestore.errors import IntegrityError

__all__ = ["Joined", "StoredValues", "decode_stored", "join"]


@dataclass(frozen=True, slots=True)
class StoredValues:
    """The decoded stored chunks that fragments extend, one per fragment."""

    start: np.ndarray
    length: np.ndarray
    count: np.ndarray
    values: Sequence[np.ndarray]

    def take(self, rows: np.ndarray) -> StoredValues:
        values = self.values
        return StoredValues(self.start[rows], self.length[rows], self.count[rows],
                            [values[i] for i in np.flatnonzero(rows).tolist()]
                            if rows.dtype == bool else [values[i] for i in rows.tolist()])


@dataclass(frozen=True, slots=True)
class Joined:
    """The joined chunks, one per fragment: what replaces the fragment's columns."""

    start: np.ndarray
    length: np.ndarray
    count: np.ndarray
    checksum: np.ndarray
    payloads: list[bytes]


_DTYPES: dict[str, np.dtype] = {}


def decode_stored(payload: bytes | memoryview, crc: int, size: int, codec_id: str, dtype: str,
                  length: int, codecs: CodecLookup, what: Callable[[], str]) -> np.ndarray:
    """A stored chunk's values, once its payload passed its checksum (``what()`` names the
    chunk in the IntegrityError raised otherwise)."""
    if checksum(payload) != crc or len(payload) != size:
        raise IntegrityError(f"{what()} fails its checksum (stored data is corrupt); restore it "
                             "from a replica or delete it")
    kind = _DTYPES.get(dtype)
    if kind is None:
        kind = _DTYPES[dtype] = np.dtype(dtype)
    return codecs(codec_id).decode(bytes(payload), dtype=kind, length=length)


def join(start: np.ndarray, length: np.ndarray, count: np.ndarray,
         payloads: Sequence[bytes | memoryview], codec_id: str, dtype: str,
         stored: StoredValues, codecs: CodecLookup) -> Joined:
    """Join fragments (``start``, ``length``, ``count`` valid points, ``payloads`` encoded
    with ``codec_id`` as ``dtype``) to the stored chunks they extend (``stored``, row for row)
    and encode the results with ``codec_id``: the store's codec, since this backend asks
    ``write_frame`` for no codec of its own for fragments (no ``fragment_codec``)."""
    stored_stop = stored.start + stored.length
    lo = np.minimum(stored.start, start)
    width = np.maximum(stored_stop, start + length) - lo
    at = np.zeros(len(width) + 1, dtype=np.int64)
    np.cumsum(width, out=at[1:])
    flat = np.empty(int(at[-1]))
    after = start >= stored_stop  # the fragment starts after the stored span: no overlap
    odd = np.flatnonzero(~after)
    flat[spans(at[odd], width[odd])] = np.nan
    gap = np.where(after, start - stored_stop, 0)
    flat[spans(at[:-1] + stored_stop - lo, gap)] = np.nan
    for value, place in zip(stored.values, (at[:-1] + stored.start - lo).tolist(), strict=True):
        flat[place:place + len(value)] = value
    codec = codecs(codec_id)
    kind = np.dtype(dtype)
    new = codec.decode_many([bytes(p) for p in payloads], dtype=kind, lengths=length.tolist())
    into = spans(at[:-1] + start - lo, length)
    keep = np.repeat(after, length) | ~np.isnan(new)
    flat[into[keep]] = new[keep]
    total = stored.count + count
    bounds = np.column_stack((at[:-1], at[1:]))
    first = lo.copy()
    ragged = np.isnan(flat[at[:-1]]) | np.isnan(flat[at[1:] - 1])
    for row in np.flatnonzero(ragged | ~after).tolist():  # overlaps, ends without a value
        a, b = bounds[row]
        present = np.flatnonzero(~np.isnan(flat[a:b]))
        total[row] = len(present)
        bounds[row] = a + present[0], a + present[-1] + 1
        first[row] += present[0]
    encoded = [codec.encode(flat[a:b].astype(kind, copy=False)) for a, b in bounds.tolist()]
    crcs = np.fromiter((checksum(p) for p in encoded), dtype=np.int64, count=len(encoded))
    return Joined(first, bounds[:, 1] - bounds[:, 0], total, crcs, encoded)
