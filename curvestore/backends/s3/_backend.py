"""The S3 backend proper: reads, optimistic transactions, the commit protocol, the feed.

See the package docstring (:mod:`curvestore.backends.s3`) for the guarantees.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from curvestore.backends import _layout as layout
from curvestore.backends.s3._client import ObjectClient, S3Error, load_boto3, parse_timestamp
from curvestore.backends.s3._log import ChangeLog
from curvestore.backends.s3._object_shard_format import (
    Entry,
    Shard,
    default_shard_size,
    encode_shard,
)
from curvestore.backends.s3._reader import _DIRECT_SHARDS, Listed, ShardReader, _within
from curvestore.core.backend import Backend, Transaction, stale_state
from curvestore.core.config import StoreConfig
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    StoreExistsError,
)

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["S3Backend"]

log = logging.getLogger("curvestore.s3")

_OPTIONS = frozenset({"endpoint_url", "region", "profile", "max_workers", "list_page_size",
                      "pending_grace", "single_writer", "shard"})
_MAX_SHARD = 1200
#: The manifest.json field holding the backend's own layout settings (the shard size).
_MANIFEST_FIELD = "s3"

#: (endpoint, bucket) -> whether the service enforces conditional writes (probed once).
_PROBED: dict[tuple[str, str], bool] = {}
_PROBED_LOCK = threading.Lock()

Slot = tuple[SeriesKey, int]  # (series, chunk)
ShardId = tuple[SeriesKey, int]  # (series, shard number)


def _int_option(options: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"option {name} must be an integer, got {raw!r}") from None
    if value < low:
        raise ConfigurationError(f"option {name} must be at least {low}, got {value}")
    return value


def _shown_endpoint(endpoint: str | None) -> str | None:
    """The endpoint without any user:password@ part, for reprs and messages."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _S3Transaction(Transaction):
    """Optimistic: remembers the shards it read whole (with their ETag) or found absent, and
    commits each touched shard with one conditional PUT."""

    def __init__(self, backend: S3Backend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = set(keys)
        self.order = list(dict.fromkeys(keys))
        #: shard -> the shard as read (whole), or None when known absent
        self.shards: dict[ShardId, Shard | None] = {}
        #: series -> its shard objects, from one listing (shared by the transaction's keys)
        self.listed: dict[SeriesKey, dict[int, Listed]] = {}
        self.staged: dict[Slot, ChunkRecord] = {}
        self.states: dict[str, tuple[str, str | None]] = {}
        self.committed = []
        self.txid = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def _listing(self, key: SeriesKey) -> dict[int, Listed]:
        if key not in self.listed:
            # the first listing covers every key of the transaction: write_many(mode="insert")
            # then costs one LIST for all its series, not one each
            wanted = [k for k in self.order if k not in self.listed] or [key]
            if key not in wanted:
                wanted.append(key)
            for k, objects in self.backend.reader.list_many(wanted).items():
                self.listed[k] = {o[0]: o for o in objects}
        return self.listed[key]

    def _load(self, key: SeriesKey, lo: int | None, hi: int | None) -> list[Shard]:
        """The series' shards holding chunks ``lo..hi``, read whole once per transaction."""
        reader = self.backend.reader
        first, last = reader.numbers(lo, hi)
        span = None if first is None or last is None else range(first, last + 1)
        listed = None
        if span is None or len(self.order) > 1 or len(span) > _DIRECT_SHARDS:
            listed = self._listing(key)
        if span is not None:
            numbers = list(span)
        else:
            numbers = [n for n in sorted(listed or ()) if _within(n, first, last)]
        todo: list[Listed] = []
        for number in numbers:
            if (key, number) in self.shards:
                continue
            if listed is not None and number not in listed:
                self.shards[(key, number)] = None
                continue
            todo.append(listed[number] if listed is not None
                        else (number, reader.shard_key(key, number), None))
        if todo:
            for (number, _k, _e), shard in zip(todo, reader.fetch_listed(key, todo, False),
                                               strict=True):
                self.shards[(key, number)] = shard
        found = (self.shards[(key, n)] for n in numbers)
        return [s for s in found if s is not None]

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        return [m for shard in self._load(key, None, None) for m in shard.metas()
                if not m.deleted]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        if lo is not None and hi is not None and hi < lo:
            return []
        return [r for shard in self._load(key, lo, hi) for r in shard.records(lo, hi)]

    def put(self, records: Sequence[ChunkRecord]) -> None:
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
        for record in records:
            self.staged[(record.key, record.chunk)] = record

    def set_state(self, name: str, value: str, *, expected: str | None) -> None:
        self.states[name] = (value, expected)


class _Plan:
    """One shard a commit rewrites: what it read (None: absent) and what it writes."""

    __slots__ = ("base", "body", "entries", "object_key", "shard", "slots")

    def __init__(self, shard: ShardId, object_key: str, base: Shard | None, body: bytes,
                 entries: dict[int, Entry], slots: list[Slot]) -> None:
        self.shard, self.object_key, self.base = shard, object_key, base
        self.body, self.entries, self.slots = body, entries, slots


class S3Backend(Backend):
    """Shards of chunks as objects in an S3 bucket; see :mod:`curvestore.backends.s3`."""

    schemes = ("s3",)

    @classmethod
    def check_available(cls) -> None:
        load_boto3()

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, profile: str | None = None, max_workers: int = 16,
                 list_page_size: int = 1000, pending_grace: float = 60.0,
                 single_writer: bool = False, shard: int | None = None,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        if not bucket:
            raise ConfigurationError("an s3:// URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = self.prefix + "/" if self.prefix else ""
        self.endpoint = _shown_endpoint(endpoint_url)
        self.max_workers = max_workers
        self.pending_grace = pending_grace
        self.single_writer = single_writer
        self.shard_option = shard
        self.client = ObjectClient(bucket, endpoint_url=endpoint_url, region=region,
                                   profile=profile, max_pool=max_workers + 4,
                                   page_size=list_page_size)
        self.log = ChangeLog(self.client, self.root, conditional=not single_writer)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._manifest: dict[str, Any] = {}
        self._last_recovery = float("-inf")
        self._recover_at_bind = False
        self.reader = ShardReader(self.client, self.root, lambda: self.pool, max_workers)

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> S3Backend:
        url.reject_unknown_options(_OPTIONS)
        if url.username is not None or url.password is not None or "@" in url.netloc:
            raise ConfigurationError(
                "s3:// URLs take no credentials: boto3 finds them (environment, AWS_PROFILE or "
                "profile=, instance role)")
        options = url.options
        single = options.get("single_writer", "false").lower()
        if single not in ("true", "false", "1", "0"):
            raise ConfigurationError(f"single_writer must be true or false, got {single!r}")
        grace = options.get("pending_grace", "60")
        try:
            pending_grace = float(grace)
        except ValueError:
            raise ConfigurationError(f"pending_grace must be seconds, got {grace!r}") from None
        if pending_grace < 0:
            raise ConfigurationError("pending_grace must not be negative")
        shard = None
        if "shard" in options:
            shard = _int_option(options, "shard", 0, 1)
            if shard > _MAX_SHARD:
                raise ConfigurationError(f"option shard must be at most {_MAX_SHARD}, "
                                         f"got {shard}")
        return cls(
            url.netloc, url.path,
            endpoint_url=options.get("endpoint_url") or None,
            region=options.get("region") or None,
            profile=options.get("profile") or None,
            max_workers=_int_option(options, "max_workers", 16, 1),
            list_page_size=min(_int_option(options, "list_page_size", 1000, 1), 1000),
            pending_grace=pending_grace,
            single_writer=single in ("true", "1"),
            shard=shard,
            read_only=read_only,
        )

    def __repr__(self) -> str:
        return (f"S3Backend(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"endpoint={self.endpoint or 'aws'!r})")

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers,
                                                thread_name_prefix="curvestore-s3")
            return self._pool

    @property
    def shard_size(self) -> int:
        """Chunks per shard object, as recorded in the store's manifest."""
        return self.reader.size

    def _state_key(self, name: str) -> str:
        return f"{self.root}sync/{quote(name, safe='')}.json"

    def _pending_key(self, txid: str) -> str:
        return f"{self.root}pending/{txid}.json"

    # -- manifest ------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        """The store's manifest; the S3 layout settings stored beside it (``"s3"``: the shard
        size) are kept by the backend, not returned."""
        got = self.client.get(self.root + "manifest.json")
        if got is None:
            return None
        try:
            manifest = json.loads(got[0])
        except ValueError as exc:
            raise IntegrityError(f"{self!r}: unreadable manifest") from exc
        if not isinstance(manifest, dict):
            raise IntegrityError(f"{self!r}: unreadable manifest")
        settings = manifest.pop(_MANIFEST_FIELD, None)
        try:
            size = int(settings["shard"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise ConfigurationError(
                f"{self!r}: the store has no S3 shard layout (written by an older curvestore, "
                "one object per chunk); it cannot be read by this version") from None
        if size < 1:
            raise IntegrityError(f"{self!r}: invalid shard size {size} in the manifest")
        if self.shard_option is not None and self.shard_option != size:
            raise ConfigurationError(
                f"this store was created with shard={size} (chunks per object), not "
                f"shard={self.shard_option}; omit the option or give the store's value")
        self.reader.size = size
        self._manifest = manifest
        self._recover_at_bind = not self.read_only
        return manifest

    def bind(self, schema: KeySchema) -> None:
        """Learn the key schema; a store opened for writing then recovers interrupted
        commits (one LIST of ``pending/``)."""
        super().bind(schema)
        self.reader.schema = schema
        if self._recover_at_bind:
            self._recover_at_bind = False
            self._recover(force=True)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        self.check_writable()
        size = self.shard_option
        if size is None:
            config = StoreConfig.from_manifest(manifest)
            size = default_shard_size(config.chunking, config.freq_ns)
        stored = {**manifest, _MANIFEST_FIELD: {"shard": size}}
        body = (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.client.put(self.root + "manifest.json", body,
                            if_none_match=not self.single_writer)
        except ConflictError as exc:
            raise StoreExistsError(f"a store already exists at {self!r}") from exc
        self.reader.size = size
        self._manifest = dict(manifest)
        self.log.created()

    # -- reads ---------------------------------------------------------------------------------
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return [r for shard in self.reader.series(key, lo, hi) for r in shard.records(lo, hi)]

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        wanted = list(dict.fromkeys((key, self.reader.number(chunk)) for key, chunk in refs))
        shards = dict(zip(wanted, self.reader.get_many(wanted), strict=True))
        out = []
        for key, chunk in refs:
            shard = shards[(key, self.reader.number(chunk))]
            entry = None if shard is None else shard.entries.get(chunk)
            if shard is None or entry is None or entry.meta.deleted:
                out.append(ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True)))
            else:
                out.append(shard.record(chunk))
        return out

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        if lo is not None and hi is not None and hi < lo:
            return
        for key, shards in self.reader.stream(where, lo, hi, index_only=False):
            records = [r for shard in shards for r in shard.records(lo, hi)]
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, shards in self.reader.stream(where, None, None, index_only=True):
            metas = [m for shard in shards for m in shard.metas() if not m.deleted]
            if metas:
                yield key, metas

    # -- writes --------------------------------------------------------------------------------
    @contextmanager
    def transaction(self, keys: Sequence[SeriesKey]) -> Iterator[Transaction]:
        self.check_writable()
        tx = _S3Transaction(self, keys)
        yield tx
        tx.committed = self._commit(tx)

    def _check_conditional_writes(self) -> None:
        """Refuse to write through a service that ignores If-None-Match / If-Match (probed
        once per endpoint and bucket), unless the store was opened with single_writer=true."""
        if self.single_writer:
            return
        ident = (self.endpoint or "aws", self.bucket)
        with _PROBED_LOCK:
            supported = _PROBED.get(ident)
        if supported is None:
            probe = f"{self.root}probe/conditional-writes"
            self.client.put(probe, b"probe")
            supported = True
            for condition in ({"if_none_match": True},
                              {"if_match": '"00000000000000000000000000000000"'}):
                try:
                    self.client.put(probe, b"probe", **condition)  # type: ignore[arg-type]
                    supported = False
                except ConflictError:
                    continue  # the service refused the failing condition: as it should
                except S3Error as exc:
                    log.warning("conditional write probe failed on %s: %s", ident[0], exc.code)
                    supported = False
            with _PROBED_LOCK:
                _PROBED[ident] = supported
        if not supported:
            raise ConfigurationError(
                f"the S3 service at {self.endpoint or 'aws'} does not enforce conditional "
                "writes (If-None-Match / If-Match), so concurrent writers could silently "
                "overwrite each other; use a service that does, or add single_writer=true to "
                "the URL if only one process ever writes to this store")

    def _plan(self, tx: _S3Transaction) -> tuple[list[_Plan], dict[Slot, ChunkRecord]]:
        """The new content of every shard the transaction touches: the shard as the
        transaction read it (or as it is now, for shards it did not read), its untouched
        chunks copied byte for byte, the staged ones with the next version."""
        reader = self.reader
        by_shard: dict[ShardId, list[Slot]] = {}
        for slot in sorted(tx.staged):
            by_shard.setdefault((slot[0], reader.number(slot[1])), []).append(slot)
        for sid in by_shard:  # absent from a listing the transaction made: known absent
            if sid not in tx.shards and sid[0] in tx.listed and sid[1] not in tx.listed[sid[0]]:
                tx.shards[sid] = None
        unknown = [sid for sid in by_shard if sid not in tx.shards]
        for sid, shard in zip(unknown, reader.get_many(unknown), strict=True):
            tx.shards[sid] = shard
        now = time.time_ns()
        plans: list[_Plan] = []
        final: dict[Slot, ChunkRecord] = {}
        for sid, slots in by_shard.items():
            base = tx.shards[sid]
            parts: dict[int, tuple[ChunkMeta, bytes, str]] = {}
            if base is not None:
                for chunk, entry in base.entries.items():
                    parts[chunk] = (entry.meta, base.raw(chunk), entry.txid)
            for slot in slots:
                old = parts.get(slot[1])
                record = tx.staged[slot]
                record = record.with_meta(version=(old[0].version if old else 0) + 1,
                                          updated_at=record.meta.updated_at or now)
                final[slot] = record
                parts[slot[1]] = (record.meta, layout.encode_object(record), tx.txid)
            body, entries = encode_shard(sid[0], sid[1], list(parts.values()))
            plans.append(_Plan(sid, reader.shard_key(*sid), base, body, entries, slots))
        return plans, final

    def _commit(self, tx: _S3Transaction) -> list[Change]:
        if not tx.staged and not tx.states:
            return []
        self._check_conditional_writes()
        self._recover()
        state_etags = self._check_states(tx)
        plans, final = self._plan(tx)
        slots = sorted(tx.staged)
        changes = [Change(k, c, final[(k, c)].meta.version, final[(k, c)].meta.deleted)
                   for k, c in slots]
        marker = self._pending_key(tx.txid)
        marker_body = json.dumps({"txid": tx.txid, "refs": [[list(k), c] for k, c in slots]},
                                 separators=(",", ":")).encode()
        if plans:
            self.client.put(marker, marker_body)  # (1) intent, for recovery
        self._put_chunks(tx, plans, final, marker, marker_body)  # (2)
        for name, (value, _expected) in sorted(tx.states.items()):  # cursors, after chunks
            etag = state_etags[name]
            self.client.put(self._state_key(name),
                            json.dumps({"name": name, "value": value}).encode(),
                            if_match=etag if not self.single_writer else None,
                            if_none_match=etag is None and not self.single_writer)
        if changes:
            self.log.claim(changes, tx.txid)  # (3)
        if plans:
            self.client.delete(marker)  # (4)
        return changes

    def _check_states(self, tx: _S3Transaction) -> dict[str, str | None]:
        """Compare each state's expected value with the stored one before anything is
        written, and return the ETags (None: absent) that its conditional PUT then requires:
        a replication whose cursor was overtaken fails here and writes no stale chunk, and
        one overtaken between this check and its PUT fails there (ConflictError)."""
        etags: dict[str, str | None] = {}
        for name, (_value, expected) in sorted(tx.states.items()):
            got = self.client.get(self._state_key(name))
            found = None if got is None else self._state_value(name, got[0])
            if found != expected:
                raise stale_state(name)
            etags[name] = None if got is None else got[1]
        return etags

    def _put_chunks(self, tx: _S3Transaction, plans: list[_Plan],
                    final: dict[Slot, ChunkRecord], marker: str, marker_body: bytes) -> None:
        """Conditional PUTs of every shard, concurrently, refreshing the pending marker while
        they run. On any failure, shards this batch created are removed again (if nobody
        changed them since), the changes in those it overwrote are logged, and the error is
        raised."""
        conditional = not self.single_writer

        def put(plan: _Plan) -> str:
            etag = None if plan.base is None else plan.base.etag
            new_etag = self.client.put(
                plan.object_key, plan.body,
                if_match=etag if conditional and etag is not None else None,
                if_none_match=conditional and etag is None)
            # the next listing shows this ETag: its index is then known without a request
            self.reader.indexes.put(plan.object_key, Shard(
                plan.shard[0], plan.shard[1], plan.entries, new_etag,
                self.client.where(plan.object_key)))
            return new_etag

        if len(plans) == 1:
            try:  # one PUT, in this thread: no pool round trip for single-shard updates
                put(plans[0])
                return
            except Exception as exc:
                self._after_failure(tx, plans, {}, final, marker, exc)
        futures = {self.pool.submit(put, plan): plan for plan in plans}
        beat = self.pending_grace / 3 if self.pending_grace > 0 else None
        last_beat = time.monotonic()
        remaining = set(futures)
        while remaining:
            _done, remaining = wait(remaining, timeout=beat, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                break
            if beat is not None and time.monotonic() - last_beat >= beat:
                self.client.put(marker, marker_body)  # heartbeat: the writer is alive
                last_beat = time.monotonic()
        wait(list(futures))
        written: dict[int, str] = {}
        error: BaseException | None = None
        for n, future in enumerate(futures):
            failure = future.exception()
            if failure is None:
                written[n] = future.result()
            elif error is None or (isinstance(error, ConflictError)
                                   and not isinstance(failure, ConflictError)):
                error = failure
        if error is not None:
            self._after_failure(tx, plans, written, final, marker, error)

    def _after_failure(self, tx: _S3Transaction, plans: list[_Plan], written: dict[int, str],
                       final: dict[Slot, ChunkRecord], marker: str, error: BaseException
                       ) -> None:
        """After a failed batch: delete the shards it created (conditionally on their new
        ETag), log the changes in those it overwrote, so the feed shows every change that
        stays; drop the marker and raise ``error``."""
        kept = []
        for n, etag in sorted(written.items()):
            plan = plans[n]
            if plan.base is None and self.client.delete(plan.object_key, if_match=etag):
                continue
            kept += [Change(k, c, final[(k, c)].meta.version, final[(k, c)].meta.deleted)
                     for k, c in plan.slots]
        if kept:
            self.log.claim(sorted(kept, key=lambda c: (c.key, c.chunk)), tx.txid)
        with contextlib.suppress(Exception):
            self.client.delete(marker)
        raise error

    # -- recovery of writers that died mid-commit ---------------------------------------------
    def _recover(self, force: bool = False) -> int:
        """Log the chunks of batches whose writer died between its shard PUTs and its log
        claim (pending markers older than ``pending_grace``); returns how many were found.

        One LIST of ``pending/`` per call; called when a store is opened for writing and before
        commits (at most every ``pending_grace / 2`` seconds)."""
        interval = self.pending_grace / 2
        if not force and time.monotonic() - self._last_recovery < interval:
            return 0
        self._last_recovery = time.monotonic()
        now, markers = self.client.server_time(self.root + "pending/")
        recovered = 0
        for item in markers:
            age = (now - parse_timestamp(item.last_modified)).total_seconds()  # Date: 1 s
            if self.pending_grace > 0 and age < self.pending_grace:
                continue
            got = self.client.get(item.key)
            if got is None:
                continue
            data, etag, _meta = got
            try:
                body = json.loads(data)
                txid = str(body["txid"])
                refs = [(tuple(k), int(c)) for k, c in body["refs"]]
            except (ValueError, KeyError, TypeError):
                log.warning("removing unreadable pending marker %s", item.key)
                self.client.delete(item.key, if_match=etag)
                continue
            wanted = list(dict.fromkeys((k, self.reader.number(c)) for k, c in refs))
            shards = dict(zip(wanted, self.reader.get_many(wanted, index_only=True),
                              strict=True))
            changes = []
            for k, c in refs:
                shard = shards[(k, self.reader.number(c))]
                entry = None if shard is None else shard.entries.get(c)
                if entry is not None and entry.txid == txid:
                    changes.append(Change(k, c, entry.meta.version, entry.meta.deleted))
            if changes:
                self.log.claim(changes, f"recovered:{txid}")
            self.client.delete(item.key, if_match=etag)
            log.warning("recovered %d change(s) of interrupted commit %s", len(changes), txid)
            recovered += 1
        return recovered

    # -- replication state -------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        got = self.client.get(self._state_key(name))
        return None if got is None else self._state_value(name, got[0])

    def _state_value(self, name: str, body: bytes) -> str:
        try:
            return str(json.loads(body)["value"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{self.client.where(self._state_key(name))}: unreadable"
                                 ) from exc

    # -- change feed ---------------------------------------------------------------------------
    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Pages end on batch boundaries (a page holds more than ``limit`` changes only when
        one committed batch does)."""
        assert self.schema is not None
        store_id = str(self._manifest.get("store_id", ""))
        position = 0
        if cursor is not None:
            position = decode_cursor(cursor, store_id, 1)[0]
            if not self.log.claimed(position):
                raise unknown_position(cursor)
        schema = self.schema
        items: list[Change] = []
        window = max(4, min(self.max_workers, limit + 1))
        batches = self.log.after(position, self.pool, window)
        for seq, _txid, batch in batches:
            chosen = [c for c in batch if schema.matches(c.key, where)]
            if items and len(items) + len(chosen) > limit:
                return ChangePage(items, encode_cursor(store_id, (position,)), True)
            items += chosen
            position = seq
            if len(items) >= limit:
                more = next(batches, None) is not None
                return ChangePage(items, encode_cursor(store_id, (position,)), more)
        return ChangePage(items, encode_cursor(store_id, (position,)), False)

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        super().close()
