"""The state the parts of :class:`~curvestore.backends.s3.S3Backend` share: the object
client, the change log, the shard reader, the thread pool and the keys of the store's small
objects (sync state, pending markers).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit, urlunsplit

from curvestore.backends.s3._client import ObjectClient
from curvestore.backends.s3._log import ChangeLog
from curvestore.backends.s3._reader import ShardReader
from curvestore.core.backend import Backend
from curvestore.core.records import SeriesKey
from curvestore.errors import ConfigurationError, IntegrityError

__all__ = ["S3BackendBase", "ShardId", "Slot"]

Slot = tuple[SeriesKey, int]  # (series, chunk)
ShardId = tuple[SeriesKey, int]  # (series, shard number)


def _shown_endpoint(endpoint: str | None) -> str | None:
    """The endpoint without any user:password@ part, for reprs and messages."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class S3BackendBase(Backend):
    """What every part of the S3 backend shares: the object client, the change log, the
    shard reader, the thread pool and the object keys of the store's small objects."""

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
        self._last_recovery = float("-inf")
        self._recover_at_bind = False
        self.reader = ShardReader(self.client, self.root, lambda: self.pool, max_workers)

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

    def _state_value(self, name: str, body: bytes) -> str:
        try:
            return str(json.loads(body)["value"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{self.client.where(self._state_key(name))}: unreadable"
                                 ) from exc
