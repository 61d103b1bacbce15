"""Objects in an S3 bucket (any S3-compatible service), through the S3 backend's boto3 client
(:class:`curvestore.backends.s3._client.ObjectClient`: error translation, retries, ranged and
conditional requests). boto3 is imported when a store is built, never by importing this module.

How the contract (:mod:`curvestore.objects.base`) is met:

* Each object is one S3 object ``<prefix>/<key>``, written by one PUT: S3 serves the old or the
  new object, never a mix, and is strongly consistent for reads and listings after a write.
* ``put_if_absent`` is a PUT with ``If-None-Match: *``, ``put_if_match`` one with ``If-Match:
  <etag>``, ``delete(if_match=)`` a DELETE with ``If-Match``: the service decides each
  condition atomically (412/409 become ConflictError). Before the first conditional request a
  store checks once per process, endpoint and bucket that the service enforces these headers
  (``<prefix>/.curvestore/probe``); if it does not, conditional calls raise
  ConfigurationError rather than letting racing writers overwrite each other.
* Versions are ETags. For single PUTs they are the MD5 of the bytes, so a version identifies
  the content (equal versions, equal bytes), but storing the same bytes again keeps the same
  version (``unique_versions = False``): a compare-and-swap here is on content.
* Whole-object GETs ask botocore to check the service's stored checksum; ranged and suffix
  reads (which no checksum covers) go through the client's presigned fast path.
* :meth:`S3ObjectStore.get_many` and :meth:`~S3ObjectStore.get_ranges` run on a thread pool of
  ``max_workers`` over the one (thread-safe) client.

Credentials come only from boto3's chain (environment, profile, instance role); the repr and
messages show bucket, prefix and endpoint (without any ``user:password@``) only.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from curvestore.backends.s3._client import ObjectClient
from curvestore.core.url import parse_url
from curvestore.errors import ConfigurationError, ConflictError
from curvestore.objects.base import RESERVED_PREFIX, ObjectInfo, ObjectStore

__all__ = ["S3ObjectStore"]

_OPTIONS = frozenset({"endpoint_url", "region", "profile", "max_workers", "list_page_size"})
#: (endpoint, bucket) -> whether the service enforces conditional writes (probed once).
_ENFORCED: dict[tuple[str, str], bool] = {}
_ENFORCED_LOCK = threading.Lock()


def _shown_endpoint(endpoint: str | None) -> str:
    if not endpoint:
        return "aws"
    parts = urlsplit(endpoint)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


class S3ObjectStore(ObjectStore):
    """Objects under ``prefix`` in an S3 bucket; see :mod:`curvestore.objects.s3`.

    Parameters
    ----------
    bucket : str
        An existing bucket.
    prefix : str
        Where the store's keys live in the bucket (``""``: the whole bucket).
    endpoint_url, region, profile : str or None
        Passed to boto3 (omit the endpoint for AWS).
    max_workers : int
        Threads (and pooled connections) for :meth:`get_many` and :meth:`get_ranges`.
    list_page_size : int
        Keys per listing request (at most 1000).

    Raises
    ------
    ConfigurationError
        On a missing bucket name or a client boto3 cannot build.
    BackendNotInstalledError
        When boto3 is not installed (the ``s3`` extra).
    """

    unique_versions = False

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, profile: str | None = None,
                 max_workers: int = 16, list_page_size: int = 1000) -> None:
        if not bucket:
            raise ConfigurationError("an S3 object store needs a bucket")
        if max_workers < 1 or not 1 <= list_page_size <= 1000:
            raise ConfigurationError("max_workers must be >= 1 and list_page_size in 1..1000")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = self.prefix + "/" if self.prefix else ""
        self._args: dict[str, Any] = {
            "endpoint_url": endpoint_url, "region": region, "profile": profile,
            "max_workers": max_workers, "list_page_size": list_page_size}
        self.endpoint = _shown_endpoint(endpoint_url)
        self.max_workers = max_workers
        self.client = ObjectClient(bucket, endpoint_url=endpoint_url, region=region,
                                   profile=profile, max_pool=max_workers + 4,
                                   page_size=list_page_size)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3ObjectStore:
        """Build a store from ``s3://bucket/prefix?endpoint_url=...&region=...&profile=...``
        (also ``max_workers``, ``list_page_size``).

        Parameters
        ----------
        url : str
            The URL; it must not carry credentials.

        Returns
        -------
        S3ObjectStore

        Raises
        ------
        ConfigurationError
            On another scheme, credentials in the URL, or unknown or malformed options.
        """
        parsed = parse_url(url)
        if parsed.scheme != "s3":
            raise ConfigurationError(f"not an s3:// URL: {parsed.redacted()}")
        if "@" in parsed.netloc:
            raise ConfigurationError("s3:// URLs take no credentials: boto3 finds them")
        parsed.reject_unknown_options(_OPTIONS)
        options = parsed.options
        try:
            numbers = {name: int(options[name]) for name in ("max_workers", "list_page_size")
                       if name in options}
        except ValueError:
            raise ConfigurationError("max_workers and list_page_size must be integers") from None
        return cls(parsed.netloc, parsed.path, endpoint_url=options.get("endpoint_url") or None,
                   region=options.get("region") or None,
                   profile=options.get("profile") or None, **numbers)

    def __repr__(self) -> str:
        return (f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"endpoint={self.endpoint!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return functools.partial(S3ObjectStore, **self._args), (self.bucket, self.prefix)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    @property
    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers,
                                                thread_name_prefix="curvestore-objects")
            return self._pool

    def _check_conditional(self) -> None:
        ident = (self.endpoint, self.bucket)
        with _ENFORCED_LOCK:
            enforced = _ENFORCED.get(ident)
        if enforced is None:
            enforced = self.client.conditional_writes_enforced(
                f"{self._root}{RESERVED_PREFIX}/probe")
            with _ENFORCED_LOCK:
                _ENFORCED[ident] = enforced
        if not enforced:
            raise ConfigurationError(
                f"the S3 service at {self.endpoint} does not enforce conditional writes "
                "(If-None-Match / If-Match): put_if_absent, put_if_match and delete(if_match=) "
                "would not be atomic there")

    # -- reads --------------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str] | None:
        got = self.client.get(self._root + key)
        return None if got is None else (got[0], got[1])

    def _exists(self, key: str) -> bool:
        return self.client.get(self._root + key, byte_range=(0, 0), self_checked=True,
                               empty_past_end=True) is not None

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        if length == 0:
            return b"" if self._exists(key) else None
        end = None if length is None else start + length - 1
        got = self.client.read_checked(self._root + key, byte_range=(start, end),
                                       empty_past_end=True)
        return None if got is None else got[0]

    def _get_suffix(self, key: str, length: int) -> bytes | None:
        if length == 0:
            return b"" if self._exists(key) else None
        got = self.client.read_checked(self._root + key, suffix=length)
        return None if got is None else got[0]

    def _get_many(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        if len(keys) < 2:
            return [self._get(k) for k in keys]
        return list(self._executor.map(self._get, keys))

    def _get_ranges(self, requests: list[tuple[str, int, int | None]]) -> list[bytes | None]:
        if len(requests) < 2:
            return [self._get_range(*r) for r in requests]
        return list(self._executor.map(lambda r: self._get_range(*r), requests))

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        cut = len(self._root)
        internal = f"{self._root}{RESERVED_PREFIX}/"
        after = None if start_after is None else self._root + start_after
        for item in self.client.list_objects(self._root + prefix, start_after=after):
            if not item.key.startswith(internal):
                yield ObjectInfo(item.key[cut:], item.size, item.etag)

    # -- writes -------------------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> str:
        return self.client.put(self._root + key, data)

    def _put_if_absent(self, key: str, data: bytes) -> str:
        self._check_conditional()
        try:
            return self.client.put(self._root + key, data, if_none_match=True)
        except ConflictError as exc:
            raise self._conflict(key, "exists already") from exc

    def _put_if_match(self, key: str, data: bytes, version: str) -> str:
        self._check_conditional()
        return self.client.put(self._root + key, data, if_match=version)

    def _delete(self, key: str, if_match: str | None) -> None:
        if if_match is not None:
            self._check_conditional()
        if not self.client.delete(self._root + key, if_match=if_match):
            raise self._conflict(key, "a concurrent writer replaced or removed it")
