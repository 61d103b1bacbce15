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
from curvestore.backends.base import Backend, Transaction
from curvestore.backends.s3._client import ObjectClient, S3Error
from curvestore.backends.s3._log import ChangeLog
from curvestore.backends.s3._reader import TXID_META, ChunkReader, Fetched
from curvestore.core.cursor import decode_cursor, encode_cursor
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    StoreExistsError,
    SyncError,
)

if TYPE_CHECKING:
    from curvestore.core.config import KeySchema

__all__ = ["S3Backend"]

log = logging.getLogger("curvestore.s3")

_OPTIONS = frozenset({"endpoint_url", "region", "profile", "max_workers", "list_page_size",
                      "pending_grace", "single_writer"})

#: (endpoint, bucket) -> whether the service enforces conditional writes (probed once).
_PROBED: dict[tuple[str, str], bool] = {}
_PROBED_LOCK = threading.Lock()

Slot = tuple[SeriesKey, int]


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
    """Optimistic: remembers what it read (ETag, or absent) and commits with conditional PUTs."""

    def __init__(self, backend: S3Backend, keys: Sequence[SeriesKey]) -> None:
        self.backend = backend
        self.keys = set(keys)
        #: slot -> (ETag or None when absent, version) as read by this transaction
        self.known: dict[Slot, tuple[str | None, int]] = {}
        self.covered: dict[SeriesKey, list[tuple[int | None, int | None]]] = {}
        self.staged: dict[Slot, ChunkRecord] = {}
        self.states: dict[str, str] = {}
        self.committed = []
        self.txid = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    def _remember(self, key: SeriesKey, fetched: Sequence[Fetched],
                  lo: int | None, hi: int | None) -> None:
        for f in fetched:
            self.known[(key, f.meta.chunk)] = (f.etag, f.meta.version)
        self.covered.setdefault(key, []).append((lo, hi))

    def live_metas(self, key: SeriesKey) -> list[ChunkMeta]:
        fetched = self.backend.reader.series(key, None, None, header_only=True)
        self._remember(key, fetched, None, None)
        return [f.meta for f in fetched if not f.meta.deleted]

    def read(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
             ) -> list[ChunkRecord]:
        if lo is not None and hi is not None and hi < lo:
            return []
        fetched = self.backend.reader.series(key, lo, hi)
        self._remember(key, fetched, lo, hi)
        return [f.record for f in fetched if f.record is not None and not f.meta.deleted]

    def put(self, records: Sequence[ChunkRecord]) -> None:
        for record in records:
            if record.key not in self.keys:
                raise ValueError(f"series {record.key} is not part of this transaction")
        for record in records:
            self.staged[(record.key, record.chunk)] = record

    def set_state(self, name: str, value: str) -> None:
        self.states[name] = value

    def state_of(self, slot: Slot) -> tuple[str | None, int] | None:
        """What this transaction knows of a chunk: read, known absent, or None (unknown)."""
        known = self.known.get(slot)
        if known is not None:
            return known
        for lo, hi in self.covered.get(slot[0], ()):
            if (lo is None or slot[1] >= lo) and (hi is None or slot[1] <= hi):
                return None, 0  # inside a range this transaction read: absent
        return None


