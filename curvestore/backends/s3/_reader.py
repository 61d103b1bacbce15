"""Reading chunk objects: by name or listed, concurrently, headers cached by ETag.

:class:`ChunkReader` is the read side of the S3 backend: it finds a series' chunk objects (by
name for small chunk ranges, else by a paginated listing), walks key prefixes in key order
(Delimiter listings, pruned by the filter; the last level listed flat when small), and fetches
objects on a bounded thread pool so that latency does not add up per chunk. Every object read
is checked: magic, lengths and the header's CRC-32 (IntegrityError), and that the header names
the series the path says; the core checks the payload's CRC-32 when decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from curvestore.backends import _layout as layout
from curvestore.backends.s3._client import ObjectClient
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.errors import IntegrityError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["TXID_META", "ChunkReader", "Fetched"]

_DIRECT_READ_MAX = 6  # chunk ranges up to this size are fetched by name, not listed
_HEADER_BYTES = 4096  # ranged GET size when only a chunk's header is needed
_HEADER_CACHE = 50_000  # chunk headers kept per store (about 300 bytes each)
_FLAT_MAX = 5000  # chunk objects listed flat below one prefix before falling back
_LOOKAHEAD = 2  # series whose chunks are in flight during a scan (memory stays bounded)
TXID_META = "curvestore-tx"  # user metadata naming the transaction that wrote a chunk

_Objects = list[tuple[int, str, str | None]]  # (chunk, object key, ETag from a listing)


class Fetched:
    """A chunk object as read: its record (or header-only meta), ETag and writer's txid."""

    __slots__ = ("etag", "meta", "record", "txid")

    def __init__(self, meta: ChunkMeta, etag: str, txid: str,
                 record: ChunkRecord | None = None) -> None:
        self.meta, self.etag, self.txid, self.record = meta, etag, txid, record


