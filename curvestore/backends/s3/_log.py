"""The S3 change log: one object per committed batch, ``log/<seq:020d>.json``.

A writer claims sequence ``N`` by creating ``log/N`` with ``If-None-Match: *``: exactly one
writer wins each number, and nobody tries ``N + 1`` before having seen ``N`` in a listing, so
the log has no gaps and a reader's cursor is just the last sequence it consumed. A lost claim
(412) makes the writer list the log after ``N`` to find the new head and try again.

The head is found by listing after the last sequence this process knows; a hint object
(``log-head.json``, rewritten every ``_HINT_EVERY`` sequences with a plain PUT) keeps that
listing short for a fresh process on a long log. A hint always names a sequence that exists,
so even a stale one (two writers racing to write it) is a valid place to start listing from.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

from curvestore.backends.s3._client import ObjectClient
from curvestore.core.records import Change
from curvestore.errors import ConflictError, IntegrityError

__all__ = ["ChangeLog"]

_HINT_EVERY = 100
_SUFFIX = ".json"


class ChangeLog:
    """Claiming and reading log entries under ``<root>log/``."""

    def __init__(self, client: ObjectClient, root: str, *, conditional: bool = True) -> None:
        self.client = client
        self.dir = root + "log/"
        self.hint_key = root + "log-head.json"
        self.conditional = conditional
        self._known = 0
        self._hinted = False
        self._lock = threading.Lock()

    def created(self) -> None:
        """The store was just created here: the log is known to be empty."""
        with self._lock:
            self._hinted = True

    def key(self, seq: int) -> str:
        return f"{self.dir}{seq:020d}{_SUFFIX}"

    def seq_of(self, key: str) -> int:
        name = key[len(self.dir):]
        if not name.endswith(_SUFFIX) or not name[:-len(_SUFFIX)].isdigit():
            raise IntegrityError(f"{self.client.where(key)}: not a change-log entry")
        return int(name[:-len(_SUFFIX)])

    # -- writing -------------------------------------------------------------------------------
    def head(self) -> int:
        """The last claimed sequence (0 for an empty log)."""
        with self._lock:
            start = self._known
            hinted = self._hinted
        if not hinted:
            got = self.client.get(self.hint_key)
            if got is not None:
                # a damaged hint only costs a longer listing
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    start = max(start, int(json.loads(got[0])["seq"]))
        last = start
        for item in self.client.list_objects(self.dir, start_after=self.key(start)):
            last = self.seq_of(item.key)
        with self._lock:
            self._hinted = True
            self._known = max(self._known, last)
        return last

    def claim(self, changes: Sequence[Change], txid: str) -> int:
        """Append one batch; returns its sequence number."""
        body = json.dumps(
            {"x": txid, "e": [[list(c.key), c.chunk, c.version, c.deleted] for c in changes]},
            separators=(",", ":")).encode()
        with self._lock:
            seq = self._known + 1 if self._hinted else 0
        if seq == 0:
            seq = self.head() + 1
        while True:
            try:
                self.client.put(self.key(seq), body, if_none_match=self.conditional)
            except ConflictError:
                seq = self.head() + 1
                continue
            with self._lock:
                self._known = max(self._known, seq)
            if seq % _HINT_EVERY == 0:
                self.client.put(self.hint_key, json.dumps({"seq": seq}).encode())
            return seq

    # -- reading -------------------------------------------------------------------------------
    def claimed(self, seq: int) -> bool:
        """Whether sequence ``seq`` was claimed (0 always is: the empty log's start). The log
        has no gaps and loses no entry, so this is ``seq <= head``; it costs one small GET
        only when ``seq`` is beyond what this process has seen."""
        with self._lock:
            if seq <= self._known:
                return True
        if self.client.get(self.key(seq), suffix=1, self_checked=True) is None:
            return False
        with self._lock:
            self._known = max(self._known, seq)
        return True

    def after(self, seq: int, pool: Executor, window: int
              ) -> Iterator[tuple[int, str, list[Change]]]:
        """``(seq, txid, changes)`` of every batch after ``seq``, in order; entries are
        fetched ``window`` at a time, concurrently."""
        listing = self.client.list_objects(self.dir, start_after=self.key(seq))
        while True:
            keys = [item.key for _, item in zip(range(window), listing, strict=False)]
            if not keys:
                return
            for key, data in zip(keys, pool.map(self._fetch, keys), strict=True):
                yield self.seq_of(key), *self._parse(key, data)

    def _fetch(self, key: str) -> bytes:
        got = self.client.get(key)
        if got is None:
            raise IntegrityError(f"{self.client.where(key)}: listed but gone (log entries are "
                                 "never deleted)")
        return got[0]

    def _parse(self, key: str, data: bytes) -> tuple[str, list[Change]]:
        try:
            batch: dict[str, Any] = json.loads(data)
            changes = [Change(tuple(k), int(c), int(v), bool(d)) for k, c, v, d in batch["e"]]
            return str(batch.get("x", "")), changes
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{self.client.where(key)}: unreadable log entry") from exc
