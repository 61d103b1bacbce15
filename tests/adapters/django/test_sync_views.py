"""Client/server sync of chunk stores over a real HTTP socket (waitress in a thread).

The server is ``SyncStore`` behind the DRF ViewSet (``urls.py``); the client pulls into
``FramedStore`` (same keys and grid, curvestore's blob framing), whose sync flag is switched
on for the test: two stores in the database of the run, and in the PostgreSQL run also two
stores in two databases (SQLite and PostgreSQL, both ways).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, ClassVar

import lz4.frame
import numpy as np
import pandas as pd
import pytest
import requests
import testdb

pytest.importorskip("rest_framework")
pytest.importorskip("waitress")

from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from testapp.models import FramedStore, SyncStore

from curvestore.adapters.django import sync_client
from curvestore.adapters.django.sync_client import TimeseriesChunkStoreSyncClient
from curvestore.adapters.http.client import RemoteError
from curvestore.adapters.http.serving import serve_in_thread
from curvestore.errors import InvalidKeyError

TEST_SETTINGS = {"ROOT_URLCONF": "urls", "ALLOWED_HOSTS": ["127.0.0.1", "testserver"],
                 "REST_FRAMEWORK": {"UNAUTHENTICATED_USER": None}}
HOLC_UPDATE_FIELDS = {"attrs", "chunk_index", "dtype", "start_ts", "updated_at", "is_deleted"}


@pytest.fixture
def server() -> Iterator[str]:
    with override_settings(**TEST_SETTINGS), serve_in_thread(get_wsgi_application()) as url:
        yield url


@pytest.fixture
def replica() -> Iterator[type]:
    type.__setattr__(FramedStore, "ALLOW_CLIENT_SERVER_SYNC", True)
    try:
        yield FramedStore
    finally:
        type.__delattr__(FramedStore, "ALLOW_CLIENT_SERVER_SYNC")


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(sync_client, "_sleep", waits.append)
    return waits


def series(start: str, periods: int, offset: float = 0.0) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq="1h", tz="Europe/Paris")
    return pd.Series(np.arange(periods, dtype=float) + offset, index=index)


def fill_server() -> dict[tuple[int, str], pd.Series]:
    data = {(1, "a"): series("2024-01-15", 24 * 60), (2, "b"): series("2024-03-01", 100, 7.0),
            (3, "a"): series("2023-12-31", 48, 3.0)}
    for (version, kind), s in data.items():
        SyncStore.set_ts({"version": version, "kind": kind}, s, replace=True)
    return data


def assert_same(model: type, data: dict[tuple[int, str], pd.Series]) -> None:
    for (version, kind), s in data.items():
        got = model.get_ts({"version": version, "kind": kind})
        pd.testing.assert_series_equal(got, s, check_freq=False, check_names=False,
                                       check_index_type=False)


@pytest.fixture(params=["sqlite-to-postgresql", "postgresql-to-sqlite"])
def across_databases(request: pytest.FixtureRequest, database: str) -> Iterator[str]:
    """The server's store on one database, the replica on the other."""
    if database != "postgresql":
        pytest.skip("needs both databases: runs in the PostgreSQL run, while its server is up")
    source = request.param.split("-to-")[0]
    call_command("migrate", database="sqlite", verbosity=0, interactive=False)
    testdb.clear_tables("sqlite")
    moved = SyncStore if source == "sqlite" else FramedStore
    testdb.pinned[moved._meta.label_lower] = "sqlite"
    try:
        yield request.param
    finally:
        testdb.pinned.clear()


def test_end_to_end_cursor_sync_then_incremental(server: str, replica: type) -> None:
    sync_round_trip(server, replica)


def test_end_to_end_sync_across_databases(across_databases: str, server: str,
                                          replica: type) -> None:
    from django.db import router

    source, target = across_databases.split("-to-")
    assert (router.db_for_write(SyncStore), router.db_for_write(replica)) == (source, target)
    sync_round_trip(server, replica)
    assert SyncStore.objects.using(target).count() == replica.objects.using(source).count() == 0


