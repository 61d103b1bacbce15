"""URLconf of the sync tests: the sync ViewSet of ``SyncStore``, with curvestore's cursor
endpoints (``ts/sync/``), without them (``ts/holc/``, a holcstore-like server), and throttled
once every :data:`THROTTLE` requests (``ts/throttled/``)."""

from __future__ import annotations

from typing import Any

from rest_framework.routers import DefaultRouter
from rest_framework.throttling import BaseThrottle
from testapp.models import SyncStore

from curvestore.adapters.django.sync_views import TimeseriesChunkStoreSyncViewSet

#: Requests answered by ``ts/throttled/`` so far; every other one gets a 429.
THROTTLE = {"seen": 0, "refused": 0}


class EveryOtherThrottle(BaseThrottle):
    """Refuses one request in two with ``Retry-After: 1``."""

    def allow_request(self, request: Any, view: Any) -> bool:
        THROTTLE["seen"] += 1
        if THROTTLE["seen"] % 2:
            THROTTLE["refused"] += 1
            return False
        return True

    def wait(self) -> float:
        return 1.0


_OPEN: dict[str, Any] = {"authentication_classes": [], "permission_classes": []}

router = DefaultRouter()
router.register("ts/sync", TimeseriesChunkStoreSyncViewSet.as_factory(SyncStore, **_OPEN),
                basename="ts-sync")
router.register("ts/holc", TimeseriesChunkStoreSyncViewSet.as_factory(
    SyncStore, manifest=None, changes=None, chunks=None, **_OPEN), basename="ts-holc")
router.register("ts/throttled", TimeseriesChunkStoreSyncViewSet.as_factory(
    SyncStore, throttle_classes=[EveryOtherThrottle], **_OPEN), basename="ts-throttled")

urlpatterns = router.urls
