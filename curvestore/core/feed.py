"""Change-feed pages: the backend yields batches of changes with positions; the core filters
them by key, cuts pages between batches and wraps positions in cursors naming the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvestore.core.backend import Backend
from curvestore.core.config import KeySchema
from curvestore.core.cursor import decode_cursor, encode_cursor, named
from curvestore.core.records import Change, ChangePage
from curvestore.errors import InvalidCursorError

__all__ = ["read_page"]


def read_page(backend: Backend, schema: KeySchema, store_id: str, cursor: str | None,
              where: Mapping[str, Any], limit: int) -> ChangePage:
    """About ``limit`` changes matching ``where`` after ``cursor``.

    A page holds more than ``limit`` changes only when one batch does, and never zero while
    matching changes remain. ``has_more`` tells whether another batch was already committed.
    """
    arity = backend.feed_arity
    after = None if cursor is None else decode_cursor(cursor, store_id, arity)
    if after is not None and not any(after):
        after = None  # all zeros: the start, where an empty feed's cursor stands
    position = after or (0,) * arity
    items: list[Change] = []
    more = False
    batches = backend.feed(after, where, limit)
    try:
        for batch in batches:
            chosen = list(batch.changes) if not where else \
                [c for c in batch.changes if schema.matches(c.key, where)]
            if items and len(items) + len(chosen) > limit:
                more = True
                break
            items += chosen
            position = batch.position
            if len(items) >= limit:
                more = any(b.changes for b in batches)
                break
    except InvalidCursorError as exc:
        if cursor is None or exc.cursor is not None:
            raise
        raise named(exc, cursor) from None
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return ChangePage(items, encode_cursor(store_id, position), more)
