"""Summaries of the PostgreSQL backend: what ``keys``, ``info`` and ``max_timestamp`` need of
every series, from one aggregate query over the chunk metas (payloads are never read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from curvestore.backends.postgres._base import PgBackendBase
from curvestore.backends.postgres._connect import translated
from curvestore.core.batch import SeriesSummary

__all__ = ["PgSummary"]


class PgSummary(PgBackendBase):
    """:meth:`summarise`: one ``GROUP BY`` of the live chunk rows, ordered by key."""

    def summarise(self, where: Mapping[str, Any]) -> SeriesSummary:
        q = self.queries
        query, params = q.batch.summary(where)
        with self.pool.connection() as conn, translated(self.target, "summarising"), \
                conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        nk = q.nk
        packed = np.frombuffer(b"".join([r[nk] for r in rows]), dtype=">i8").reshape(-1, 5)
        first, last, chunks, points, size = np.ascontiguousarray(packed.T, dtype=np.int64)
        low = np.int64(0xFFFFFFFF)
        return SeriesSummary([r[:nk] for r in rows], first >> 32, first & low, last >> 32,
                             last & low, chunks, points, size)
