"""A minimal object interface over boto3, with botocore errors translated at the boundary.

Everything the S3 backend does to the service goes through :class:`ObjectClient`: GET (whole
or ranged), conditional PUT and DELETE, paginated listings. boto3 is imported here, lazily:
importing :mod:`curvestore.backends.s3` never needs it. Credentials are never handled here:
boto3 finds them through its own chain (environment, shared config/profile, instance role),
and no message built here contains anything but bucket, key, endpoint and the service's error
code and message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from curvestore.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    ConflictError,
    CurvestoreError,
)

__all__ = ["Listed", "ObjectClient", "S3Error", "load_boto3", "parse_timestamp"]

#: Error codes meaning "a condition of a conditional request did not hold".
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: Returned by the presigned fast path for "ask botocore instead".
_RETRY = object()
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "ExpiredToken", "InvalidToken", "AllAccessDisabled"})


def _range(byte_range: tuple[int, int | None] | None, suffix: int | None) -> str | None:
    """The HTTP Range of a GET: bytes ``byte_range`` (inclusive; an end of None: to the end
    of the object), or the last ``suffix``."""
    if byte_range is not None:
        start, end = byte_range
        return f"bytes={start}-{'' if end is None else end}"
    return None if suffix is None else f"bytes=-{suffix}"


class S3Error(CurvestoreError):
    """The object service failed a request (after botocore's own retries)."""

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        super().__init__(message)


def load_boto3() -> Any:
    """Import boto3, or raise BackendNotInstalledError naming the ``s3`` extra."""
    try:
        import boto3
    except ImportError as exc:
        raise BackendNotInstalledError("the s3:// backend", "s3", str(exc)) from exc
    return boto3


_SESSIONS: dict[str, Any] = {}
_SESSIONS_LOCK = threading.Lock()
#: The environment boto3's credential chain and configuration read: a session is reused only
#: while these are unchanged (the cache key is a digest, never the values).
_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def _raw_timestamp(value: str) -> str:
    return value


def _session(boto3: Any, profile: str | None) -> Any:
    """A boto3 session per profile and credential environment, reused: building one loads
    the S3 service model (~0.2 s), and its resolved credentials (refreshed by botocore when
    they are temporary) are shared by every store of the process.

    Its responses keep timestamps as the service's text: botocore would otherwise parse every
    listed object's LastModified (and every GET's Last-Modified header) with dateutil, about
    1 ms each, for values the backend almost never needs (see :func:`parse_timestamp`)."""
    import botocore.session

    digest = hashlib.sha256(repr((profile, [os.environ.get(n) for n in _ENV])).encode())
    ident = digest.hexdigest()
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(ident)
        if session is None:
            core = botocore.session.Session()
            core.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=_raw_timestamp)
            session = _SESSIONS[ident] = boto3.session.Session(profile_name=profile,
                                                               botocore_session=core)
        return session


