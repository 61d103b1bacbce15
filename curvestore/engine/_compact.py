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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.records import checksum
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
from curvestore.engine._reads import SegmentGone, codec_named, fetch_blocks
from curvestore.errors import ConflictError, IntegrityError

if TYPE_CHECKING:
    from curvestore.engine.backend import EngineBackend

__all__ = ["CompactionReport", "collect_garbage", "compact"]

#: Chunks joined per segment and entry: bounds the memory of one step.
_CHUNKS_PER_STEP = 20_000
#: Values joined per buffer (16 MiB of float64), reused from one buffer-full to the next.
_BUFFER_VALUES = 1 << 21


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
            blobs, block, rel = fetch_blocks(backend.objects, catalog, rows)
            break
        except SegmentGone:
            catalog = backend.current()
    else:
        raise ConflictError("segments kept disappearing under compaction; try again")
    new, data, codecs, dtypes = _joined(catalog, rows, blobs, block, rel)
    del blobs
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


def _joined(catalog: Catalog, rows: np.ndarray, blobs: list[bytes], block: np.ndarray,
            rel: np.ndarray) -> tuple[np.ndarray, bytes, list[str], list[str]]:
    """One base row per chunk of ``rows`` (sorted by chunk key, then version) and the new
    segment's bytes, from ``blobs`` read by :func:`fetch_blocks` (``block``, ``rel``: where
    each row's payload is).

    Every payload's CRC-32 is checked first. The chunks are laid end to end in one flat
    array (a chunk's rows never overlap: a fragment starts at or after the end of what
    precedes it): raw fragments (codec ``none``, how the engine keeps appended days) of one
    segment and length are copied as one 2-D block with one scatter, whatever the number of
    series; other rows are decoded one by one. Then each chunk is encoded once, with the codec
    of its newest row, in two threads (LZ4 releases the GIL)."""
    keys = chunk_keys(rows["sid"], rows["chunk"])
    firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bounds = np.r_[firsts, len(rows)]
    start, length, size = rows["start"], rows["length"], rows["size"]
    head = start[firsts]
    span = np.maximum.reduceat(start + length, firsts) - head
    base = np.r_[0, np.cumsum(span)[:-1]]
    owner = np.repeat(np.arange(len(firsts)), np.diff(bounds))
    dest = base[owner] + start - head[owner]
    views = [memoryview(b) for b in blobs]
    crcs = np.fromiter((checksum(views[g][r:r + k]) for g, r, k in zip(
        block.tolist(), rel.tolist(), size.tolist(), strict=True)), dtype=np.int64,
        count=len(rows))
    bad = np.flatnonzero(crcs != rows["checksum"])
    if len(bad):
        i = int(bad[0])
        raise IntegrityError(f"chunk {int(rows['chunk'][i])} of series sid "
                             f"{int(rows['sid'][i])} fails its checksum (stored data is "
                             f"corrupt; {len(bad)} such in this compaction); restore it from "
                             "a replica or delete it")
    raw_codec = catalog.codecs.index("none") if "none" in catalog.codecs else -1
    raw = rows["codec"] == raw_codec
    # a joined chunk takes the codec of its newest whole (not raw fragment) row, as an
    # update would re-encode it with the store's codec
    newest = np.maximum.reduceat(np.where(raw, -1, np.arange(len(rows))), firsts)
    last = np.where(newest >= 0, newest, bounds[1:] - 1)
    out = np.zeros(len(firsts), dtype=ROW)
    out["sid"], out["chunk"] = rows["sid"][firsts], rows["chunk"][firsts]
    out["version"] = np.maximum.reduceat(rows["version"], firsts)
    out["updated_at"] = np.maximum.reduceat(rows["updated_at"], firsts)
    out["start"], out["length"] = head, span
    out["count"] = np.add.reduceat(rows["count"], firsts)
    tables: dict[str, list[str]] = {}
    for field, names in (("codec", catalog.codecs), ("dtype", catalog.dtypes)):
        used, inverse = np.unique(rows[field][last], return_inverse=True)
        tables[field] = [names[u] for u in used.tolist()]
        out[field] = inverse.reshape(-1)
    codecs = [codec_named(c) for c in tables["codec"]]
    dtypes = tables["dtype"]
    plan = list(zip(base.tolist(), span.tolist(), out["codec"].tolist(),
                    out["dtype"].tolist(), strict=True))
    previous_end = np.r_[0, (start + length)[:-1]]
    gap = (start > previous_end) & (np.arange(len(rows)) != bounds[owner])
    # Chunks are joined a buffer at a time, the buffer reused: faulting in fresh memory
    # costs as much here as the copies themselves.
    ends = np.cumsum(span)
    buffer = np.empty(max(_BUFFER_VALUES, int(span.max())))
    blobs_out: list[bytes] = []
    with ThreadPoolExecutor(2) as pool:
        c0 = 0
        while c0 < len(firsts):
            done = int(ends[c0 - 1]) if c0 else 0
            c1 = max(int(np.searchsorted(ends, done + len(buffer), side="right")), c0 + 1)
            r0, r1 = int(bounds[c0]), int(bounds[c1])
            flat = buffer[:int(ends[c1 - 1]) - done]
            for i in (r0 + np.flatnonzero(gap[r0:r1])).tolist():
                flat[dest[i] - done - int(start[i] - previous_end[i]):dest[i] - done] = np.nan
            _scatter_raw(catalog, flat, r0 + np.flatnonzero(raw[r0:r1]), blobs, block, rel,
                         length, rows["dtype"], dest - done)
            for i in (r0 + np.flatnonzero(~raw[r0:r1])).tolist():
                g, r, k = int(block[i]), int(rel[i]), int(size[i])
                values = codec_named(catalog.codecs[int(rows["codec"][i])]).decode(
                    bytes(views[g][r:r + k]),
                    dtype=np.dtype(catalog.dtypes[int(rows["dtype"][i])]), length=int(length[i]))
                flat[dest[i] - done:dest[i] - done + len(values)] = values

            def encode(part: list[tuple[int, int, int, int]], flat: np.ndarray = flat,
                       done: int = done) -> list[bytes]:
                return [codecs[c].encode(np.ascontiguousarray(flat[b - done:b - done + n],
                                                              dtype=dtypes[d]))
                        for b, n, c, d in part]

            half = (c0 + c1) // 2
            for part in pool.map(encode, [plan[c0:half], plan[half:c1]]):
                blobs_out += part
            c0 = c1
    sizes = np.fromiter((len(p) for p in blobs_out), dtype=np.int64, count=len(blobs_out))
    out["size"], out["offset"] = sizes, np.r_[0, np.cumsum(sizes)[:-1]]
    out["checksum"] = np.fromiter((checksum(p) for p in blobs_out), dtype=np.int64,
                                  count=len(blobs_out))
    return out, b"".join(blobs_out), tables["codec"], tables["dtype"]


