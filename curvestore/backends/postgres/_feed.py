"""The change feed of the PostgreSQL backend: every committed change exactly once, ordered by
(writer's transaction id, sequence), never skipping a late commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curvestore.backends.postgres._base import PgBackendBase
from curvestore.backends.postgres._connect import translated
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage

__all__ = ["PgFeed"]

_SEQ_MAX = 2**63 - 1


class PgFeed(PgBackendBase):
    """The change feed, read from the change table under the snapshot watermark."""

    def changes(self, cursor: str | None, where: Mapping[str, Any], limit: int) -> ChangePage:
        """Changes after ``cursor``, ordered by (transaction id, sequence).

        A change row is returned only once its writer's transaction id is below the xmin of
        the reading statement's snapshot: every transaction older than that has finished, and
        every later one gets a larger id, so no row can ever appear at or before a position
        already returned. Changes of a transaction that is still open (or that started
        before one that is) wait until it ends; they are then returned in their place, never
        skipped. The cursor is (txid, seq); a page that exhausts the visible rows advances it
        to the watermark, so filtered feeds do not re-scan what they already passed.
        ``has_more`` counts only changes below the watermark.
        """
        position = (0, 0) if cursor is None else decode_cursor(cursor, self.store_id, 2)
        txid, seq = position
        q = self.queries
        query, params = q.feed(where, txid, seq, limit + 1)
        with self.pool.connection() as conn, translated(self.target, "reading changes"), \
                conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        xmin = int(rows[0][0])
        if txid >= xmin:
            # every cursor issued stands below a snapshot's xmin, and xmin never goes back
            raise unknown_position(str(cursor))
        rows = [r for r in rows if r[1] is not None]
        nk = q.nk
        items = [Change(tuple(r[3:3 + nk]), r[3 + nk], r[4 + nk], r[5 + nk])
                 for r in rows[:limit]]
        if len(rows) > limit:
            last = rows[limit - 1]
            return ChangePage(items, encode_cursor(self.store_id, (last[1], last[2])), True)
        end = max((txid, seq), (xmin - 1, _SEQ_MAX))
        return ChangePage(items, encode_cursor(self.store_id, end), False)
