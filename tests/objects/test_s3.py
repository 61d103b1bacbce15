"""The S3 object store against a real S3 API (moto in server mode, over HTTP): the shipped
conformance suite plus URL parsing and what only S3 must prove."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from curvestore.errors import ConfigurationError
from curvestore.objects import ObjectStore, S3ObjectStore
from curvestore.testing.objects import ObjectStoreConformance
from curvestore.testing.s3_server import with_prefix


class TestS3Objects(ObjectStoreConformance):
    race_keys: ClassVar[int] = 15
    increments: ClassVar[int] = 8
    torn_rounds: ClassVar[int] = 30

    @pytest.fixture
    def object_store(self, s3_base_url: str) -> Iterator[ObjectStore]:
        with S3ObjectStore.from_url(with_prefix(s3_base_url)) as store:
            yield store


def test_small_listing_pages_and_pool(s3_base_url: str) -> None:
    """Listings spanning many requests keep order and resume points; bulk reads on a
    small pool keep the order of the request."""
    url = with_prefix(s3_base_url) + "&list_page_size=7&max_workers=3"
    with S3ObjectStore.from_url(url) as store:
        keys = [f"p/{i % 5}/{i:04d}" for i in range(60)]
        for key in keys:
            store.put(key, key.encode())
        assert [i.key for i in store.list("p/")] == sorted(keys)
        assert [i.key for i in store.list("p/", start_after="p/2/0031")] == [
            k for k in sorted(keys) if k > "p/2/0031"]
        assert store.get_many(keys) == [(k.encode(), info.version) for k, info in zip(
            keys, sorted(store.list("p/"), key=lambda i: keys.index(i.key)), strict=True)]


@pytest.mark.parametrize("url", [
    "file:///tmp/x",
    "s3://user:secret@bucket/p",
    "s3://bucket/p?colour=red",
    "s3://bucket/p?max_workers=many",
    "s3://bucket/p?list_page_size=5000",
    "s3:///p",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        S3ObjectStore.from_url(url)
    assert "secret" not in str(info.value)


def test_repr_hides_endpoint_credentials(s3_base_url: str) -> None:
    endpoint = s3_base_url.split("endpoint_url=")[1].split("&")[0]
    store = S3ObjectStore("bucket", "p", endpoint_url=endpoint.replace("http://",
                                                                       "http://me:hunter2@"))
    assert "hunter2" not in repr(store) and "me:" not in repr(store)
    assert repr(store) == f"S3ObjectStore(bucket='bucket', prefix='p', endpoint='{endpoint}')"
