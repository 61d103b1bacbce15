"""``TimeseriesChunkStoreSyncViewSet``: holcstore's sync ViewSet (needs Django REST framework).

Register one per model with a DRF router::

    YearSync = TimeseriesChunkStoreSyncViewSet.as_factory(
        MyStore, permission_classes=[IsAuthenticated], throttle_classes=[])
    router.register("ts/year", YearSync, basename="ts-year")

Endpoints (all ``GET``, under the registered prefix):

``updates/?since=ISO&limit=N&offset=M&<key>=<value>...``
    holcstore's feed, unchanged: a limit/offset page ``{"count", "next", "previous",
    "results": [{"attrs", "chunk_index", "dtype", "start_ts", "updated_at", "is_deleted"}]}``
    of the chunks with ``updated_at >= since``. Kept for holcstore clients; it can miss a chunk
    whose transaction commits after a later one (its ``updated_at`` is then behind the
    client's ``since``).
``pack/`` with a JSON body ``[{"attrs": {...}, "chunk_index": i}, ...]``
    holcstore's export: ``[{"blob": base64, "attrs": {...}, "meta": {...}}]``.
``manifest/``, ``changes/?_cursor=C&_limit=N&<key>=<value>...``, ``chunks/`` (JSON body
``{"refs": [[key_values, chunk], ...]}``)
    curvestore's gap-free protocol, exactly the answers of
    :mod:`curvestore.adapters.http.server` (an opaque cursor over the commit-ordered change
    feed; chunks as a binary stream in :mod:`curvestore.adapters.http.wire` framing).
    :class:`~curvestore.adapters.django.sync_client.TimeseriesChunkStoreSyncClient` discovers
    them through ``manifest/``.

Query parameters are checked against the model's key fields: any other name (an ORM lookup
such as ``version__gte`` included) or a value of the wrong type is answered with 400. Every
endpoint answers 403 for a model without ``ALLOW_CLIENT_SERVER_SYNC`` (holcstore raised a
500). DRF's authentication, permissions and throttling (429 with ``Retry-After``) apply.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from django.http import StreamingHttpResponse
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from curvestore.adapters.django.options import key_schema
from curvestore.adapters.http.server import HTTPProblem, SyncApp
from curvestore.adapters.http.wire import CHUNKS_CONTENT_TYPE
from curvestore.errors import InvalidKeyError, SyncError

__all__ = ["ChunkIteratorPagination", "TimeseriesChunkStoreSyncViewSet", "key_filters"]

logger = logging.getLogger(__name__)


class ChunkIteratorPagination(LimitOffsetPagination):
    """holcstore's limit/offset pagination, with a default and a cap on ``limit``."""

    default_limit = 200
    max_limit = 5000


def key_filters(model: Any, params: Mapping[str, str], reserved: set[str]) -> dict[str, Any]:
    """The key filter named by query ``params`` (``reserved`` names left out), values converted
    to the key fields' types; ``ValidationError`` (400) for any other name or a bad value."""
    given = {k: v for k, v in params.items() if k not in reserved}
    try:
        return key_schema(model).filter_from_text(given, others=sorted(reserved))
    except InvalidKeyError as exc:
        raise ValidationError({"error": str(exc), "type": type(exc).__name__}) from None


def _problem(status: int, message: str, kind: str,
             headers: Mapping[str, str] | None = None) -> Response:
    return Response({"error": message, "type": kind}, status=status, headers=dict(headers or {}))