def sync_round_trip(server: str, replica: type) -> None:
    """A full pull, then an update and a deletion pulled incrementally."""
    data = fill_server()
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/sync/", store_model=replica)
    assert client.protocol() == "cursor"
    fetched, deleted = client.pull(batch=2, page_size=3)
    assert (fetched, deleted) == (SyncStore.objects.count(), 0)
    assert_same(replica, data)
    assert client.pull() == (0, 0)  # nothing new: nothing copied

    update = series("2024-02-20", 24, 100.0)
    SyncStore.set_ts({"version": 1, "kind": "a"}, update, update=True)
    SyncStore.objects.filter(version=2).delete(keep_tracking=True)
    fetched, deleted = client.pull()
    assert (fetched, deleted) == (1, 1)
    assert replica.get_ts({"version": 2, "kind": "b"}) is None
    data[(1, "a")] = update.combine_first(data[(1, "a")])
    del data[(2, "b")]
    assert_same(replica, data)
    assert client.pull() == (0, 0)


def test_filtered_pull_and_patched_requests_get(server: str, replica: type,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    data = fill_server()
    calls: list[str] = []
    real_get = requests.get

    def spy(url: str, **kwargs: Any) -> requests.Response:
        calls.append(url)
        return real_get(url, **kwargs)

    monkeypatch.setattr("curvestore.adapters.django.sync_client.requests.get", spy)
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/sync", store_model=replica)
    fetched, _ = client.pull(filters={"kind": "a"})
    assert fetched == SyncStore.objects.filter(kind="a").count()
    assert replica.get_ts({"version": 2, "kind": "b"}) is None
    assert_same(replica, {k: v for k, v in data.items() if k[1] == "a"})
    assert calls and all(u.startswith(server) for u in calls)
    with pytest.raises(InvalidKeyError):
        client.pull(filters={"nope": 1})


def test_pull_resumes_after_a_crash(server: str, replica: type,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = fill_server()
    total = SyncStore.objects.count()
    real_get = requests.get
    chunk_calls = {"n": 0}

    def flaky(url: str, **kwargs: Any) -> requests.Response:
        if "/chunks/" in url:
            chunk_calls["n"] += 1
            if chunk_calls["n"] == 2:
                raise requests.ConnectionError("network down")
        return real_get(url, **kwargs)

    monkeypatch.setattr(sync_client.requests, "get", flaky)
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/sync/", store_model=replica,
                                            retry_max_tries=1)
    with pytest.raises(RemoteError):
        client.pull(batch=10, page_size=1)
    assert replica.objects.count() == 1  # the first page was committed with its cursor
    fetched, deleted = client.pull(batch=10, page_size=1)
    assert (fetched + 1, deleted) == (total, 0)
    assert_same(replica, data)


def test_429_retry_after_is_honoured(server: str, replica: type, no_sleep: list[float]) -> None:
    from urls import THROTTLE

    THROTTLE.update(seen=0, refused=0)
    data = fill_server()
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/throttled/",
                                            store_model=replica)
    fetched, _ = client.pull()
    assert fetched == SyncStore.objects.count()
    assert_same(replica, data)
    assert THROTTLE["refused"] >= 3
    assert no_sleep and all(w == 1.0 for w in no_sleep)
    assert len(no_sleep) == THROTTLE["refused"]


def test_429_gives_up_after_retry_max_tries(server: str, replica: type,
                                            monkeypatch: pytest.MonkeyPatch,
                                            no_sleep: list[float]) -> None:
    class TooMany:
        status_code = 429
        headers: ClassVar[dict[str, str]] = {"Retry-After": "2"}
        text = "slow down"

    monkeypatch.setattr(sync_client.requests, "get", lambda url, **kw: TooMany())
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/sync/", store_model=replica,
                                            retry_max_tries=3)
    with pytest.raises(RemoteError) as info:
        client.pull()
    assert info.value.status == 429
    assert no_sleep == [2.0, 2.0]


