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
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.records import checksum
from curvestore.engine._catalog import Catalog, among, chunk_keys
from curvestore.engine._checkpoint import checkpoints, write_checkpoint
from curvestore.engine._crc import failing
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
    from curvestore.core.codec import Codec
    from curvestore.engine.backend import EngineBackend
    from curvestore.objects.base import ObjectStore

__all__ = ["CompactionReport", "collect_garbage", "compact"]

#: Chunks joined per segment and entry: bounds the memory of one step.
_CHUNKS_PER_STEP = 20_000
#: Values joined per buffer (8 MiB of float64), reused from one buffer-full to the next: a
#: few dozen buffer-fulls a step, so that the two workers end close together.
_BUFFER_VALUES = 1 << 20
#: Threads joining buffer-fulls, each with its buffer.
_WORKERS = 2
#: Buffer-fulls joined or being joined but not yet written: a worker that finishes one
#: starts the next while the segment write catches up (writes into fresh page cache can be
#: slower than joining), and the encoded bytes waiting stay bounded.
_PENDING = 6


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
    """Chunk keys (sorted) of the chunks of ``sids`` in ``lo..hi`` that have fragments: the
    catalog's keys are sorted, so a chunk with fragments is a key equal to the next one."""
    keys = catalog.keys
    repeated = np.zeros(len(keys), dtype=bool)
    repeated[:-1] = keys[1:] == keys[:-1]
    candidates = keys[repeated]  # sorted, a chunk once per fragment
    mask = among(candidates >> 32, sids)  # the sid, without copying the catalog's rows
    if lo is not None:
        mask &= candidates >= chunk_keys(candidates >> 32, np.asarray(lo, dtype=np.int64))
    if hi is not None:
        mask &= candidates <= chunk_keys(candidates >> 32, np.asarray(hi, dtype=np.int64))
    selected = candidates[mask]
    return selected[np.r_[True, selected[1:] != selected[:-1]]] if len(selected) else selected


def _step(backend: EngineBackend, catalog: Catalog, wanted: np.ndarray,
          report: CompactionReport) -> Catalog:
    for _attempt in range(5):
        try:
            rows = catalog.rows[among(catalog.keys, wanted)]
            segment = segment_key()
            new, codecs, dtypes = _joined(backend.objects, catalog, rows, segment)
            break
        except SegmentGone:
            catalog = backend.current()
    else:
        raise ConflictError("segments kept disappearing under compaction; try again")
    report.rows += len(rows)
    report.bytes_read += int(rows["size"].sum())
    written = int(new["size"].sum())
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
            report.bytes_written += written
            report.entries += 1
            return catalog
    except BaseException:
        backend.discard(segment)
        raise
    backend.discard(segment)  # every chunk was rewritten by writers meanwhile
    return catalog