def parse_timestamp(text: str) -> dt.datetime:
    """An S3 listing's LastModified (ISO 8601, ``...Z``) as an aware datetime."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Listed:
    """One object of a listing."""

    key: str
    etag: str
    last_modified: str  # the service's text: see parse_timestamp
    size: int


class ObjectClient:
    """Thread-safe access to one bucket (boto3 clients are thread-safe)."""

    def __init__(self, bucket: str, *, endpoint_url: str | None, region: str | None,
                 profile: str | None, max_pool: int, page_size: int = 1000) -> None:
        boto3 = load_boto3()
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        self.bucket = bucket
        self.endpoint = endpoint_url or "aws"
        self.page_size = page_size
        try:
            session = _session(boto3, profile)
        except ProfileNotFound as exc:
            raise ConfigurationError(f"AWS profile {profile!r} is not defined") from exc
        except BotoCoreError as exc:
            raise ConfigurationError(f"cannot set up an AWS session: {type(exc).__name__}"
                                     ) from exc
        config = Config(
            max_pool_connections=max_pool,
            retries={"mode": "standard", "max_attempts": 5},
            # GETs ask the service for its checksum only when the caller does not verify
            # the bytes itself (see get(): shard objects carry CRC-32s of their own)
            response_checksum_validation="when_required",
            # SigV4 for presigned GETs too (botocore presigns with SigV2 in us-east-1 unless
            # told): calls already use it, and AWS no longer accepts SigV2 everywhere
            signature_version="s3v4",
            connect_timeout=10,
            read_timeout=30,
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        try:
            with _SESSIONS_LOCK:  # creating clients from one session is not thread-safe
                self.s3 = session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                         config=config)
        except (BotoCoreError, ValueError) as exc:
            raise ConfigurationError(f"cannot build an S3 client for endpoint {self.endpoint}: "
                                     f"{type(exc).__name__}") from exc

    # -- error translation -------------------------------------------------------------------
    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def translate(self, exc: Exception, what: str, key: str = "") -> CurvestoreError:
        """A curvestore error for a botocore exception (the caller raises it ``from exc``)."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        place = self.where(key) if key else f"s3://{self.bucket}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ConfigurationError(
                f"{what} {place}: no usable AWS credentials (boto3 looks in the environment, "
                "the shared config and credentials files or AWS_PROFILE, then instance roles)")
        if isinstance(exc, EndpointConnectionError):
            return S3Error(f"{what} {place}: cannot reach the S3 endpoint {self.endpoint}",
                           "EndpointConnectionError")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _CONFLICT_CODES or status in (409, 412):
                return ConflictError(f"{what} {place}: a concurrent writer changed it ({code})")
            if code == "NoSuchBucket":
                return ConfigurationError(
                    f"bucket {self.bucket!r} does not exist at endpoint {self.endpoint}; "
                    "create it first (curvestore does not create buckets)")
            if code in _DENIED_CODES or status == 403:
                return ConfigurationError(
                    f"{what} {place}: access denied by endpoint {self.endpoint} ({code}); check "
                    "the credentials boto3 finds and the bucket policy")
            return S3Error(f"{what} {place}: {code or status}: {message}", code)
        return S3Error(f"{what} {place}: {type(exc).__name__}", type(exc).__name__)

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    @staticmethod
    def _status(exc: Exception) -> int | None:
        response = getattr(exc, "response", None) or {}
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")  # type: ignore[no-any-return]

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (ClientError, BotoCoreError)

    # -- objects -------------------------------------------------------------------------------
    def get(self, key: str, *, byte_range: tuple[int, int | None] | None = None,
            suffix: int | None = None, if_match: str | None = None,
            self_checked: bool = False, empty_past_end: bool = False
            ) -> tuple[bytes, str, dict[str, str]] | None:
        """``(data, etag, user metadata)``, or None when the object does not exist.
        ``suffix``: only the last ``suffix`` bytes (all of a smaller object); ``if_match``:
        ConflictError unless the object's ETag is this one. Unless ``self_checked`` (the
        caller verifies every byte it uses against checksums of its own), botocore checks
        the body against the checksum the service stored with the object, if any. A
        ``byte_range`` starting at or past the end of the object (the service answers 416)
        reads the whole object, unless ``empty_past_end``: then the data is empty (and the
        ETag unknown, "")."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if not self_checked:
            args["ChecksumMode"] = "ENABLED"
        if if_match is not None:
            args["IfMatch"] = if_match
        if (wanted := _range(byte_range, suffix)) is not None:
            args["Range"] = wanted
        try:
            response = self.s3.get_object(**args)
            data = response["Body"].read()
        except self._errors() as exc:
            if self._code(exc) in _MISSING_CODES:
                return None
            if self._code(exc) == "InvalidRange":  # a range starting at or past the end
                if empty_past_end and byte_range is not None:
                    return b"", "", {}
                return self.get(key, self_checked=self_checked)
            raise self.translate(exc, "cannot read", key) from exc
        return data, str(response.get("ETag", "")), dict(response.get("Metadata") or {})

    def read_checked(self, key: str, *, byte_range: tuple[int, int | None] | None = None,
                     suffix: int | None = None, if_match: str | None = None,
                     empty_past_end: bool = False) -> tuple[bytes, str] | None:
        """``(data, etag)`` of an object whose bytes the caller verifies against checksums
        of its own (shard objects), or None when it does not exist; arguments as for
        :meth:`get`.

        The first attempt is a presigned GET (signed by botocore with the same credentials,
        region and addressing) sent on the client's own HTTP session, so with the same
        proxies, CA bundle, timeouts and connection pool as any call, but without the
        per-call pipeline of botocore (events, parameter validation, endpoint rules,
        response parsing), which is about 40% of the client's CPU per GET. Any outcome but
        a complete 200/206 body, a missing key or a failed ``if_match`` (ConflictError) is
        retried once through :meth:`get`, that is with botocore's retries and error
        translation."""
        headers: dict[str, str] = {}
        if if_match is not None:
            headers["If-Match"] = if_match
        if (wanted := _range(byte_range, suffix)) is not None:
            headers["Range"] = wanted
        quick = self._presigned_get(key, headers)
        if quick is not _RETRY:
            return quick  # type: ignore[return-value]
        got = self.get(key, byte_range=byte_range, suffix=suffix, if_match=if_match,
                       self_checked=True, empty_past_end=empty_past_end)
        return None if got is None else (got[0], got[1])

    def _presigned_get(self, key: str, headers: dict[str, str]) -> object:
        """``(data, etag)``, None (no such key) or ``_RETRY``."""
        transport = getattr(getattr(self.s3, "_endpoint", None), "http_session", None)
        if transport is None:  # a botocore that no longer exposes its session
            return _RETRY
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        try:
            url = self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=900)
            response = transport.send(AWSRequest(method="GET", url=url, headers=headers,
                                                 stream_output=True).prepare())
        except (BotoCoreError, HTTPError, OSError):
            return _RETRY
        raw = response.raw
        try:
            status = response.status_code
            if status in (200, 206):
                data = raw.read()
                expected = response.headers.get("content-length")
                if expected is None or len(data) != int(expected):
                    return _RETRY  # cut short: botocore's own call will retry
                return data, str(response.headers.get("etag", ""))
            if status == 412:  # If-Match did not hold: no point in asking again
                raise ConflictError(f"cannot read {self.where(key)}: a concurrent writer "
                                    "changed it (PreconditionFailed)")
            if status == 404 and b"<Code>NoSuchKey</Code>" in raw.read(65536):
                return None
            return _RETRY
        except (HTTPError, OSError, ValueError):
            return _RETRY
        finally:
            raw.drain_conn()  # a no-op once the body was read whole

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            if_none_match: bool = False, metadata: dict[str, str] | None = None) -> str:
        """Write an object; returns its new ETag. A failed condition raises ConflictError
        (an ``if_match`` on an object that is gone counts as a failed condition)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body}
        if if_match is not None:
            args["IfMatch"] = if_match
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if metadata:
            args["Metadata"] = metadata
        try:
            response = self.s3.put_object(**args)
        except self._errors() as exc:
            if if_match is not None and self._code(exc) in _MISSING_CODES:
                raise ConflictError(f"cannot write {self.where(key)}: a concurrent writer "
                                    "removed it") from exc
            raise self.translate(exc, "cannot write", key) from exc
        return str(response.get("ETag", ""))

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete an object (absent is fine); False when ``if_match`` did not hold."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            self.s3.delete_object(**args)
        except self._errors() as exc:
            code, status = self._code(exc), self._status(exc)
            if code in _MISSING_CODES:
                return if_match is None
            if if_match is not None and (code in _CONFLICT_CODES or status in (409, 412)):
                return False
            raise self.translate(exc, "cannot delete", key) from exc
        return True

    def conditional_writes_enforced(self, probe_key: str) -> bool:
        """Whether the service refuses a failing If-None-Match and If-Match (412/409): PUTs
        ``probe_key`` three times. Services that ignore the headers would let concurrent
        writers overwrite each other silently."""
        self.put(probe_key, b"probe")
        for condition in ({"if_none_match": True},
                          {"if_match": '"00000000000000000000000000000000"'}):
            try:
                self.put(probe_key, b"probe", **condition)  # type: ignore[arg-type]
            except ConflictError:
                continue  # the service refused the failing condition: as it should
            except S3Error:
                return False
            return False
        return True

    # -- listings ------------------------------------------------------------------------------
    def list_objects(self, prefix: str, *, start_after: str | None = None,
                     limit: int | None = None) -> Iterator[Listed]:
        """Objects under ``prefix`` in key order (after ``start_after``), page by page."""
        for page in self._pages(prefix, start_after=start_after, limit=limit):
            for item in page.get("Contents", ()):
                yield Listed(item["Key"], str(item.get("ETag", "")),
                             str(item.get("LastModified", "")), int(item.get("Size", 0)))

    def list_prefixes(self, prefix: str) -> list[str]:
        """The 'sub-directories' right under ``prefix`` (``Delimiter='/'``), every page."""
        found: list[str] = []
        for page in self._pages(prefix, delimiter="/"):
            found += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        return found

    def _pages(self, prefix: str, *, delimiter: str | None = None,
               start_after: str | None = None, limit: int | None = None
               ) -> Iterator[dict[str, Any]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix,
                                "MaxKeys": min(self.page_size, limit or self.page_size)}
        if delimiter:
            args["Delimiter"] = delimiter
        if start_after:
            args["StartAfter"] = start_after
        seen = 0
        while True:
            try:
                page = self.s3.list_objects_v2(**args)
            except self._errors() as exc:
                raise self.translate(exc, "cannot list", prefix) from exc
            yield page
            seen += int(page.get("KeyCount", 0))
            if not page.get("IsTruncated") or (limit is not None and seen >= limit):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]
            args.pop("StartAfter", None)

    def server_time(self, prefix: str) -> tuple[dt.datetime, list[Listed]]:
        """List ``prefix`` (one page) and return the service's clock (the response's Date
        header, so that ages are measured on one clock) with the objects."""
        try:
            page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix,
                                           MaxKeys=self.page_size)
        except self._errors() as exc:
            raise self.translate(exc, "cannot list", prefix) from exc
        date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = email.utils.parsedate_to_datetime(date) if date else dt.datetime.now(dt.UTC)
        items = [Listed(i["Key"], str(i.get("ETag", "")), str(i.get("LastModified", "")),
                        int(i.get("Size", 0))) for i in page.get("Contents", ())]
        return now, items
