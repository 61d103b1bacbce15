"""The commit protocol of the S3 backend, and the recovery of writers that died mid-commit.

A commit (1) writes a pending marker naming its chunks, (2) PUTs every shard it touches,
conditionally on the ETag it read (or on absence), (3) claims the next position of the change
log for its changes and (4) deletes the marker. A reader recovers the changes of a writer that
died between (2) and (3) from its marker once it is older than ``pending_grace``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, wait

from curvestore.backends import _layout as layout
from curvestore.backends.s3._base import S3BackendBase, ShardId, Slot
from curvestore.backends.s3._client import S3Error, parse_timestamp
from curvestore.backends.s3._object_shard_format import Entry, Shard, encode_shard
from curvestore.backends.s3._transaction import S3Transaction
from curvestore.core.backend import stale_state
from curvestore.core.records import Change, ChunkMeta, ChunkRecord
from curvestore.errors import ConfigurationError, ConflictError

__all__ = ["S3Commit"]

log = logging.getLogger("curvestore.s3")

#: (endpoint, bucket) -> whether the service enforces conditional writes (probed once).
_PROBED: dict[tuple[str, str], bool] = {}
_PROBED_LOCK = threading.Lock()


class _Plan:
    """One shard a commit rewrites: what it read (None: absent) and what it writes."""

    __slots__ = ("base", "body", "entries", "object_key", "shard", "slots")

    def __init__(self, shard: ShardId, object_key: str, base: Shard | None, body: bytes,
                 entries: dict[int, Entry], slots: list[Slot]) -> None:
        self.shard, self.object_key, self.base = shard, object_key, base
        self.body, self.entries, self.slots = body, entries, slots


class S3Commit(S3BackendBase):
    """The commit protocol: conditional PUTs of every touched shard between a pending
    marker and the change log's claim, and the recovery of writers that died between."""

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

    def _plan(self, tx: S3Transaction) -> tuple[list[_Plan], dict[Slot, ChunkRecord]]:
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

    def _commit(self, tx: S3Transaction) -> list[Change]:
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

    def _check_states(self, tx: S3Transaction) -> dict[str, str | None]:
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

    def _put_chunks(self, tx: S3Transaction, plans: list[_Plan],
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

    def _after_failure(self, tx: S3Transaction, plans: list[_Plan], written: dict[int, str],
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
