"""A session S3 service for the object-store tests (moto on 127.0.0.1 unless
``CURVESTORE_TEST_S3_URL`` is set); skipped when unavailable, a failure under ``CI=true``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curvestore.testing.s3_server import S3Unavailable, in_ci, s3_server


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"an S3 server is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"S3 not available: {reason}")


@pytest.fixture(scope="session")
def objects_s3_url() -> Iterator[str]:
    """``s3://bucket?endpoint_url=...&region=...`` of the session's S3 service."""
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        _unavailable(f'boto3 is not installed ({exc}); pip install "curvestore[s3]"')
    server = s3_server()
    try:
        url = server.__enter__()
    except (S3Unavailable, OSError) as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)
