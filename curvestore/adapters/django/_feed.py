"""The change feed of the Django backend: the rows of :class:`~curvestore.adapters.django.
bookkeeping.ChunkChange` of the store, in version order (versions follow commit order: they
are taken under the manifest row's lock).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from curvestore.adapters.django._base import DjangoBackendBase
from curvestore.adapters.django.bookkeeping import ChunkChange
from curvestore.core.backend import bound_schema
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage

__all__ = ["DjangoFeed"]


class DjangoFeed(DjangoBackendBase):
    """The change feed: the store's rows of the change log, by version."""

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        manifest = self.read_manifest() or {}
        store_id = str(manifest.get("store_id", ""))
        position = 0 if cursor is None else decode_cursor(cursor, store_id, 1)[0]
        schema = bound_schema(self.schema)
        log = ChunkChange.objects.using(self.using).filter(store=self.table).order_by("version")
        if position and not log.filter(version=position).exists():
            raise unknown_position(str(cursor))  # a cursor names a logged version
        batch = max(limit, 500)
        items: list[Change] = []
        last, has_more = position, False
        while True:
            rows = list(log.filter(version__gt=last)[:batch].values_list(
                "version", "key", "chunk", "deleted"))
            for version, key_json, chunk, deleted in rows:
                if len(items) >= limit:
                    has_more = True
                    break
                last = version
                key = tuple(json.loads(key_json))
                if schema.matches(key, where):
                    items.append(Change(key, chunk, version, deleted))
            if has_more or len(rows) < batch:
                break
        return ChangePage(items, encode_cursor(store_id, (last,)), has_more)
