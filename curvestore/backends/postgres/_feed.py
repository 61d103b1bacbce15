"""The change feed of the PostgreSQL backend: every committed change exactly once, ordered by
(writer's transaction id, sequence), never skipping a late commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from curvestore.backends.postgres._base import PgBackendBase
from curvestore.backends.postgres._connect import translated
from curvestore.core.cursor import unknown_position
from curvestore.core.records import Change, FeedBatch, Position

__all__ = ["PgFeed"]

_SEQ_MAX = 2**63 - 1


class PgFeed(PgBackendBase):
    """The change feed, read from the change table under the snapshot watermark."""

    feed_arity = 2  # (writer's transaction id, sequence)

    def feed(self, after: Position | None, where: Mapping[str, Any], limit: int
             ) -> Iterator[FeedBatch]:
        """One batch per change row after ``after``, ordered by (transaction id, sequence).

        A change row is returned only once its writer's transaction id is below the xmin of
        the reading statement's snapshot: every transaction older than that has finished, and
        every later one gets a larger id, so no row can ever appear at or before a position
        already returned. Changes of a transaction that is still open (or that started
        before one that is) wait until it ends; they are then returned in their place, never
        skipped. A batch's position is its row's (txid, seq); once the visible rows are
        exhausted the position moves to the watermark (xmin - 1, max), carried by the last
        row's batch or by an empty one, so filtered feeds do not re-scan what they passed.

        ``where`` is applied in SQL. Rows are read ``limit + 1`` at a time (a page and the
        core's look-ahead: one query per page), the next query only when asked for.
        """
        txid, seq = (0, 0) if after is None else after
        q = self.queries
        nk = q.nk
        first = True
        while True:
            query, params = q.feed(where, txid, seq, limit + 1)
            with self.pool.connection() as conn, translated(self.target, "reading changes"), \
                    conn.cursor(binary=True) as cur:
                cur.execute(query, params)
                rows = cur.fetchall()
            xmin = int(rows[0][0])
            if first and txid >= xmin:
                # every position issued stands below a snapshot's xmin, and xmin never goes back
                raise unknown_position()
            first = False
            rows = [r for r in rows if r[1] is not None]
            exhausted = len(rows) <= limit
            watermark = (xmin - 1, _SEQ_MAX)
            for i, r in enumerate(rows):
                change = Change(tuple(r[3:3 + nk]), r[3 + nk], r[4 + nk], r[5 + nk])
                txid, seq = r[1], r[2]
                last = exhausted and i == len(rows) - 1
                yield FeedBatch(watermark if last else (txid, seq), (change,))
            if exhausted:
                if not rows and watermark > (txid, seq):
                    yield FeedBatch(watermark)
                return