def test_holcstore_fallback(server: str, replica: type) -> None:
    data = fill_server()
    client = TimeseriesChunkStoreSyncClient(endpoint=f"{server}/ts/holc/", store_model=replica)
    assert client.protocol() == "holcstore"
    fetched, deleted = client.pull(batch=2, page_size=2)
    assert (fetched, deleted) == (SyncStore.objects.count(), 0)
    assert_same(replica, data)
    SyncStore.objects.filter(version=3).delete(keep_tracking=True)
    fetched, deleted = client.pull()
    assert deleted == SyncStore.objects.filter(version=3).count() > 0
    assert replica.get_ts({"version": 3, "kind": "a"}) is None


def test_unknown_filters_are_refused(server: str) -> None:
    fill_server()
    base = f"{server}/ts/sync"
    since = "2000-01-01T00:00:00+00:00"
    for url, params in [
        (f"{base}/updates/", {"since": since, "version__gte": 1}),
        (f"{base}/updates/", {"since": since, "id": 1}),
        (f"{base}/updates/", {"since": since, "version": "x"}),
        (f"{base}/updates/", {"since": since, "version": str(2**63)}),  # beyond 64 bits
        (f"{base}/updates/", {"since": since, "kind": "a\x00"}),  # a NUL cannot be stored
        (f"{base}/updates/", {}),
        (f"{base}/changes/", {"version__in": "1,2"}),
        (f"{base}/changes/", {"cursor": "garbage"}),
    ]:
        response = requests.get(url, params=params, timeout=10)
        assert response.status_code == 400, (url, params, response.text)
        assert "error" in response.json()
        if "version" in params or "kind" in params:
            assert response.json()["type"] == "InvalidKeyError", response.text
    response = requests.get(f"{base}/pack/", json=[{"attrs": {"version": 1},
                                                    "chunk_index": 1}], timeout=10)
    assert response.status_code == 400
    ok = requests.get(f"{base}/updates/", params={"since": since, "version": 1}, timeout=10)
    assert ok.status_code == 200
    assert {r["attrs"]["version"] for r in ok.json()["results"]} == {1}


def test_holcstore_shapes_of_updates_and_pack(server: str) -> None:
    fill_server()
    base = f"{server}/ts/sync"
    page = requests.get(f"{base}/updates/", params={"since": "2000-01-01", "limit": 2},
                        timeout=10).json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == SyncStore.objects.count()
    assert page["previous"] is None and "offset=2" in page["next"]
    first = page["results"][0]
    assert set(first) == HOLC_UPDATE_FIELDS
    assert set(first["attrs"]) == {"version", "kind"}
    assert isinstance(first["chunk_index"], int) and first["is_deleted"] is False
    pd.Timestamp(first["updated_at"])  # ISO strings
    # holcstore's client sends the update dicts themselves as the pack spec
    pack = requests.get(f"{base}/pack/", json=page["results"], timeout=10).json()
    assert len(pack) == 2
    for item, update in zip(pack, page["results"], strict=True):
        assert set(item) == {"blob", "attrs", "meta"}
        assert item["attrs"] == {**update["attrs"], "chunk_index": update["chunk_index"]}
        assert set(item["meta"]) == {"dtype", "start_ts", "is_deleted", "updated_at"}
        values = np.frombuffer(lz4.frame.decompress(base64.b64decode(item["blob"])),
                               dtype=item["meta"]["dtype"])
        assert np.isfinite(values).any()


def test_non_sync_model_refused() -> None:
    from django.test import RequestFactory
    from testapp.models import HolcStoreYear

    from curvestore.adapters.django.sync_views import TimeseriesChunkStoreSyncViewSet

    with override_settings(**TEST_SETTINGS):
        view = TimeseriesChunkStoreSyncViewSet.as_factory(
            HolcStoreYear, authentication_classes=[], permission_classes=[]
        ).as_view({"get": "updates"})
        response = view(RequestFactory().get("/x/updates/", {"since": "2000-01-01"}))
        assert response.status_code == 403
    with pytest.raises(TypeError):
        TimeseriesChunkStoreSyncViewSet.as_factory(dict)
    with pytest.raises(ValueError, match="ALLOW_CLIENT_SERVER_SYNC"):
        TimeseriesChunkStoreSyncClient(endpoint="http://x", store_model=HolcStoreYear)
