"""The change feed of the S3 backend: one batch per committed log entry, in the order their
claims landed; a batch's position is its log sequence number (the core cuts pages between
batches, so a page holds more than ``limit`` changes only when one committed batch does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from curvestore.backends.s3._base import S3BackendBase
from curvestore.core.cursor import unknown_position
from curvestore.core.records import FeedBatch, Position

__all__ = ["S3Feed"]


class S3Feed(S3BackendBase):
    """The change feed, read from the change log (:mod:`._log`)."""

    feed_arity = 1

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        """Log entries are fetched ``limit + 1`` at a time (at least 4, at most
        ``max_workers``), concurrently, and yielded one by one: a page of ``limit`` changes
        also learns whether another batch follows without a second round of requests.
        ``where`` is left to the core: a log entry's series are only known once it is read."""
        position = 0 if after is None else after[0]
        if not self.log.claimed(position):  # the log has no gaps: only beyond the end
            raise unknown_position()
        window = max(4, min(self.max_workers, limit + 1))
        for seq, _txid, changes in self.log.after(position, self.pool, window):
            yield FeedBatch((seq,), tuple(changes))
