"""The change feed of the S3 backend: batches of the change log, in the order their claims
landed; pages end on batch boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvestore.backends.s3._base import S3BackendBase
from curvestore.core.backend import bound_schema
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage

__all__ = ["S3Feed"]


class S3Feed(S3BackendBase):
    """The change feed, read from the change log (:mod:`._log`)."""

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Pages end on batch boundaries (a page holds more than ``limit`` changes only when
        one committed batch does)."""
        schema = bound_schema(self.schema)
        store_id = str(self._manifest.get("store_id", ""))
        position = 0
        if cursor is not None:
            position = decode_cursor(cursor, store_id, 1)[0]
            if not self.log.claimed(position):
                raise unknown_position(cursor)
        items: list[Change] = []
        window = max(4, min(self.max_workers, limit + 1))
        batches = self.log.after(position, self.pool, window)
        for seq, _txid, batch in batches:
            chosen = [c for c in batch if schema.matches(c.key, where)]
            if items and len(items) + len(chosen) > limit:
                return ChangePage(items, encode_cursor(store_id, (position,)), True)
            items += chosen
            position = seq
            if len(items) >= limit:
                more = next(batches, None) is not None
                return ChangePage(items, encode_cursor(store_id, (position,)), more)
        return ChangePage(items, encode_cursor(store_id, (position,)), False)
