"""Reading rows' payloads from segments, and turning rows into records or pieces.

Payloads are fetched with one ranged read per run of nearby rows of a segment (rows of one
commit sit back to back, so a scan of many series reads each segment in a few requests), and
every payload's CRC-32 is checked before it is decoded or joined. A chunk with fragments is
handed to readers of records as one record (fragments joined by decoding and re-encoding, as
an update would store it) and to readers of pieces as one piece per row (no re-encode).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core import chunks as _chunks
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.engine._format import sort_key
from curvestore.errors import IntegrityError

if TYPE_CHECKING:
    from curvestore.core.codec import Codec
    from curvestore.engine._catalog import Catalog
    from curvestore.objects.base import ObjectStore

__all__ = ["SegmentGone", "decode_rows", "fetch_payloads", "meta_of", "outside", "row_pieces",
           "row_records"]

#: Rows of one segment closer than this are read with one request (a request costs more
#: than reading this many bytes more, on files and on S3 alike).
_COALESCE_GAP = 256 << 10


class SegmentGone(Exception):
    """A segment a snapshot refers to was removed (compacted away meanwhile): re-read."""


@functools.lru_cache(maxsize=64)
def codec_named(codec_id: str) -> Codec:
    from curvestore.registry import get_codec  # the engine sits above the registry

    return get_codec(codec_id)


def fetch_blocks(objects: ObjectStore, catalog: Catalog, rows: np.ndarray, *,
                 views: bool = False) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Read the bytes of ``rows`` with one ranged read per run of nearby rows of a segment:
    the blocks read (with ``views``, maybe read-only buffers: see
    :meth:`~curvestore.objects.base.ObjectStore.get_ranges`), and for each row the block
    holding it and its offset there."""
    obj, offset, size = rows["obj"], rows["offset"], rows["size"]
    if len(rows) == 1:  # one chunk (a month read): the request as it is, no planning
        requests = [(catalog.objects[int(obj[0])], int(offset[0]), int(size[0]))]
        return _fetched(objects, requests, views), np.zeros(1, np.int64), np.zeros(1, np.int64)
    order = np.argsort(sort_key(obj, offset))
    o, a, n = obj[order], offset[order], size[order]
    end = a + n
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (o[1:] != o[:-1]) | (a[1:] - end[:-1] > _COALESCE_GAP)
    group = np.cumsum(starts) - 1
    firsts = np.flatnonzero(starts)
    lasts = np.append(firsts[1:], len(order)) - 1
    requests = [(catalog.objects[int(o[f])], int(a[f]), int(end[lo] - a[f]))
                for f, lo in zip(firsts.tolist(), lasts.tolist(), strict=True)]
    blobs = _fetched(objects, requests, views) if requests else []
    block = np.empty(len(rows), dtype=np.int64)
    rel = np.empty(len(rows), dtype=np.int64)
    block[order] = group
    rel[order] = a - a[firsts][group]
    return blobs, block, rel


def _fetched(objects: ObjectStore, requests: list[tuple[str, int, int]], views: bool
             ) -> list[Any]:
    """The blocks of ``requests``, every one there and whole."""
    blobs = objects.get_ranges(requests, views=views)
    if any(b is None for b in blobs):
        raise SegmentGone()
    for (key, _start, length), blob in zip(requests, blobs, strict=True):
        if len(blob) < length:
            raise IntegrityError(f"segment {key!r} is shorter than the catalog says "
                                 "(truncated); restore the store from a replica")
    return blobs


def fetch_payloads(objects: ObjectStore, catalog: Catalog, rows: np.ndarray, *,
                   views: bool = False) -> list[Any]:
    """The payload of each row, in row order: ``bytes``, or with ``views`` zero-copy
    memoryviews of the blocks read, large ones mapped rather than read where the store can
    (for work that only decodes them: a copy of every payload, and fresh memory for the
    blocks, cost more than the decoding)."""
    if not len(rows):
        return []
    blobs, block, rel = fetch_blocks(objects, catalog, rows, views=views)
    shown: list[Any] = [memoryview(b) for b in blobs] if views else blobs
    return [shown[g][r:r + k] for g, r, k in zip(block.tolist(), rel.tolist(),
                                                 rows["size"].tolist(), strict=True)]