def _scatter_raw(catalog: Catalog, flat: np.ndarray, rows: np.ndarray, blobs: list[bytes],
                 block: np.ndarray, rel: np.ndarray, length: np.ndarray, dtype: np.ndarray,
                 dest: np.ndarray) -> None:
    """Copy raw rows into ``flat`` at ``dest``: rows of one block, length and dtype that sit
    back to back (one commit's fragments of a day) as one 2-D view and one scatter."""
    if not len(rows):
        return
    groups = (block[rows] << 40) | (length[rows] << 8) | dtype[rows]
    order = np.lexsort((rel[rows], groups))
    rows, groups = rows[order], groups[order]
    cuts = np.flatnonzero(np.diff(groups)) + 1
    for group in np.split(rows, cuts):
        n, g = int(length[group[0]]), int(block[group[0]])
        kind = np.dtype(catalog.dtypes[int(dtype[group[0]])]).newbyteorder("<")
        # runs of rows back to back (a row of another length, such as a meter's day cut
        # short by missing readings, ends a run)
        breaks = np.flatnonzero(np.diff(rel[group]) != n * kind.itemsize) + 1
        for run in np.split(group, breaks):
            values = np.frombuffer(blobs[g], dtype=kind, count=len(run) * n,
                                   offset=int(rel[run[0]]))
            flat[dest[run][:, None] + np.arange(n)] = values.reshape(len(run), n)


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
