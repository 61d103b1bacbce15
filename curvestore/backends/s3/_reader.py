"""Reading shard objects: by name or listed, concurrently, indexes cached by ETag.

:class:`ShardReader` is the read side of the S3 backend. It finds a series' shards by name
when a read's chunk range spans few of them, else with one paginated listing of the series;
it finds many series with ONE flat, paginated listing (narrowed to the key prefix the filter
fixes, the rest of the filter applied to the listed names) instead of a listing per key level;
and it fetches objects on a bounded thread pool so that latency does not add up per object.
Every object read is checked: the trailer's magic and the index's CRC-32, that the index names
the series, shard and chunks the object's name says, and for each chunk returned its own
framing (magic, lengths, header CRC-32) and that its header agrees with the index; the core
checks the payload's CRC-32 when decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from curvestore.backends import _layout as layout
from curvestore.backends.s3._client import ObjectClient
from curvestore.backends.s3._object_shard_format import (
    SHARD_SUFFIX,
    TAIL_GUESS,
    Shard,
    decode_shard,
    index_length,
)
from curvestore.core.backend import bound_schema
from curvestore.core.records import SeriesKey
from curvestore.errors import ConflictError, IntegrityError

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["Listed", "ShardReader"]

_DIRECT_SHARDS = 4  # reads spanning at most this many shards GET them by name, unlisted
_INDEX_CACHE = 4096  # shard indexes kept per store (up to ~10 KB each in memory)
_RANGE_LIST_MIN = 2000  # a transaction's bulk listing reads at least this many names...
_RANGE_LIST_PER_KEY = 50  # ...or this many per key, before listing series one by one

#: (shard number, object key, ETag from a listing or None)
Listed = tuple[int, str, str | None]


class _IndexCache:
    """A bounded LRU of the latest known index of shard objects, by object key; thread-safe.

    An entry is only ever used against the service's current ETag: a listing's ETag (a
    listed shard whose index is cached costs no request), or ``If-Match`` on a ranged GET."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, Shard] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, object_key: str, etag: str | None = None) -> Shard | None:
        with self.lock:
            found = self.items.get(object_key)
            if found is None or (etag is not None and found.etag != etag):
                return None
            self.items.move_to_end(object_key)
            return found

    def put(self, object_key: str, shard: Shard) -> None:
        if not shard.etag:
            return
        with self.lock:
            self.items[object_key] = shard
            self.items.move_to_end(object_key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class ShardReader:
    """Reads the shard objects under ``<root>series/``. ``schema`` and ``size`` (chunks per
    shard) are set once the manifest is known."""

    def __init__(self, client: ObjectClient, root: str,
                 pool: Callable[[], ThreadPoolExecutor], workers: int) -> None:
        self.client = client
        self.root = root
        self.base = root + "series/"
        self._pool = pool
        self.workers = workers
        self.schema: KeySchema | None = None
        self.size = 0
        self.indexes = _IndexCache(_INDEX_CACHE)

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self._pool()

    # -- names ---------------------------------------------------------------------------------
    def series_prefix(self, key: SeriesKey) -> str:
        return f"{self.base}{'/'.join(layout.series_parts(bound_schema(self.schema), key))}/"

    def shard_key(self, key: SeriesKey, number: int) -> str:
        return f"{self.series_prefix(key)}{number}{SHARD_SUFFIX}"

    def number(self, chunk: int) -> int:
        if self.size <= 0:  # set when the backend reads or creates the manifest
            raise RuntimeError("the shard size is not known yet: the manifest was not read")
        return chunk // self.size

    def numbers(self, lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
        return (None if lo is None else self.number(lo), None if hi is None else self.number(hi))

    @staticmethod
    def _shard_number(name: str) -> int | None:
        if not name.endswith(SHARD_SUFFIX):
            return None
        try:
            return int(name[:-len(SHARD_SUFFIX)])
        except ValueError:
            return None

    # -- one shard -----------------------------------------------------------------------------
    def get(self, key: SeriesKey, number: int, *, index_only: bool = False,
            listed_etag: str | None = None, object_key: str | None = None) -> Shard | None:
        """Read one shard (its index only when ``index_only``: one suffix-ranged GET, or
        none when a listing's ETag is cached); None when it does not exist."""
        object_key = object_key or self.shard_key(key, number)
        if index_only and listed_etag:
            cached = self.indexes.get(object_key, listed_etag)
            if cached is not None:
                return cached
        where = self.client.where(object_key)
        whole = not index_only
        got = self.client.read_checked(object_key, suffix=None if whole else TAIL_GUESS)
        if got is None:
            return None
        data, etag = got
        if not whole and index_length(data, where) > len(data):
            got = self.client.read_checked(object_key)  # an index larger than the guess
            if got is None:
                return None
            data, etag = got
            whole = True
        shard = decode_shard(data, key=key, number=number, etag=etag, where=where, whole=whole)
        for chunk in shard.entries:
            if self.number(chunk) != number:
                raise IntegrityError(f"{where}: holds chunk {chunk}, outside shard {number}")
        self.indexes.put(object_key, shard.index_only())
        return shard

    def get_span(self, key: SeriesKey, number: int, lo: int | None, hi: int | None
                 ) -> Shard | None:
        """The shard, for reading its chunks ``lo..hi`` only: when this process knows the
        shard's index, only the bytes of those chunks, with a ranged GET conditional on the
        index's ETag (one small request; a whole GET when the shard changed since)."""
        object_key = self.shard_key(key, number)
        cached = self.indexes.get(object_key)
        wanted = [] if cached is None else [
            e for c, e in cached.entries.items() if _within(c, lo, hi)]
        if cached is not None and wanted:
            start = min(e.offset for e in wanted)
            end = max(e.offset + e.length for e in wanted)
            try:
                got = self.client.read_checked(object_key, byte_range=(start, end - 1),
                                               if_match=cached.etag)
            except ConflictError:  # the shard changed since its index was cached
                got = None
            if got is not None and len(got[0]) == end - start:
                return Shard(key, number, cached.entries, cached.etag, cached.where, got[0],
                             base=start)
        return self.get(key, number)

    @staticmethod
    def collect(futures: Sequence[Future[Shard | None]]) -> list[Shard | None]:
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def get_many(self, shards: Sequence[tuple[SeriesKey, int]], *, index_only: bool = False
                 ) -> list[Shard | None]:
        """The named shards (None where absent), fetched concurrently, in the given order."""
        if len(shards) == 1:
            return [self.get(*shards[0], index_only=index_only)]
        return self.collect([self.pool.submit(self.get, key, number, index_only=index_only)
                             for key, number in shards])

    # -- one series ----------------------------------------------------------------------------
    def series_objects(self, key: SeriesKey) -> list[Listed]:
        """Every shard object of the series (one paginated listing), by number."""
        prefix = self.series_prefix(key)
        found: list[Listed] = []
        for item in self.client.list_objects(prefix):
            name = item.key[len(prefix):]
            number = None if "/" in name else self._shard_number(name)
            if number is not None:
                found.append((number, item.key, item.etag))
        found.sort()
        return found

    def series(self, key: SeriesKey, lo: int | None, hi: int | None, *,
               index_only: bool = False) -> list[Shard]:
        """The series' shards holding chunks ``lo..hi``, by number: named directly when the
        range spans at most ``_DIRECT_SHARDS`` shards, else listed."""
        if lo is not None and hi is not None and hi < lo:
            return []
        first, last = self.numbers(lo, hi)
        if first is not None and last is not None and last - first < _DIRECT_SHARDS:
            if index_only:
                got = self.get_many([(key, n) for n in range(first, last + 1)],
                                    index_only=True)
            elif first == last:
                got = [self.get_span(key, first, lo, hi)]
            else:
                got = self.collect([self.pool.submit(self.get_span, key, n, lo, hi)
                                    for n in range(first, last + 1)])
        else:
            objects = [o for o in self.series_objects(key) if _within(o[0], first, last)]
            got = self.fetch_listed(key, objects, index_only)
        return [s for s in got if s is not None]

    def fetch_listed(self, key: SeriesKey, objects: Sequence[Listed], index_only: bool
                     ) -> list[Shard | None]:
        if len(objects) == 1:
            number, object_key, etag = objects[0]
            return [self.get(key, number, index_only=index_only, listed_etag=etag,
                             object_key=object_key)]
        return self.collect(self.submit(key, objects, index_only))

    def submit(self, key: SeriesKey, objects: Sequence[Listed], index_only: bool
               ) -> list[Future[Shard | None]]:
        return [self.pool.submit(self.get, key, number, index_only=index_only,
                                 listed_etag=etag, object_key=object_key)
                for number, object_key, etag in objects]

    # -- many series ---------------------------------------------------------------------------
    def _parser(self) -> Callable[[str], tuple[SeriesKey, int] | None]:
        """Object key -> (series key, shard number), None for names outside the layout;
        series prefixes are parsed once."""
        schema = bound_schema(self.schema)
        names, types = schema.names, schema.types
        depth = len(names)
        base = len(self.base)
        seen: dict[str, SeriesKey] = {}

        def parse(object_key: str) -> tuple[SeriesKey, int] | None:
            head, _, name = object_key.rpartition("/")
            number = self._shard_number(name)
            if number is None:
                return None
            key = seen.get(head)
            if key is None:
                parts = head[base:].split("/")
                if len(parts) != depth:
                    return None
                key = seen[head] = tuple(layout.parse_component(p, n, t)
                                         for p, n, t in zip(parts, names, types, strict=True))
            return key, number

        return parse

    def listing(self, where: Mapping[str, Any]) -> list[tuple[SeriesKey, list[Listed]]]:
        """Every series matching ``where`` with its shard objects, ordered by key: one flat
        listing under the prefix fixed by the filter's leading key levels (about one request
        per 1000 shards), the rest of the filter applied to the parsed names."""
        schema = bound_schema(self.schema)
        prefix = self.base
        for name in schema.names:
            if name not in where:
                break
            prefix += layout.encode_component(name, where[name]) + "/"
        parse = self._parser()
        found: dict[SeriesKey, list[Listed]] = {}
        for item in self.client.list_objects(prefix):
            parsed = parse(item.key)
            if parsed is None:
                continue
            key, number = parsed
            objects = found.get(key)
            if objects is None:
                if not schema.matches(key, where):
                    continue
                objects = found[key] = []
            objects.append((number, item.key, item.etag))
        for objects in found.values():
            objects.sort()
        return sorted(found.items())

    def list_many(self, keys: Sequence[SeriesKey]) -> dict[SeriesKey, list[Listed]]:
        """The shard objects of each of ``keys``: one listing of the key range the keys span
        (pages up to ``max(2000, 50 x len(keys))`` names), else one listing per key,
        concurrently."""
        prefixes = {self.series_prefix(k): k for k in keys}
        if len(prefixes) > 1:
            ordered = sorted(prefixes)
            lo, hi = ordered[0], ordered[-1]
            same = 0
            for a, b in zip(lo.split("/"), hi.split("/"), strict=False):
                if a != b:
                    break
                same += 1
            common = "".join(p + "/" for p in lo.split("/")[:same])
            cap = max(_RANGE_LIST_MIN, _RANGE_LIST_PER_KEY * len(prefixes))
            found: dict[SeriesKey, list[Listed]] = {k: [] for k in prefixes.values()}
            complete = True
            for n, item in enumerate(self.client.list_objects(common, start_after=lo)):
                if item.key > hi and not item.key.startswith(hi):
                    break
                if n >= cap:
                    complete = False
                    break
                head, _, name = item.key.rpartition("/")
                key = prefixes.get(head + "/")
                number = self._shard_number(name)
                if key is not None and number is not None:
                    found[key].append((number, item.key, item.etag))
            if complete:
                for objects in found.values():
                    objects.sort()
                return found
        keys = list(prefixes.values())
        if len(keys) == 1:
            return {keys[0]: self.series_objects(keys[0])}
        lists = list(self.pool.map(self.series_objects, keys))
        return dict(zip(keys, lists, strict=True))

    def stream(self, where: Mapping[str, Any], lo: int | None, hi: int | None,
               index_only: bool) -> Iterator[tuple[SeriesKey, list[Shard]]]:
        """Each matching series with its shards holding chunks ``lo..hi``, in key order.
        Shards of the following series are fetched while one is consumed: up to the pool's
        size in flight (and at least the next series), so memory stays bounded."""
        first, last = self.numbers(lo, hi)
        series = iter(self.listing(where))
        queue: deque[tuple[SeriesKey, list[Future[Shard | None]]]] = deque()
        in_flight = 0
        try:
            while True:
                while len(queue) < 2 or in_flight < self.workers:
                    found = next(series, None)
                    if found is None:
                        break
                    key, objects = found
                    chosen = [o for o in objects if _within(o[0], first, last)]
                    futures = self.submit(key, chosen, index_only)
                    queue.append((key, futures))
                    in_flight += len(futures)
                if not queue:
                    return
                key, futures = queue.popleft()
                in_flight -= len(futures)
                yield key, [s for s in self.collect(futures) if s is not None]
        finally:
            for _key, futures in queue:
                for f in futures:
                    f.cancel()


def _within(number: int, first: int | None, last: int | None) -> bool:
    return (first is None or number >= first) and (last is None or number <= last)
