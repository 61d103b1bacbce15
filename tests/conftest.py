"""Session services shared by the test directories: one S3 API server (moto on 127.0.0.1
unless ``CURVESTORE_TEST_S3_URL`` is set) for the backend and object-store tests alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curvestore.testing.s3_server import S3Unavailable, s3_server
from curvestore.testing.services import service_unavailable


@pytest.fixture(scope="session")
def s3_base_url() -> Iterator[str]:
    """``s3://bucket?endpoint_url=...&region=...`` of the session's S3 service; tests add a
    prefix of their own (:func:`curvestore.testing.s3_server.with_prefix`)."""
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        service_unavailable("S3", f'boto3 is not installed ({exc}); '
                                  'pip install "curvestore[s3]"')
    try:
        with s3_server() as url:
            yield url
    except (S3Unavailable, OSError) as exc:
        service_unavailable("S3", str(exc))
