"""The engine on S3 (``s3://``): every shipped suite against a real S3 API (moto in server mode
on 127.0.0.1, over HTTP through boto3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from curvestore.testing import (
    BackendConformance,
    ReplicationConformance,
    StatefulConformance,
    StoreSemantics,
)
from curvestore.testing.s3_server import with_prefix


class TestEngineS3(StoreSemantics, BackendConformance, StatefulConformance,
                   ReplicationConformance):
    @pytest.fixture
    def backend_url_factory(self, s3_base_url: str) -> Callable[[], str]:
        return lambda: with_prefix(s3_base_url)
