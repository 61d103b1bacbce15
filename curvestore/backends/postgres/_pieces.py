"""A chunk row and its fragments, as the PostgreSQL backend's reads return them.

Stores with a fragment table (see :mod:`._ddl`) keep appended days as rows of their own.
Reads fetch each chunk row with its fragments packed into three values by one lateral
aggregate (:mod:`._fragment_sql`), so a chunk costs one row whatever its fragments: their
metas as fixed-size big-endian records (:data:`FRAGMENT_DTYPE`, read with numpy), their
codec and dtype names as one text, and their payloads back to back, all in version order.

Readers of pieces get one piece per stored part (no re-encode: a fragment of raw values is a
view of the bytes read); readers of records get one record per chunk, its fragments joined
into what an update would store (decoded, laid after the chunk's values, encoded with the
chunk's codec). Every part's checksum is checked before it is used, so ``curvestore verify``,
which reads records, covers fragments too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curvestore.backends.postgres._copybin import spans
from curvestore.core import chunks as _chunks
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError

__all__ = ["FRAGMENT_DTYPE", "Fragments", "join_record", "pieces_of"]

#: One fragment's meta as the reads pack it (``_fragment_sql``): span, valid points,
#: checksum, payload size, version and commit time.
FRAGMENT_DTYPE = np.dtype([("start", ">i4"), ("length", ">i4"), ("count", ">i4"),
                           ("checksum", ">i8"), ("size", ">i4"), ("version", ">i8"),
                           ("updated_at", ">i8")])


@functools.lru_cache(maxsize=64)
def _codec(codec_id: str) -> object:
    from curvestore.registry import get_codec  # backends sit above the registry

    return get_codec(codec_id)


@functools.lru_cache(maxsize=64)
def _dtype(name: str) -> np.dtype:
    return np.dtype(name)


@dataclass(frozen=True, slots=True)
class Fragments:
    """The fragments of one chunk, in version order (the packed columns of a read)."""

    metas: np.ndarray
    names: list[str]
    data: bytes

    @classmethod
    def unpack(cls, metas: bytes | None, names: str | None, data: bytes | None
               ) -> Fragments | None:
        if metas is None or names is None or data is None:
            return None
        found = cls(np.frombuffer(metas, dtype=FRAGMENT_DTYPE), names.split(" "), data)
        version = found.metas["version"]
        return found if (version[1:] > version[:-1]).all() else found.in_order()

    def in_order(self) -> Fragments:
        """These fragments in version order (the reads aggregate them as an index returns
        them, which is that order unless the server chose another plan)."""
        order = np.argsort(self.metas["version"], kind="stable")
        ends = np.cumsum(self.metas["size"].astype(np.int64))
        starts = ends - self.metas["size"]
        view = memoryview(self.data)
        return Fragments(self.metas[order],
                         [n for i in order.tolist() for n in self.names[2 * i:2 * i + 2]],
                         b"".join(view[starts[i]:ends[i]] for i in order.tolist()))

    def __len__(self) -> int:
        return len(self.metas)

    def pieces(self, key: SeriesKey, chunk: int) -> list[_chunks.Piece]:
        """The fragments' values, each fragment's checksum checked first: one piece when
        they are all raw values of one dtype (laid out with numpy, a view of the bytes read
        when they follow each other without a gap, as daily appends do), else one each."""
        metas = self.metas
        names = self.names
        view = memoryview(self.data)
        sizes = metas["size"].tolist()
        ends = np.cumsum(metas["size"].astype(np.int64)).tolist()
        if not ends or ends[-1] != len(view):  # a payload is not the size its meta says
            raise IntegrityError(
                f"the fragments of chunk {chunk} of series {key} are not the size their metas "
                "say (stored data is corrupt); restore them from a replica or delete the "
                "series")
        for size, end, crc in zip(sizes, ends, metas["checksum"].tolist(), strict=True):
            if checksum(view[end - size:end]) != crc:
                raise IntegrityError(
                    f"a fragment of chunk {chunk} of series {key} fails its checksum (stored "
                    "data is corrupt); restore it from a replica or delete the series")
        codecs, dtypes = set(names[0::2]), set(names[1::2])
        if codecs == {"none"} and len(dtypes) == 1:
            return [_raw(key, chunk, metas, view, _dtype(dtypes.pop()))]
        out = []
        for i, (start, length, size, end) in enumerate(zip(
                metas["start"].tolist(), metas["length"].tolist(), sizes, ends, strict=True)):
            values = _codec(names[2 * i]).decode(  # type: ignore[attr-defined]
                bytes(view[end - size:end]), dtype=_dtype(names[2 * i + 1]), length=length)
            out.append(_chunks.Piece(chunk, start, values))
        return out


def _raw(key: SeriesKey, chunk: int, metas: np.ndarray, view: memoryview, dtype: np.dtype
         ) -> _chunks.Piece:
    """Raw fragments of one dtype as one piece (NaN between fragments that leave a gap; a
    later fragment wins where two overlap)."""
    values = np.frombuffer(view, dtype=dtype.newbyteorder("<"))
    start = metas["start"].astype(np.int64)
    length = metas["length"].astype(np.int64)
    if len(values) != int(length.sum()):
        raise IntegrityError(f"the fragments of chunk {chunk} of series {key} hold "
                             f"{len(values)} values, their metas say {int(length.sum())}")
    stop = start + length
    first = int(start[0])
    if (start[1:] == stop[:-1]).all():
        return _chunks.Piece(chunk, first, values)
    out = np.full(int(stop.max()) - first, np.nan)
    out[spans(start - first, length)] = values
    return _chunks.Piece(chunk, first, out)


def _verified(record: ChunkRecord) -> _chunks.Piece:
    meta = record.meta
    if checksum(record.payload) != meta.checksum or len(record.payload) != meta.size:
        raise IntegrityError(f"chunk {meta.chunk} of series {record.key} fails its checksum "
                             "(stored data is corrupt); restore it from a replica or delete it")
    values = _codec(meta.codec).decode(  # type: ignore[attr-defined]
        record.payload, dtype=_dtype(meta.dtype), length=meta.length)
    return _chunks.Piece(meta.chunk, meta.start, values)


def pieces_of(record: ChunkRecord | None, key: SeriesKey, chunk: int,
              fragments: Fragments | None) -> list[_chunks.Piece]:
    """The chunk row's piece (None: left out of the read) then its fragments' pieces; later
    pieces win where they overlap, as the core assembles them."""
    out = [] if record is None else [_verified(record)]
    if fragments is not None:
        out += fragments.pieces(key, chunk)
    return out


def join_record(record: ChunkRecord, fragments: Fragments | None) -> ChunkRecord:
    """``record`` with its fragments joined into one payload in its codec (checked first), at
    the chunk's version and time: the newest of the row's and the fragments'."""
    if fragments is None or not len(fragments):
        return record
    meta = record.meta
    pieces = pieces_of(record, record.key, meta.chunk, fragments)
    return ChunkRecord(record.key, *_joined_parts(record.key, pieces, meta, fragments.metas))


def _joined_parts(key: SeriesKey, pieces: Sequence[_chunks.Piece], meta: ChunkMeta,
                  metas: np.ndarray) -> tuple[ChunkMeta, bytes]:
    first = min(p.start for p in pieces)
    values = np.full(max(p.stop for p in pieces) - first, np.nan)
    for piece in pieces:
        values[piece.start - first:piece.stop - first] = piece.values
    trimmed = _chunks.trim(_chunks.Piece(meta.chunk, first, values))
    if trimmed is None:
        raise IntegrityError(f"chunk {meta.chunk} of series {key} and its fragments hold no "
                             "value")
    joined = _chunks.encode(key, trimmed, _codec(meta.codec), meta.dtype)  # type: ignore[arg-type]
    version = max(meta.version, int(metas["version"].max()))
    updated = max(meta.updated_at, int(metas["updated_at"].max()))
    return joined.meta.committed(version, updated), joined.payload