def meta_of(catalog: Catalog, row: np.void) -> ChunkMeta:
    return ChunkMeta(chunk=int(row["chunk"]), start=int(row["start"]),
                     length=int(row["length"]), count=int(row["count"]),
                     codec=catalog.codecs[int(row["codec"])],
                     dtype=catalog.dtypes[int(row["dtype"])], checksum=int(row["checksum"]),
                     size=int(row["size"]), version=int(row["version"]),
                     updated_at=int(row["updated_at"]))


def row_pieces(catalog: Catalog, key: SeriesKey, rows: np.ndarray,
               payloads: Sequence[bytes]) -> list[_chunks.Piece]:
    """One decoded, checksum-verified piece per row (fragments are pieces of their own)."""
    return decode_rows(catalog, rows, payloads, lambda _row: key)


def decode_rows(catalog: Catalog, rows: np.ndarray, payloads: Sequence[bytes],
                key_of: Callable[[int], SeriesKey]) -> list[_chunks.Piece]:
    """:func:`row_pieces` for rows of many series (``key_of(row)`` names one in errors),
    with the columns read once: this is the loop of every bulk read."""
    codecs = [codec_named(c) for c in catalog.codecs]
    dtypes = [np.dtype(d) for d in catalog.dtypes]
    out = []
    for i, (payload, chunk, start, length, size, crc, codec, dtype) in enumerate(zip(
            payloads, rows["chunk"].tolist(), rows["start"].tolist(), rows["length"].tolist(),
            rows["size"].tolist(), rows["checksum"].tolist(), rows["codec"].tolist(),
            rows["dtype"].tolist(), strict=True)):
        if len(payload) != size or checksum(payload) != crc:
            raise IntegrityError(
                f"chunk {chunk} of series {key_of(i)} fails its checksum (stored data is "
                "corrupt); restore it from a replica or delete it")
        values = codecs[codec].decode(payload, dtype=dtypes[dtype], length=length)
        out.append(_chunks.Piece(chunk, start, values))
    return out


def outside(rows: np.ndarray, lo: int | None, hi: int | None, first: int | None,
            last: int | None) -> np.ndarray:
    """Which rows hold no point of the window: before offset ``first`` of chunk ``lo`` or
    after offset ``last`` of chunk ``hi``."""
    out = np.zeros(len(rows), dtype=bool)
    if lo is not None and first is not None:
        out |= (rows["chunk"] == lo) & (rows["start"] + rows["length"] <= first)
    if hi is not None and last is not None:
        out |= (rows["chunk"] == hi) & (rows["start"] > last)
    return out


def row_records(catalog: Catalog, key: SeriesKey, rows: np.ndarray,
                payloads: Sequence[bytes]) -> list[ChunkRecord]:
    """One record per chunk: a chunk with fragments joined into what an update stores."""
    if not len(rows):
        return []
    chunk = rows["chunk"]
    cuts = (np.flatnonzero(chunk[1:] != chunk[:-1]) + 1).tolist()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        if b - a == 1:
            out.append(ChunkRecord(key, meta_of(catalog, rows[a]), payloads[a]))
        else:
            out.append(_joined(catalog, key, rows[a:b], payloads[a:b]))
    return out


def _joined(catalog: Catalog, key: SeriesKey, rows: np.ndarray, payloads: Sequence[bytes]
            ) -> ChunkRecord:
    pieces = row_pieces(catalog, key, rows, payloads)
    first = pieces[0].start
    values = np.full(max(p.stop for p in pieces) - first, np.nan)
    for piece in pieces:
        values[piece.start - first:piece.stop - first] = piece.values
    last = meta_of(catalog, rows[-1])
    record = _chunks.encode(key, _chunks.Piece(last.chunk, first, values),
                            codec_named(last.codec), last.dtype)
    meta = record.meta.committed(int(rows["version"].max()), int(rows["updated_at"].max()))
    return ChunkRecord(key, meta, record.payload)
