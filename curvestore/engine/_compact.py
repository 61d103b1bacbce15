"""Compaction and garbage collection.

Compaction joins each selected chunk's rows (its base row and the fragments appended after it)
into one payload, written into new segments, and commits them with a ``compact`` log entry:
the same conditional create as a commit, so it is atomic and safe against a kill at any point
(before the entry exists nothing changed; after, the new layout is the state). It changes no
value, version or change-feed item, so writers never conflict with it; compaction itself
yields to them: a chunk a writer touched meanwhile is left out of the entry (its joined copy
is stale) and the rest is committed.

Garbage collection removes segments no live row refers to (those compaction replaced, and
those of commits that died before their entry) once they are older than a grace period (a
commit in flight writes its segment before its entry), and checkpoints but the newest two.
A reader holding an older catalog that meets a removed segment re-reads the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.chunks import Piece, encode
from curvestore.engine._catalog import Catalog, chunk_keys
from curvestore.engine._checkpoint import checkpoints, write_checkpoint
from curvestore.engine._format import (
    ROW,
    Container,
    catalog_key,
    encode_container,
    log_key,
    segment_key,
    segment_time,
)
from curvestore.engine._reads import SegmentGone, codec_named, fetch_payloads, row_pieces
from curvestore.errors import ConflictError

if TYPE_CHECKING:
    from curvestore.engine.backend import EngineBackend

__all__ = ["CompactionReport", "collect_garbage", "compact"]

#: Chunks joined per segment and entry: bounds the memory of one step.
_CHUNKS_PER_STEP = 50_000


@dataclass
class CompactionReport:
    """What a compaction did."""

    chunks: int = 0
    rows: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    entries: int = 0
    segments_removed: int = 0
    bytes_removed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compact(backend: EngineBackend, where: Mapping[str, Any], lo: int | None, hi: int | None,
            *, progress: Callable[[int, int], None] | None = None,
            grace: float = 3600.0) -> CompactionReport:
    """Join the fragments of every matching series' chunks ``lo..hi``; then collect garbage
    and checkpoint the catalog. ``progress(done, total)`` is called after each step (chunks)."""
    began = time.perf_counter()
    report = CompactionReport()
    catalog = backend.current()
    keys = _fragmented(catalog, backend.matching(catalog, where), lo, hi)
    total = len(keys)
    for at in range(0, total, _CHUNKS_PER_STEP):
        catalog = _step(backend, catalog, keys[at:at + _CHUNKS_PER_STEP], report)
        if progress is not None:
            progress(min(at + _CHUNKS_PER_STEP, total), total)
    backend.adopt(write_checkpoint(backend.objects, backend.current()))
    removed, freed = collect_garbage(backend, grace)
    report.segments_removed, report.bytes_removed = removed, freed
    report.seconds = time.perf_counter() - began
    return report


def _fragmented(catalog: Catalog, sids: np.ndarray, lo: int | None, hi: int | None
                ) -> np.ndarray:
    """Chunk keys (sorted) of the chunks of ``sids`` in ``lo..hi`` that have fragments."""
    rows, keys = catalog.rows, catalog.keys
    mask = np.isin(rows["sid"], sids)
    if lo is not None:
        mask &= rows["chunk"] >= lo
    if hi is not None:
        mask &= rows["chunk"] <= hi
    selected = keys[mask]
    if not len(selected):
        return selected
    unique, counts = np.unique(selected, return_counts=True)
    return unique[counts > 1]


def _step(backend: EngineBackend, catalog: Catalog, wanted: np.ndarray,
          report: CompactionReport) -> Catalog:
    for _attempt in range(5):
        try:
            rows = catalog.rows[np.isin(catalog.keys, wanted)]
            payloads = fetch_payloads(backend.objects, catalog, rows)
            break
        except SegmentGone:
            catalog = backend.current()
    else:
        raise ConflictError("segments kept disappearing under compaction; try again")
    new, data, codecs, dtypes = _joined(catalog, rows, payloads)
    report.rows += len(rows)
    report.bytes_read += int(rows["size"].sum())
    segment = segment_key()
    backend.objects.put(segment, data)
    try:
        while len(new):
            header = {"kind": "compact", "seq": catalog.seq + 1, "time_ns": time.time_ns(),
                      "objects": [segment], "codecs": codecs, "dtypes": dtypes}
            try:
                backend.objects.put_if_absent(log_key(catalog.seq + 1),
                                              encode_container(header, new))
            except ConflictError:
                newer = backend.current()
                touched = [e.rows for e in backend.entries(catalog.seq + 1, newer.seq)
                           if e.header.get("kind") != "compact" and len(e.rows)]
                if touched:
                    both = np.concatenate(touched)
                    new = new[~np.isin(chunk_keys(new["sid"], new["chunk"]),
                                       chunk_keys(both["sid"], both["chunk"]))]
                catalog = newer
                continue
            catalog = catalog.fold(Container(header, new))
            backend.adopt(catalog)
            report.chunks += len(new)
            report.bytes_written += len(data)
            report.entries += 1
            return catalog
    except BaseException:
        backend.discard(segment)
        raise
    backend.discard(segment)  # every chunk was rewritten by writers meanwhile
    return catalog


def _joined(catalog: Catalog, rows: np.ndarray, payloads: list[bytes]
            ) -> tuple[np.ndarray, bytes, list[str], list[str]]:
    """One base row per chunk of ``rows`` (sorted by chunk key) and the segment's bytes."""
    keys = chunk_keys(rows["sid"], rows["chunk"])
    firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bounds = np.r_[firsts, len(rows)]
    out = np.zeros(len(firsts), dtype=ROW)
    blobs: list[bytes] = []
    codecs: dict[str, int] = {}
    dtypes: dict[str, int] = {}
    offset = 0
    for i, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        part = rows[a:b]
        pieces = row_pieces(catalog, ("compaction",), part, payloads[a:b])
        first = pieces[0].start
        values = np.full(max(p.stop for p in pieces) - first, np.nan)
        for piece in pieces:
            values[piece.start - first:piece.stop - first] = piece.values
        codec = catalog.codecs[int(part["codec"][-1])]
        dtype = catalog.dtypes[int(part["dtype"][-1])]
        record = encode((), Piece(int(part["chunk"][0]), first, values), codec_named(codec),
                        dtype)
        meta, payload = record.meta, record.payload
        out[i] = (part["sid"][0], meta.chunk, part["version"].max(), 0,
                  codecs.setdefault(codec, len(codecs)), dtypes.setdefault(dtype, len(dtypes)),
                  offset, meta.size, meta.start, meta.length, meta.count, meta.checksum,
                  part["updated_at"].max(), 0)
        blobs.append(payload)
        offset += meta.size
    return (out, b"".join(blobs), sorted(codecs, key=codecs.__getitem__),
            sorted(dtypes, key=dtypes.__getitem__))


def collect_garbage(backend: EngineBackend, grace: float) -> tuple[int, int]:
    """Remove unreferenced segments older than ``grace`` seconds and checkpoints but the
    newest two; returns (segments removed, their bytes)."""
    objects = backend.objects
    catalog = backend.current()
    used = {catalog.objects[i] for i in np.unique(catalog.rows["obj"]).tolist()}
    cutoff = time.time_ns() - int(grace * 1e9)
    removed = freed = 0
    for info in list(objects.list("data/")):
        born = segment_time(info.key)
        if info.key in used or born is None or born > cutoff:
            continue
        backend.discard(info.key)
        removed += 1
        freed += info.size
    for seq in checkpoints(objects)[:-2]:
        backend.discard(catalog_key(seq))
    return removed, freed
