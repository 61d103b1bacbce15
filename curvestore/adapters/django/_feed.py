"""The change feed of the Django backend: the rows of :class:`~curvestore.adapters.django.
bookkeeping.ChunkChange` of the store, in version order (versions follow commit order: they
are taken under the manifest row's lock). A change's position is its version, so a cursor
names a logged version (the same positions as before the core wrapped them in cursors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from curvestore.adapters.django._base import DjangoBackendBase
from curvestore.adapters.django.bookkeeping import ChunkChange
from curvestore.core.cursor import unknown_position
from curvestore.core.records import Change, FeedBatch, Position

__all__ = ["DjangoFeed"]

#: Fewest change rows fetched per query (a page of ``limit`` fetches ``limit + 1``, the one
#: more telling whether more follow).
_MIN_FETCH = 500


class DjangoFeed(DjangoBackendBase):
    """The change feed: the store's rows of the change log, by version, one batch each (the
    core filters them by key)."""

    feed_arity = 1

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        log = ChunkChange.objects.using(self.using).filter(store=self.table).order_by("version")
        last = 0 if after is None else after[0]
        if last:
            found = log.filter(version__gte=last).values_list("version", flat=True).first()
            if found != last:  # not a logged version: forged, or the log was restored
                raise unknown_position("beyond the end of" if found is None
                                       else "between two entries of")
        fetch = max(limit + 1, _MIN_FETCH)
        while True:  # a query at a time: the core stops iterating once its page is full
            rows = list(log.filter(version__gt=last)[:fetch].values_list(
                "version", "key", "chunk", "deleted"))
            for version, key_json, chunk, deleted in rows:
                last = version
                yield FeedBatch((version,), (Change(tuple(json.loads(key_json)), chunk, version,
                                                    deleted),))
            if len(rows) < fetch:
                return