class TimeseriesChunkStoreSyncViewSet(viewsets.GenericViewSet):
    """Server side of the client/server sync of one ``TimeseriesChunkStore`` model."""

    store_model: ClassVar[Any] = None
    pagination_class = ChunkIteratorPagination
    #: Caps of the cursor protocol: changes per page / refs per request, bytes per response.
    sync_max_limit: ClassVar[int] = 5000
    sync_max_batch_bytes: ClassVar[int] = 64 << 20

    # -- plumbing --------------------------------------------------------------------------
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        model = self.store_model
        if model is None or not model.ALLOW_CLIENT_SERVER_SYNC:
            name = getattr(model, "__name__", None)
            raise PermissionDenied(f"model {name} does not allow client/server sync "
                                   "(ALLOW_CLIENT_SERVER_SYNC = False)")

    def _app(self) -> SyncApp:
        return SyncApp(self.store_model._cs_store(), max_limit=self.sync_max_limit,
                       max_batch_bytes=self.sync_max_batch_bytes)

    def _user(self) -> Any:
        return getattr(self.request, "user", None)

    # -- holcstore's protocol --------------------------------------------------------------
    @action(detail=False, methods=["get"])
    def updates(self, request: Request) -> Response:
        """holcstore's ``updates/``: chunks changed since ``since``, paginated."""
        model = self.store_model
        raw = request.query_params.get("since")
        try:
            since = pd.Timestamp(raw)
            if pd.isna(since):
                raise ValueError
        except (TypeError, ValueError):
            raise ValidationError({"error": f"'since' must be an ISO timestamp, got {raw!r}",
                                   "type": "ValueError"}) from None
        if since.tzinfo is None:
            since = since.tz_localize("UTC")
        filters = key_filters(model, request.query_params, {"since", "limit", "offset"})
        logger.info("Sync updates for model %s required by user %s since %s (filters %s)",
                    model.__name__, self._user(), since, filters)
        page = self.paginate_queryset(model.updates_queryset(since, filters)) or []
        keys = model.get_model_keys()
        data = [{"attrs": {k: row[k] for k in keys}, "chunk_index": row["chunk_index"],
                 "dtype": row["dtype"], "start_ts": row["start_ts"],
                 "updated_at": row["updated_at"], "is_deleted": row["is_deleted"]}
                for row in page]
        return self.get_paginated_response(data)

    @action(detail=False, methods=["get"])
    def pack(self, request: Request) -> Response:
        """holcstore's ``pack/``: the stored blobs (base64) of the chunks in the JSON body."""
        model = self.store_model
        spec = request.data
        keys = model.get_model_keys()
        if not isinstance(spec, list) or not all(
                isinstance(s, dict) and isinstance(s.get("attrs"), dict)
                and set(s["attrs"]) == keys and isinstance(s.get("chunk_index"), int)
                for s in spec):
            raise ValidationError({"error": "expected a JSON body [{'attrs': {<every key>}, "
                                            "'chunk_index': int}, ...]", "type": "ValueError"})
        logger.info("Sync pack for model %s required by user %s (%d pieces)", model.__name__,
                    self._user(), len(spec))
        for item in spec:
            key_filters(model, {k: str(v) for k, v in item["attrs"].items()}, set())
        try:
            chunks = model.export_chunks(spec)
        except model.DoesNotExist:
            raise NotFound({"error": "a requested chunk does not exist",
                            "type": "DoesNotExist"}) from None
        payload = [{"blob": base64.b64encode(blob).decode(), "attrs": attrs, "meta": meta}
                   for blob, attrs, meta in chunks]
        return Response(payload, content_type="application/json")

    # -- curvestore's protocol -------------------------------------------------------------
    def _answer(self, handler: Any, environ: dict[str, Any]) -> Any:
        try:
            return handler(environ)
        except HTTPProblem as exc:
            return _problem(exc.status, str(exc), exc.kind, dict(exc.headers))
        except (SyncError, InvalidKeyError) as exc:
            return _problem(400, str(exc), type(exc).__name__)

    @action(detail=False, methods=["get"])
    def manifest(self, request: Request) -> Response:
        """The store's manifest and the protocol limits (how clients discover the cursor
        protocol)."""
        result = self._answer(self._app()._manifest, request.META)
        return result if isinstance(result, Response) else Response(result)

    @action(detail=False, methods=["get"])
    def changes(self, request: Request) -> Response:
        """A page of the commit-ordered change feed after the opaque ``cursor``."""
        result = self._answer(self._app()._changes, request.META)
        return result if isinstance(result, Response) else Response(result)

    @action(detail=False, methods=["get", "post"])
    def chunks(self, request: Request) -> Any:
        """The current records of the refs in the JSON body, as a binary chunk stream."""
        raw = request._request.body
        environ = {**request.META, "wsgi.input": io.BytesIO(raw),
                   "CONTENT_LENGTH": str(len(raw))}
        result = self._answer(self._app()._chunks, environ)
        if isinstance(result, Response):
            return result
        response = StreamingHttpResponse(result, content_type=CHUNKS_CONTENT_TYPE)
        response["Cache-Control"] = "no-store"
        return response

    # -- factory ---------------------------------------------------------------------------
    @classmethod
    def as_factory(cls, model: Any, **extra_attrs: Any) -> type[TimeseriesChunkStoreSyncViewSet]:
        """A ViewSet subclass bound to ``model``, with DRF attributes ``extra_attrs``
        (``permission_classes``, ``throttle_classes``, ...) set on it."""
        if not hasattr(model, "updates_queryset") or not hasattr(model, "_cs_store"):
            raise TypeError("model must inherit curvestore's TimeseriesChunkStore")
        attrs = {"store_model": model, **extra_attrs}
        return type(f"{model.__name__}SyncViewSet", (cls,), attrs)
