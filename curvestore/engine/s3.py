"""The engine on S3 (any S3-compatible service): ``s3://bucket/prefix?endpoint_url=...``.

Commits are conditional PUTs (``If-None-Match: *`` on the next log entry), so any number of
writers on any number of machines commit safely without a lock service; a daily append of a
fleet is one segment PUT and one entry PUT. Credentials come from boto3's chain, never from
the URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from curvestore.engine.backend import EngineBackend
from curvestore.errors import ConfigurationError

if TYPE_CHECKING:
    from curvestore.core.url import StoreURL
    from curvestore.objects.base import ObjectStore

__all__ = ["EngineS3Backend"]

_OPTIONS = frozenset({"endpoint_url", "region", "profile", "max_workers", "list_page_size"})


class EngineS3Backend(EngineBackend):
    """:class:`EngineBackend` over :class:`~curvestore.objects.s3.S3ObjectStore`."""

    schemes: ClassVar[tuple[str, ...]] = ("s3",)

    @classmethod
    def check_available(cls) -> None:
        from curvestore.backends.s3._client import load_boto3

        load_boto3()

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> EngineS3Backend:
        url.reject_unknown_options(_OPTIONS)
        if url.username is not None or url.password is not None or "@" in url.netloc:
            raise ConfigurationError(
                "s3:// URLs take no credentials: boto3 finds them (environment, AWS_PROFILE or "
                "profile=, instance role)")
        if not url.netloc:
            raise ConfigurationError("an s3:// URL needs a bucket: s3://bucket/prefix")
        options = url.options
        try:
            numbers = {name: int(options[name]) for name in ("max_workers", "list_page_size")
                       if name in options}
        except ValueError:
            raise ConfigurationError("max_workers and list_page_size must be integers") from None
        bucket, prefix = url.netloc, url.path.strip("/")

        def objects() -> ObjectStore:
            from curvestore.objects.s3 import S3ObjectStore

            return S3ObjectStore(bucket, prefix, endpoint_url=options.get("endpoint_url") or None,
                                 region=options.get("region") or None,
                                 profile=options.get("profile") or None, **numbers)

        return cls(objects, f"s3://{bucket}/{prefix}", read_only=read_only)