class S3Backend(Backend):
    """Chunks as objects in an S3 bucket; see :mod:`curvestore.backends.s3`."""

    schemes = ("s3",)

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, profile: str | None = None, max_workers: int = 16,
                 list_page_size: int = 1000, pending_grace: float = 60.0,
                 single_writer: bool = False, read_only: bool = False) -> None:
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
        self.client = ObjectClient(bucket, endpoint_url=endpoint_url, region=region,
                                   profile=profile, max_pool=max_workers + 4,
                                   page_size=list_page_size)
        self.log = ChangeLog(self.client, self.root, conditional=not single_writer)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._manifest: dict[str, Any] = {}
        self._last_recovery = float("-inf")
        self._recover_at_bind = False
        self.reader = ChunkReader(self.client, self.root, lambda: self.pool)

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
        return cls(
            url.netloc, url.path,
            endpoint_url=options.get("endpoint_url") or None,
            region=options.get("region") or None,
            profile=options.get("profile") or None,
            max_workers=_int_option(options, "max_workers", 16, 1),
            list_page_size=min(_int_option(options, "list_page_size", 1000, 1), 1000),
            pending_grace=pending_grace,
            single_writer=single in ("true", "1"),
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

    def _state_key(self, name: str) -> str:
        return f"{self.root}sync/{quote(name, safe='')}.json"

    def _pending_key(self, txid: str) -> str:
        return f"{self.root}pending/{txid}.json"

    # -- manifest ------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        got = self.client.get(self.root + "manifest.json")
        if got is None:
            return None
        try:
            manifest = json.loads(got[0])
        except ValueError as exc:
            raise IntegrityError(f"{self!r}: unreadable manifest") from exc
        if not isinstance(manifest, dict):
            raise IntegrityError(f"{self!r}: unreadable manifest")
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
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.client.put(self.root + "manifest.json", body,
                            if_none_match=not self.single_writer)
        except ConflictError as exc:
            raise StoreExistsError(f"a store already exists at {self!r}") from exc
        self._manifest = dict(manifest)
        self.log.created()

    # -- reads ---------------------------------------------------------------------------------
    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        return [f.record for f in self.reader.series(key, lo, hi)
                if f.record is not None and not f.meta.deleted]

    def fetch(self, refs: Sequence[tuple[SeriesKey, int]]) -> list[ChunkRecord]:
        out = []
        for (key, chunk), got in zip(refs, self.reader.fetch_many(refs), strict=True):
            if got is None or got.record is None or got.meta.deleted:
                out.append(ChunkRecord(key, ChunkMeta(chunk=chunk, deleted=True)))
            else:
                out.append(got.record)
        return out

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None
             ) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        for key, fetched in self.reader.stream(where, lo, hi, header_only=False):
            records = [f.record for f in fetched if f.record is not None and not f.meta.deleted]
            if records:
                yield key, records

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, fetched in self.reader.stream(where, None, None, header_only=True):
            metas = [f.meta for f in fetched if not f.meta.deleted]
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
                    pass
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

    def _resolve(self, tx: _S3Transaction) -> dict[Slot, tuple[str | None, int]]:
        """The (ETag or None, version) each staged chunk must still have at commit."""
        states: dict[Slot, tuple[str | None, int]] = {}
        unknown = []
        for slot in tx.staged:
            known = tx.state_of(slot)
            if known is None:
                unknown.append(slot)
            else:
                states[slot] = known
        for slot, got in zip(unknown, self.reader.fetch_many(unknown, header_only=True),
                             strict=True):
            states[slot] = (None, 0) if got is None else (got.etag, got.meta.version)
        return states

    def _commit(self, tx: _S3Transaction) -> list[Change]:
        if not tx.staged and not tx.states:
            return []
        self._check_conditional_writes()
        self._recover()
        now = time.time_ns()
        states = self._resolve(tx)
        slots = sorted(tx.staged)
        final: dict[Slot, ChunkRecord] = {}
        for slot in slots:
            record = tx.staged[slot]
            final[slot] = record.with_meta(version=states[slot][1] + 1,
                                           updated_at=record.meta.updated_at or now)
        changes = [Change(k, c, final[(k, c)].meta.version, final[(k, c)].meta.deleted)
                   for k, c in slots]
        marker = self._pending_key(tx.txid)
        marker_body = json.dumps({"txid": tx.txid, "refs": [[list(k), c] for k, c in slots]},
                                 separators=(",", ":")).encode()
        if slots:
            self.client.put(marker, marker_body)  # (1) intent, for recovery
        written = self._put_chunks(tx, slots, final, states, marker, marker_body)  # (2)
        for name, value in sorted(tx.states.items()):  # replication cursors, after the chunks
            self.client.put(self._state_key(name),
                            json.dumps({"name": name, "value": value}).encode())
        if changes:
            self.log.claim(changes, tx.txid)  # (3)
        if slots:
            self.client.delete(marker)  # (4)
        assert len(written) == len(slots)
        return changes

    def _put_chunks(self, tx: _S3Transaction, slots: list[Slot], final: dict[Slot, ChunkRecord],
                    states: dict[Slot, tuple[str | None, int]], marker: str, marker_body: bytes
                    ) -> dict[Slot, str]:
        """Conditional PUTs of every chunk, concurrently, refreshing the pending marker while
        they run. On any failure, chunks this batch created are removed again (if nobody
        changed them since), those it overwrote are logged, and the error is raised."""
        metadata = {TXID_META: tx.txid}
        conditional = not self.single_writer

        def put(slot: Slot) -> str:
            etag = states[slot][0]
            return self.client.put(
                self.reader.chunk_key(slot[0], slot[1]),
                layout.encode_object(final[slot]), metadata=metadata,
                if_match=etag if conditional and etag is not None else None,
                if_none_match=conditional and etag is None)

        futures = {self.pool.submit(put, slot): slot for slot in slots}
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
        written: dict[Slot, str] = {}
        error: BaseException | None = None
        for future, slot in futures.items():
            exc = future.exception()
            if exc is None:
                written[slot] = future.result()
            elif error is None or (isinstance(error, ConflictError)
                                   and not isinstance(exc, ConflictError)):
                error = exc
        if error is None:
            return written
        self._abandon(tx, written, states, final)
        with contextlib.suppress(Exception):
            self.client.delete(marker)
        raise error

    def _abandon(self, tx: _S3Transaction, written: dict[Slot, str],
                 states: dict[Slot, tuple[str | None, int]], final: dict[Slot, ChunkRecord]
                 ) -> None:
        """After a failed batch: delete the chunks it created (conditionally on their new
        ETag), and log the ones it overwrote, so the feed shows every change that stays."""
        kept = []
        for slot, etag in sorted(written.items()):
            key = self.reader.chunk_key(slot[0], slot[1])
            if states[slot][0] is None and self.client.delete(key, if_match=etag):
                continue
            kept.append(Change(slot[0], slot[1], final[slot].meta.version,
                               final[slot].meta.deleted))
        if kept:
            self.log.claim(kept, tx.txid)

    # -- recovery of writers that died mid-commit ---------------------------------------------
    def _recover(self, force: bool = False) -> int:
        """Log the chunks of batches whose writer died between its chunk PUTs and its log
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
            age = (now - item.last_modified).total_seconds()  # Date has 1 s resolution
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
            fetched = self.reader.fetch_many(refs, header_only=True)
            changes = [Change(key, chunk, got_.meta.version, got_.meta.deleted)
                       for (key, chunk), got_ in zip(refs, fetched, strict=True)
                       if got_ is not None and got_.txid == txid]
            if changes:
                self.log.claim(changes, f"recovered:{txid}")
            self.client.delete(item.key, if_match=etag)
            log.warning("recovered %d change(s) of interrupted commit %s", len(changes), txid)
            recovered += 1
        return recovered

    # -- replication state -------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        got = self.client.get(self._state_key(name))
        if got is None:
            return None
        try:
            return str(json.loads(got[0])["value"])
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
            decoded = decode_cursor(cursor, store_id)
            if len(decoded) != 1 or decoded[0] < 0:
                raise SyncError("this change-feed cursor was not issued by an s3:// store")
            position = decoded[0]
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
