"""The log-structured engine as a backend: ``engine+file:///path``, ``engine+memory://name``.

Objects (:mod:`curvestore.engine` describes the layout and formats)::

    manifest.json          the store's frozen configuration, with the engine format version
    log/<seq>              commit entries: the commit point of each transaction (put_if_absent)
    data/<random>.seg      segments: the payloads of one commit (or one compaction), back to back
    catalog/<seq>          checkpoints of the catalog after entry <seq>, so opening is fast

A handle keeps the newest catalog it has folded and, before each operation, probes for the
next entry (one read that misses when nothing was committed), so it sees every commit that
returned before the operation started, from any process.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from curvestore.core.backend import Backend, IntegrityProblem, Transaction, bound_schema
from curvestore.core.batch import SeriesSummary
from curvestore.core.cursor import unknown_position
from curvestore.core.records import (
    Change,
    ChunkMeta,
    ChunkRecord,
    FeedBatch,
    Position,
    SeriesKey,
)
from curvestore.engine._catalog import Catalog, among
from curvestore.engine._checkpoint import load_catalog, write_checkpoint
from curvestore.engine._format import (
    DELETED,
    FORMAT,
    READABLE_FORMATS,
    Container,
    decode_container,
    log_key,
)
from curvestore.engine._groups import LazyKeys, key_of_row, row_ranges, scan_groups
from curvestore.engine._reads import (
    SegmentGone,
    decode_rows,
    fetch_payloads,
    meta_of,
    outside,
    row_pieces,
    row_records,
)
from curvestore.engine._transaction import EngineTransaction
from curvestore.errors import ConfigurationError, ConflictError, IntegrityError, StoreExistsError

if TYPE_CHECKING:
    from curvestore.core.chunks import Piece
    from curvestore.core.url import StoreURL
    from curvestore.objects.base import ObjectStore

__all__ = ["EngineBackend"]

_log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_MEMORY_STORES: dict[str, ObjectStore] = {}
_MEMORY_LOCK = threading.Lock()


class EngineBackend(Backend):
    """A store over an :class:`~curvestore.objects.base.ObjectStore`, built on first use by
    ``make_objects`` (a read-only handle on a missing store creates nothing)."""

    schemes: ClassVar[tuple[str, ...]] = ("file", "engine+memory")
    #: Appended days are kept raw until compaction: a day of a meter barely compresses
    #: (LZ4 kept ~80 % of it), reading it is a copy, and compaction joins a segment's
    #: fragments of many series as one block instead of decoding them one by one.
    fragment_codec: ClassVar[str] = "none"

    def __init__(self, make_objects: Callable[[], ObjectStore], label: str, *,
                 exists: Callable[[], bool] = lambda: True, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self._make_objects = make_objects
        self._exists = exists
        self._objects: ObjectStore | None = None
        self.label = label
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._entries: dict[int, Container] = {}
        #: consecutive commits of this handle that lost a race (for back-off)
        self.conflicts = 0
        #: the store's engine format, once its manifest was read or written (until then the
        #: oldest: nothing format 1 cannot read is written)
        self.format = min(READABLE_FORMATS)

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> EngineBackend:
        if url.scheme == "engine+memory":
            url.reject_unknown_options(frozenset())
            name = (url.netloc + url.path).strip("/")

            def memory() -> ObjectStore:
                from curvestore.objects.memory import MemoryObjectStore

                with _MEMORY_LOCK:
                    if not name:
                        return MemoryObjectStore()
                    return _MEMORY_STORES.setdefault(name, MemoryObjectStore(name))

            return cls(memory, f"engine+memory://{name}", read_only=read_only)
        url.reject_unknown_options(frozenset({"fsync"}))
        path = url.netloc + url.path if url.netloc in ("", ".", "..", "~") else None
        if path is None:
            raise ConfigurationError("file URLs are file:///absolute/path or "
                                     f"file://./relative/path; got host {url.netloc!r}")
        if not path:
            raise ConfigurationError("a file:// URL needs a path")
        root = os.path.abspath(os.path.expanduser(path))
        fsync = url.options.get("fsync", "true").lower()
        if fsync not in ("true", "false", "1", "0"):
            raise ConfigurationError(f"fsync must be true or false, got {fsync!r}")

        def files() -> ObjectStore:
            from curvestore.objects.files import FileObjectStore

            with contextlib.suppress(FileNotFoundError), open(  # a new store has none
                    os.path.join(root, MANIFEST), "rb") as f:
                if b'"engine"' not in f.read():  # checked before creating anything in it
                    raise _legacy(f"file://{root}", "file-shards")
            return FileObjectStore(root, fsync=fsync in ("true", "1"))

        return cls(files, f"file://{root}", read_only=read_only,
                   exists=lambda: os.path.isdir(root))

    @staticmethod
    def forget(name: str) -> None:
        """Drop a named in-memory engine store."""
        with _MEMORY_LOCK:
            _MEMORY_STORES.pop(name, None)

    def __repr__(self) -> str:
        return f"EngineBackend({self.label!r})"

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            with self._lock:
                if self._objects is None:
                    self._objects = self._make_objects()
        return self._objects

    # -- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        if self._objects is None and not self._exists():
            return None
        found = self.objects.get(MANIFEST)
        if found is None:
            return None
        try:
            manifest = json.loads(found[0])
        except ValueError as exc:
            raise IntegrityError(f"{self.label}: the manifest is not JSON (damaged)") from exc
        engine = manifest.pop("engine", None) if isinstance(manifest, dict) else None
        if not isinstance(engine, dict) or "format" not in engine:
            raise _legacy(self.label, f"{self.label.partition(':')[0]}-shards")
        if engine["format"] not in READABLE_FORMATS:
            readable = " and ".join(map(str, READABLE_FORMATS))
            raise ConfigurationError(
                f"{self.label} is in engine format {engine['format']!r}; this version of "
                f"curvestore reads formats {readable} only: upgrade curvestore to open it")
        self.format = engine["format"]
        return manifest

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        data = json.dumps({**manifest, "engine": {"format": FORMAT}}, sort_keys=True).encode()
        try:
            self.objects.put_if_absent(MANIFEST, data)
        except ConflictError as exc:
            raise StoreExistsError(f"a store already exists at {self.label}") from exc
        self.format = FORMAT

    # -- catalog ---------------------------------------------------------------------------
    def current(self) -> Catalog:
        """The newest catalog: what was committed before this call, from any process."""
        with self._lock:
            catalog = self._catalog
            if catalog is None:
                catalog = load_catalog(self.objects, bound_schema(self.schema).types)
            while True:
                found = self.objects.get(log_key(catalog.seq + 1))
                if found is None:
                    break
                entry = decode_container(found[0], log_key(catalog.seq + 1))
                self._remember(entry)
                catalog = catalog.fold(entry)
            self._catalog = catalog
            return catalog

    def adopt(self, catalog: Catalog) -> None:
        """Keep ``catalog`` (just committed or checkpointed by this handle) if it is newer
        than ours, or as new and just checkpointed."""
        with self._lock:
            ours = self._catalog
            if ours is None or catalog.seq > ours.seq or (
                    catalog.seq == ours.seq and catalog.pending < ours.pending):
                self._catalog = catalog

    def checkpoint(self, catalog: Catalog) -> None:
        """Write ``catalog`` as a checkpoint (best effort: opening is only slower without)."""
        try:
            self.adopt(write_checkpoint(self.objects, catalog))
        except Exception as exc:  # a full disk or a failing service: the commit stands
            _log.warning("%s: could not write a catalog checkpoint: %s", self.label, exc)

    def _remember(self, entry: Container) -> None:
        self._entries[int(entry.header["seq"])] = entry
        while len(self._entries) > 64:
            del self._entries[min(self._entries)]

    def entries(self, first: int, last: int) -> Iterator[Container]:
        """Log entries ``first..last``, decoded."""
        for seq in range(first, last + 1):
            entry = self._entries.get(seq)
            if entry is None:
                found = self.objects.get(log_key(seq))
                if found is None:
                    raise IntegrityError(f"{self.label}: log entry {seq} is missing")
                entry = decode_container(found[0], log_key(seq))
            yield entry

    def discard(self, key: str) -> None:
        try:
            self.objects.delete(key)
        except Exception:  # best effort: garbage collection removes it later
            return

    # -- reads -----------------------------------------------------------------------------
    def _read(self, read: Callable[[Catalog], Any], snapshot: Catalog | None = None) -> Any:
        """``read(catalog)`` on the newest catalog, again on a newer one if a segment it
        needed was compacted away meanwhile (a snapshot's own read cannot retry: conflict)."""
        for _attempt in range(5):
            catalog = self.current() if snapshot is None else snapshot
            try:
                return read(catalog)
            except SegmentGone:
                if snapshot is not None:
                    raise ConflictError("a segment was compacted away during the "
                                        "transaction") from None
        raise IntegrityError(f"{self.label}: a segment the catalog refers to is missing")

    def read_records(self, catalog: Catalog, key: SeriesKey, sid: int,
                     lo: int | None = None, hi: int | None = None) -> list[ChunkRecord]:
        def read(cat: Catalog) -> list[ChunkRecord]:
            rows = cat.series_rows(sid, lo, hi)
            return row_records(cat, key, rows, fetch_payloads(self.objects, cat, rows))

        return self._read(read, catalog)  # type: ignore[no-any-return]

    def metas(self, catalog: Catalog, key: SeriesKey, sid: int) -> list[ChunkMeta]:
        rows = catalog.series_rows(sid)
        chunk = rows["chunk"]
        if len(np.unique(chunk)) == len(chunk):
            return [meta_of(catalog, row) for row in rows]
        return [r.meta for r in self.read_records(catalog, key, sid)]

    def _sid(self, catalog: Catalog, key: SeriesKey) -> int:
        return int(catalog.names.sids([key])[0])

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        def read(cat: Catalog) -> list[ChunkRecord]:
            sid = self._sid(cat, key)
            if sid < 0:
                return []
            rows = cat.series_rows(sid, lo, hi)
            return row_records(cat, key, rows, fetch_payloads(self.objects, cat, rows))

        return self._read(read)  # type: ignore[no-any-return]

    def read_pieces(self, key: SeriesKey, lo: int | None = None, hi: int | None = None, *,
                    first: int | None = None, last: int | None = None) -> list[Piece]:
        def read(cat: Catalog) -> list[Piece]:
            sid = self._sid(cat, key)
            if sid < 0:
                return []
            rows = cat.series_rows(sid, lo, hi)
            rows = rows[~outside(rows, lo, hi, first, last)]
            return row_pieces(cat, key, rows,
                              fetch_payloads(self.objects, cat, rows, views=True))

        return self._read(read)  # type: ignore[no-any-return]

    def matching(self, catalog: Catalog, where: Mapping[str, Any]) -> np.ndarray:
        """Sids of matching series with live chunks, ordered by key."""
        live = catalog.live_sids()
        mask = catalog.names.matching(where, bound_schema(self.schema).names)
        if mask is not None:
            live = live[mask[live]]
        alive = np.zeros(len(catalog.names), dtype=bool)
        alive[live] = True
        order = catalog.names.order()
        return order[alive[order]]

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        catalog = self.current()
        return iter(catalog.names.keys(self.matching(catalog, where)))

    def _group_rows(self, catalog: Catalog, group: np.ndarray, lo: int | None,
                    hi: int | None, window: tuple[int | None, int | None] | None, *,
                    views: bool = False) -> tuple[Catalog, np.ndarray, np.ndarray, list[Any]]:
        """Rows of series ``group`` in chunks ``lo..hi`` (without those outside ``window``,
        when given), each series' count, and their payloads (with ``views``, read-only
        views for a caller that only decodes them: see :func:`fetch_payloads`); on a newer
        catalog if a segment was compacted away meanwhile."""
        for _attempt in range(5):
            starts, ends = catalog.slices(group, lo, hi)
            rows = catalog.rows[row_ranges(starts, ends)]
            counts = ends - starts
            if window is not None:
                away = outside(rows, lo, hi, *window)
                if away.any():
                    owner = np.repeat(np.arange(len(group)), counts)[~away]
                    rows, counts = rows[~away], np.bincount(owner, minlength=len(group))
            try:
                return catalog, rows, counts, fetch_payloads(self.objects, catalog, rows,
                                                             views=views)
            except SegmentGone:
                catalog = self.current()
        raise IntegrityError(f"{self.label}: a segment the catalog refers to is missing")

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        catalog = self.current()
        for group in scan_groups(catalog, self.matching(catalog, where), lo, hi):
            catalog, rows, counts, payloads = self._group_rows(catalog, group, lo, hi, None)
            first = 0
            for key, n in zip(catalog.names.keys(group), counts.tolist(), strict=True):
                if n:
                    yield key, row_records(catalog, key, rows[first:first + n],
                                           payloads[first:first + n])
                first += n

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None, *, first: int | None = None,
                    last: int | None = None) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        catalog = self.current()
        return self._pieces_of(catalog, self.matching(catalog, where), lo, hi, first, last)

    def scan_keys(self, keys: Sequence[SeriesKey], lo: int | None = None,
                  hi: int | None = None, *, first: int | None = None,
                  last: int | None = None) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        catalog = self.current()
        sids = catalog.names.sids(sorted(set(keys)))
        return self._pieces_of(catalog, sids[among(sids, catalog.live_sids())], lo, hi,
                               first, last)

    def _pieces_of(self, catalog: Catalog, sids: np.ndarray, lo: int | None, hi: int | None,
                   first: int | None, last: int | None
                   ) -> Iterator[tuple[SeriesKey, list[Piece]]]:
        for group in scan_groups(catalog, sids, lo, hi):
            catalog, rows, counts, payloads = self._group_rows(catalog, group, lo, hi,
                                                               (first, last), views=True)
            keys = catalog.names.keys(group)
            owner = np.repeat(np.arange(len(group)), counts)
            pieces = decode_rows(catalog, rows, payloads,
                                 functools.partial(key_of_row, keys, owner))
            done = 0
            for key, n in zip(keys, counts.tolist(), strict=True):
                if n:
                    yield key, pieces[done:done + n]
                done += n

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        catalog = self.current()
        for key, sid in zip(catalog.names.keys(sids := self.matching(catalog, where)),
                            sids.tolist(), strict=True):
            yield key, self.metas(catalog, key, sid)

    def summarise(self, where: Mapping[str, Any]) -> SeriesSummary:
        catalog = self.current()
        sids = self.matching(catalog, where)
        stats = catalog.series_stats
        at = np.searchsorted(stats["sid"], sids)
        return SeriesSummary(
            keys=LazyKeys(catalog.names, sids),
            first_chunk=stats["first_chunk"][at], first_start=stats["first_start"][at],
            last_chunk=stats["last_chunk"][at], last_stop=stats["last_stop"][at],
            chunks=stats["chunks"][at], points=stats["points"][at],
            payload_bytes=stats["payload_bytes"][at])

    # -- writes ----------------------------------------------------------------------------
    def begin(self, keys: Sequence[SeriesKey]) -> Transaction:
        return EngineTransaction(self, keys)

    def begin_batch(self, keys: Sequence[SeriesKey]) -> Transaction:
        return EngineTransaction(self, keys)

    def get_state(self, name: str) -> str | None:
        return self.current().states.get(name)

    # -- change feed -----------------------------------------------------------------------
    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        catalog = self.current()
        position = 0 if after is None else after[0]
        if position > catalog.seq:
            raise unknown_position()
        return self._feed(position, catalog)

    def _feed(self, position: int, catalog: Catalog) -> Iterator[FeedBatch]:
        while True:
            head = self.current() if position >= catalog.seq else catalog
            if position >= head.seq:
                return
            names = head.names
            for entry in self.entries(position + 1, head.seq):
                position = int(entry.header["seq"])
                rows = entry.rows
                if entry.header.get("kind") == "compact" or not len(rows):
                    yield FeedBatch((position,))
                    continue
                keys = names.keys(rows["sid"])
                deleted = ((rows["flags"] & DELETED) != 0).tolist()
                yield FeedBatch((position,), [
                    Change(k, c, position, d) for k, c, d in
                    zip(keys, rows["chunk"].tolist(), deleted, strict=True)])
            catalog = head

    # -- maintenance -----------------------------------------------------------------------
    def compact(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None,
                *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Join the fragments of matching series' chunks ``lo..hi`` into whole chunks, then
        remove what nothing refers to any more (see :mod:`curvestore.engine._compact`)."""
        from curvestore.engine._compact import compact

        return compact(self, where, lo, hi, progress=progress).as_dict()

    def collect_garbage(self, grace: float = 3600.0) -> tuple[int, int]:
        """Remove segments nothing refers to that are older than ``grace`` seconds, and
        checkpoints but the newest two; returns (segments removed, their bytes)."""
        from curvestore.engine._compact import collect_garbage

        return collect_garbage(self, grace)

    # -- integrity -------------------------------------------------------------------------
    def check_integrity(self, where: Mapping[str, Any]
                        ) -> tuple[list[SeriesKey] | None, list[IntegrityProblem]]:
        from curvestore.engine._check import check

        return check(self, where)

    def close(self) -> None:
        if self._objects is not None:
            self._objects.close()
        super().close()


def _legacy(label: str, scheme: str) -> ConfigurationError:
    """The error for a store in the shard format of curvestore 0.1."""
    return ConfigurationError(
        f"{label} holds a store in the shard format of curvestore 0.1, not the engine format: "
        f"open it as {scheme}://{label.partition('://')[2]} (read and write as before), or copy "
        f"it into a new store with `curvestore sync {scheme}://... file:///new/path`")