def _joined(objects: ObjectStore, catalog: Catalog, rows: np.ndarray, segment: str
            ) -> tuple[np.ndarray, list[str], list[str]]:
    """Write segment ``segment`` holding one payload per chunk of ``rows`` (sorted by chunk
    key, then version) and return its rows.

    Chunks are handled a buffer-full at a time, by two worker threads (reads, copies and
    LZ4 release the GIL), each with one buffer it reuses: faulting in fresh memory costs
    as much here as the copies themselves, and memory stays bounded. A task maps its rows'
    bytes (:func:`fetch_blocks` with views), checks every payload's CRC-32 (back-to-back
    fragments as runs, see :mod:`curvestore.engine._crc`) and lays each chunk's rows into
    the chunk's slot (a chunk's rows never overlap: a fragment starts at or after the end
    of what precedes it): raw fragments (codec ``none``, how the engine keeps appended
    days) of one segment and length are copied as one strided 2-D block, whatever the
    number of series; other rows are decoded together. Then each chunk is encoded once,
    with the codec of its newest row (one ``encode_many`` call), and the payloads are
    written to the segment as tasks finish, in order
    (:meth:`~curvestore.objects.base.ObjectStore.put_parts`)."""
    keys = chunk_keys(rows["sid"], rows["chunk"])
    firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    bounds = np.r_[firsts, len(rows)]
    start, length, size = rows["start"], rows["length"], rows["size"]
    head = start[firsts]
    span = np.maximum.reduceat(start + length, firsts) - head
    # every chunk gets a slot of the longest span: one day of many meters then lands at one
    # stride, copied as a 2-D block
    width = int(span.max())
    base = np.arange(len(firsts), dtype=np.int64) * width
    owner = np.repeat(np.arange(len(firsts)), np.diff(bounds))
    dest = base[owner] + start - head[owner]
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
    per_task = max(_BUFFER_VALUES // width, 1)
    buffers: SimpleQueue[np.ndarray] = SimpleQueue()
    for _ in range(_WORKERS):
        buffers.put(np.empty(per_task * width))
    row_dtype, row_codec = rows["dtype"], rows["codec"]

    def join(c0: int, c1: int) -> tuple[list[bytes], list[int], list[int]]:
        buffer = buffers.get()  # one per worker: there is always one free here
        try:
            return joined(c0, c1, buffer)
        finally:
            buffers.put(buffer)

    def joined(c0: int, c1: int, buffer: np.ndarray
               ) -> tuple[list[bytes], list[int], list[int]]:
        r0, r1 = int(bounds[c0]), int(bounds[c1])
        part = rows[r0:r1]
        blobs, block, rel = fetch_blocks(objects, catalog, part, views=True)
        bad = failing(blobs, block, rel, size[r0:r1], part["checksum"])
        if len(bad):
            i = int(bad[0])
            raise IntegrityError(f"chunk {int(part['chunk'][i])} of series sid "
                                 f"{int(part['sid'][i])} fails its checksum (stored data is "
                                 f"corrupt; {len(bad)} such among {len(part)} rows); restore "
                                 "it from a replica or delete it")
        done = c0 * width
        at = dest[r0:r1] - done
        flat = buffer[:(c1 - c0) * width]
        for i in (r0 + np.flatnonzero(gap[r0:r1])).tolist():
            flat[dest[i] - done - int(start[i] - previous_end[i]):dest[i] - done] = np.nan
        _scatter_raw(catalog, flat, np.flatnonzero(raw[r0:r1]), blobs, block, rel,
                     length[r0:r1], row_dtype[r0:r1], at, width)
        _decode_whole(catalog, flat, np.flatnonzero(~raw[r0:r1]), blobs, block, rel,
                      size[r0:r1], length[r0:r1], row_codec[r0:r1], row_dtype[r0:r1], at)
        payloads = _encoded(flat, done, plan[c0:c1], codecs, dtypes)
        return payloads, [len(p) for p in payloads], [checksum(p) for p in payloads]

    sizes: list[int] = []
    crcs: list[int] = []

    def payloads(pool: ThreadPoolExecutor) -> Iterator[bytes]:
        running: deque[Future[tuple[list[bytes], list[int], list[int]]]] = deque()

        def collect() -> Iterator[bytes]:
            done, lengths, sums = running.popleft().result()
            sizes.extend(lengths)
            crcs.extend(sums)
            yield from done

        for c0 in range(0, len(firsts), per_task):
            if len(running) == _PENDING:
                yield from collect()
            running.append(pool.submit(join, c0, min(c0 + per_task, len(firsts))))
        while running:
            yield from collect()

    with ThreadPoolExecutor(_WORKERS) as pool:
        objects.put_parts(segment, payloads(pool))
    out["size"] = sizes
    out["offset"] = np.r_[0, np.cumsum(out["size"])[:-1]]
    out["checksum"] = crcs
    return out, tables["codec"], tables["dtype"]


def _encoded(flat: np.ndarray, done: int, plan: list[tuple[int, int, int, int]],
             codecs: list[Codec], dtypes: list[str]) -> list[bytes]:
    """Encode each planned chunk (slot start, span, codec, dtype) of ``flat`` (whose first
    value is slot position ``done``): one ``encode_many`` when they share a codec and the
    buffer's dtype (what slots hold beyond a chunk's span is never converted)."""
    if len({(c, d) for _b, _n, c, d in plan}) == 1 and np.dtype(dtypes[plan[0][3]]) == flat.dtype:
        return codecs[plan[0][2]].encode_many(flat, [b - done for b, *_ in plan],
                                              [n for _b, n, *_ in plan])
    return [codecs[c].encode(flat[b - done:b - done + n].astype(dtypes[d], copy=False))
            for b, n, c, d in plan]


def _scatter_raw(catalog: Catalog, flat: np.ndarray, rows: np.ndarray, blobs: list[bytes],
                 block: np.ndarray, rel: np.ndarray, length: np.ndarray, dtype: np.ndarray,
                 dest: np.ndarray, width: int) -> None:
    """Copy raw rows into ``flat`` at ``dest``: rows of one block, length and dtype that sit
    back to back (one commit's fragments of a day) and land ``width`` apart (consecutive
    chunks' slots) as one strided 2-D copy, whatever the number of series."""
    if not len(rows):
        return
    groups = (block[rows] << 40) | (length[rows] << 8) | dtype[rows]
    order = np.lexsort((rel[rows], groups))
    rows = rows[order]
    n, at, src = length[rows], dest[rows], rel[rows]
    # a run continues while the group, the source (back to back) and the target (next slot)
    # all continue; a meter's day cut short by missing readings ends one
    same = (np.diff(groups[order]) == 0) & (np.diff(at) == width)
    itemsize = np.array([np.dtype(d).itemsize for d in catalog.dtypes], dtype=np.int64)
    same &= np.diff(src) == n[:-1] * itemsize[dtype[rows[:-1]]]
    heads = np.flatnonzero(np.r_[True, ~same])
    counts = np.diff(np.r_[heads, len(rows)])
    for h, k in zip(heads.tolist(), counts.tolist(), strict=True):
        row = int(rows[h])
        kind = np.dtype(catalog.dtypes[int(dtype[row])]).newbyteorder("<")
        size = int(n[h])
        values = np.frombuffer(blobs[int(block[row])], dtype=kind, count=k * size,
                               offset=int(src[h]))
        target = np.lib.stride_tricks.as_strided(
            flat[int(at[h]):], shape=(k, size), strides=(width * flat.itemsize, flat.itemsize))
        target[...] = values.reshape(k, size)


def _decode_whole(catalog: Catalog, flat: np.ndarray, rows: np.ndarray, blobs: list[bytes],
                  block: np.ndarray, rel: np.ndarray, size: np.ndarray, length: np.ndarray,
                  codec: np.ndarray, dtype: np.ndarray, at: np.ndarray) -> None:
    """Decode encoded rows (not raw fragments) into ``flat`` at ``at``: one ``decode_many``
    per codec and dtype, and one scatter, rather than a call and a copy per row."""
    if not len(rows):
        return
    views = [memoryview(b) for b in blobs]
    pairs = (codec[rows].astype(np.int64) << 16) | dtype[rows]
    for pair in np.unique(pairs).tolist():
        these = rows[pairs == pair]
        counts = length[these]
        payloads = [bytes(views[g][r:r + k]) for g, r, k in zip(
            block[these].tolist(), rel[these].tolist(), size[these].tolist(), strict=True)]
        values = codec_named(catalog.codecs[pair >> 16]).decode_many(
            payloads, dtype=np.dtype(catalog.dtypes[pair & 0xFFFF]), lengths=counts.tolist())
        starts = np.cumsum(counts) - counts
        flat[np.repeat(at[these] - starts, counts) + np.arange(int(counts.sum()))] = values


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
