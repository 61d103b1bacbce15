"""What a test does when a service it needs (PostgreSQL, an S3 API) is missing.

Outside CI the test is skipped with the reason, so a laptop without PostgreSQL can still run
the rest; under CI (``CI=true``) it fails, because CI must never pass without having run the
tests of every backend. The server helpers (:mod:`curvestore.testing.postgres_server`,
:mod:`curvestore.testing.s3_server`) raise; fixtures call :func:`service_unavailable`.
"""

from __future__ import annotations

import os
from typing import NoReturn

__all__ = ["in_ci", "service_unavailable"]


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where a missing server is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(service: str, reason: str) -> NoReturn:
    """Skip the calling test because ``service`` is unavailable, or fail it under CI."""
    import pytest  # here, not at the top: the server helpers also serve the benchmarks

    if in_ci():
        pytest.fail(f"{service} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{service} not available: {reason}")