class _HeaderCache:
    """A bounded LRU of chunk headers by (object key, ETag); thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, str], Fetched] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, ident: tuple[str, str]) -> Fetched | None:
        with self.lock:
            found = self.items.get(ident)
            if found is not None:
                self.items.move_to_end(ident)
            return found

    def put(self, ident: tuple[str, str], fetched: Fetched) -> None:
        if not ident[1]:
            return
        with self.lock:
            self.items[ident] = fetched
            self.items.move_to_end(ident)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class ChunkReader:
    """Reads the chunk objects under ``<root>series/``; ``schema`` is set once known."""

    def __init__(self, client: ObjectClient, root: str,
                 pool: Callable[[], ThreadPoolExecutor]) -> None:
        self.client = client
        self.root = root
        self._pool = pool
        self.schema: KeySchema | None = None
        self.headers = _HeaderCache(_HEADER_CACHE)

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self._pool()

    def chunk_key(self, key: SeriesKey, chunk: int) -> str:
        return self.series_prefix(key) + layout.chunk_name(chunk)

    def fetch_many(self, refs: Sequence[tuple[SeriesKey, int]], header_only: bool = False
                   ) -> list[Fetched | None]:
        """The named chunks (None where absent), fetched concurrently, in the given order."""
        return self.collect_each([
            self.pool.submit(self.get_chunk, key, self.chunk_key(key, chunk), header_only)
            for key, chunk in refs])

    def series_prefix(self, key: SeriesKey) -> str:
        assert self.schema is not None, "bind() was not called"
        return f"{self.root}series/{'/'.join(layout.series_parts(self.schema, key))}/"

    def get_chunk(self, key: SeriesKey, object_key: str, header_only: bool = False,
                  listed_etag: str | None = None) -> Fetched | None:
        """Read one chunk object (only its header when ``header_only``); None when absent.

        Headers are cached by (object key, ETag): a listing gives each object's current ETag,
        so a header-only read of an object listed with a cached ETag costs no request."""
        if header_only and listed_etag:
            cached = self.headers.get((object_key, listed_etag))
            if cached is not None:
                return cached
        where = self.client.where(object_key)
        got = self.client.get(object_key, byte_range=(0, _HEADER_BYTES - 1) if header_only
                              else None)
        if got is None:
            return None
        data, etag, metadata = got
        txid = metadata.get(TXID_META, "")
        if header_only:
            need = layout.PREFIX_SIZE + layout.header_length(data, where)
            if need > len(data) and len(data) == _HEADER_BYTES:
                return self.get_chunk(key, object_key)
            found_key, meta = layout.decode_header(data, where)
            record = None
        else:
            record = layout.decode_object(data, where)
            found_key, meta = record.key, record.meta
        if tuple(found_key) != tuple(key):
            raise IntegrityError(f"{where}: holds series {found_key}, not {key}")
        self.headers.put((object_key, etag), Fetched(meta, etag, txid))
        return Fetched(meta, etag, txid, record)

    def chunk_objects(self, key: SeriesKey, lo: int | None, hi: int | None) -> _Objects:
        """``(chunk, object key, listed ETag)`` for the chunk range: by name when the range
        is small (no ETag known), else from a listing of the series."""
        prefix = self.series_prefix(key)
        if lo is not None and hi is not None and hi - lo < _DIRECT_READ_MAX:
            return [(c, prefix + layout.chunk_name(c), None) for c in range(lo, hi + 1)]
        found: _Objects = []
        suffix = layout.CHUNK_SUFFIX
        for item in self.client.list_objects(prefix):
            name = item.key[len(prefix):]
            if "/" in name or not name.endswith(suffix):
                continue
            try:
                chunk = int(name[:-len(suffix)])
            except ValueError:
                continue
            if (lo is None or chunk >= lo) and (hi is None or chunk <= hi):
                found.append((chunk, item.key, item.etag))
        found.sort()
        return found

    def submit(self, key: SeriesKey, lo: int | None, hi: int | None, header_only: bool,
               objects: _Objects | None = None) -> list[Future[Fetched | None]]:
        """Start fetching the series' chunks in range (``objects``: already listed)."""
        if lo is not None and hi is not None and hi < lo:
            return []
        if objects is None:
            objects = self.chunk_objects(key, lo, hi)
        else:
            objects = [o for o in objects
                       if (lo is None or o[0] >= lo) and (hi is None or o[0] <= hi)]
        return [self.pool.submit(self.get_chunk, key, object_key, header_only, etag)
                for _chunk, object_key, etag in objects]

    @staticmethod
    def collect(futures: list[Future[Fetched | None]]) -> list[Fetched]:
        try:
            fetched = [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()
        return sorted((f for f in fetched if f is not None), key=lambda f: f.meta.chunk)

    def series(self, key: SeriesKey, lo: int | None, hi: int | None, *,
               header_only: bool = False) -> list[Fetched]:
        """Every stored chunk object of a series in range, tombstones included, by chunk."""
        return self.collect(self.submit(key, lo, hi, header_only))


    @staticmethod
    def collect_each(futures: list[Future[Fetched | None]]) -> list[Fetched | None]:
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def walk(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, _Objects | None]]:
        """Series matching ``where`` in key order, each with its chunk objects when a listing
        already gave them (else None). Filtered levels are pruned without a request; other
        levels cost one Delimiter listing, except the last: the series below one prefix are
        listed flat in one go (one request per 1000 chunks, instead of one per series) when
        they hold at most ``_FLAT_MAX`` objects."""
        assert self.schema is not None
        names, types = self.schema.names, self.schema.types
        last = len(names) - 1

        def level(i: int, prefix: str, values: tuple[Any, ...]
                  ) -> Iterator[tuple[SeriesKey, _Objects | None]]:
            if i > last:
                yield values, None
                return
            if names[i] in where:
                value = where[names[i]]
                part = layout.encode_component(names[i], value)
                yield from level(i + 1, f"{prefix}{part}/", (*values, value))
                return
            if i == last:
                flat = self.flat(prefix)
                if flat is not None:
                    parsed = sorted((layout.parse_component(part, names[i], types[i]), part)
                                    for part in flat)
                    for value, part in parsed:
                        yield (*values, value), flat[part]
                    return
            children = []
            for child in self.client.list_prefixes(prefix):
                part = child[len(prefix):].rstrip("/")
                children.append((layout.parse_component(part, names[i], types[i]), child))
            for value, child in sorted(children):
                yield from level(i + 1, child, (*values, value))

        yield from level(0, f"{self.root}series/", ())

    def flat(self, prefix: str) -> dict[str, _Objects] | None:
        """Chunk objects of every series right under ``prefix``, by series directory name;
        None (given up) when there are more than ``_FLAT_MAX``."""
        found: dict[str, _Objects] = {}
        suffix = layout.CHUNK_SUFFIX
        for n, item in enumerate(self.client.list_objects(prefix)):
            if n >= _FLAT_MAX:
                return None
            part, _, name = item.key[len(prefix):].partition("/")
            if not name.endswith(suffix) or "/" in name:
                continue
            try:
                chunk = int(name[:-len(suffix)])
            except ValueError:
                continue
            found.setdefault(part, []).append((chunk, item.key, item.etag))
        for objects in found.values():
            objects.sort()
        return found

    def stream(self, where: Mapping[str, Any], lo: int | None, hi: int | None,
               header_only: bool) -> Iterator[tuple[SeriesKey, list[Fetched]]]:
        """Each matching series with its chunk objects in range, in key order; the chunks of
        the next ``_LOOKAHEAD - 1`` series are fetched while one is being consumed."""
        queue: deque[tuple[SeriesKey, list[Future[Fetched | None]]]] = deque()
        series = self.walk(where)
        try:
            while True:
                while len(queue) < _LOOKAHEAD:
                    found = next(series, None)
                    if found is None:
                        break
                    key, objects = found
                    queue.append((key, self.submit(key, lo, hi, header_only, objects)))
                if not queue:
                    return
                key, futures = queue.popleft()
                yield key, self.collect(futures)
        finally:
            for _key, futures in queue:
                for f in futures:
                    f.cancel()
