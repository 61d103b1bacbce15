"""Reads and scans of the Django backend: through the ORM, or on PostgreSQL through the
statements of :mod:`._postgres`; holcstore rows are decoded here (see
:class:`~curvestore.adapters.django._base.DjangoBackendBase`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from typing import Any, TypeVar

import numpy as np
from django.db import models

from curvestore.adapters.django import compat
from curvestore.adapters.django._base import FIELDS, DjangoBackendBase
from curvestore.adapters.django.rows import to_ns
from curvestore.core import chunks as _chunks
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

__all__ = ["DjangoReads"]

T = TypeVar("T")


class DjangoReads(DjangoBackendBase):
    """Reads: one series, streaming scans by key, decoded pieces for the model API and
    the chunk spans of each series."""

    def _rows(self, key: SeriesKey, lo: int | None, hi: int | None) -> list[tuple]:
        """Live rows of one series, ``FIELDS`` by chunk."""
        if self._pg is not None:
            return self._pg.read(key, lo, hi)
        qs = self._range(self._qs().filter(**self.key_dict(key), is_deleted=False), lo, hi)
        return list(qs.order_by("chunk_index").values_list(*FIELDS))

    def read_chunks(self, key: SeriesKey, lo: int | None = None, hi: int | None = None
                    ) -> list[ChunkRecord]:
        out = [self._record(key, *row) for row in self._rows(key, lo, hi)]
        return [r for r in out if r is not None]

    def read_pieces(self, key: SeriesKey, lo: int | None = None, hi: int | None = None, *,
                    first: int | None = None, last: int | None = None
                    ) -> list[_chunks.Piece]:
        """What ``read_chunks`` + the core's decode give, without turning holcstore rows
        into checksummed records first (the adapter's ``get_ts``). A holcstore row is a
        whole chunk, so ``first`` and ``last`` skip nothing."""
        return self._pieces(key, self._rows(key, lo, hi))

    def _pieces(self, key: SeriesKey, rows: Iterable[tuple]) -> list[_chunks.Piece]:
        rows = list(rows)
        whole = self._whole_periods(rows)
        if whole is not None:
            return [whole]
        out = [self._piece(key, *row[:4]) for row in rows]
        return [p for p in out if p is not None]

    def _whole_periods(self, rows: list[tuple]) -> _chunks.Piece | None:
        """The common case in one piece: holcstore rows of consecutive chunks, each the
        float64 buffer of its whole period, the first and last with a value. The piece then
        spans several periods (the grid is contiguous), which assembling handles; this saves
        the per-chunk work of ``_piece``. None when any row is otherwise."""
        if len(rows) < 2:
            return None
        grid = self.grid
        first = rows[0][0]
        raw = []
        for i, (chunk, start_ts, dtype, data, *_rest) in enumerate(rows):
            if (chunk != first + i or dtype != "float64" or compat.is_framed(data)
                    or to_ns(start_ts) != grid.period_start_ns(chunk)):
                return None
            values = compat.holc_raw(data)
            if len(values) != grid.period(chunk)[1] * 8:
                return None
            raw.append(values)
        # writable, so the result is assembled from it without a copy
        joined = np.frombuffer(bytearray().join(raw), dtype=np.float64)
        head, tail = len(raw[0]) // 8, len(raw[-1]) // 8
        if np.isnan(joined[:head]).all() or np.isnan(joined[-tail:]).all():
            return None  # an empty edge chunk is skipped: let _piece say which
        return _chunks.Piece(first, 0, joined)

    def _scan(self, where: Mapping[str, Any], lo: int | None, hi: int | None, chunk_size: int,
              decode: Callable[[SeriesKey, list[tuple]], list[T]]
              ) -> Iterator[tuple[SeriesKey, list[T]]]:
        """``(key, decode(key, rows))`` of the matching series with a value, by key; rows are
        ``FIELDS`` by chunk."""
        n = len(self.names)
        qs = self._range(self._qs().filter(**where, is_deleted=False), lo, hi)

        def series_of(rows: Iterable[tuple]) -> Iterator[tuple[SeriesKey, list[T]]]:
            for key, group in groupby(rows, lambda r: r[:n]):
                items = decode(key, [row[n:] for row in group])
                if items:
                    yield key, items

        if self._pg is not None:
            yield from self._pg.scan(qs, self.names, FIELDS, self._keys_q, chunk_size,
                                     lambda rows: list(series_of(rows)))
        else:
            yield from series_of(qs.order_by(*self.names, "chunk_index").values_list(
                *self.names, *FIELDS).iterator(chunk_size=chunk_size))

    def scan(self, where: Mapping[str, Any], lo: int | None = None, hi: int | None = None,
             chunk_size: int = 200) -> Iterator[tuple[SeriesKey, list[ChunkRecord]]]:
        """Stream matching series; ``where`` may also hold Django lookups (``n__in``...)."""
        def records(key: SeriesKey, rows: list[tuple]) -> list[ChunkRecord]:
            return [r for r in (self._record(key, *row) for row in rows) if r is not None]

        return self._scan(where, lo, hi, chunk_size, records)

    def scan_pieces(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None, chunk_size: int = 200, *,
                    first: int | None = None, last: int | None = None
                    ) -> Iterator[tuple[SeriesKey, list[_chunks.Piece]]]:
        """``scan`` as decoded pieces (see ``read_pieces``)."""
        return self._scan(where, lo, hi, chunk_size, self._pieces)

    def chunk_spans(self, where: Mapping[str, Any], lo: int | None = None,
                    hi: int | None = None) -> list[tuple[SeriesKey, int, int]]:
        """``(key, first chunk, last chunk)`` of the live rows of each matching series whose
        span meets chunks ``[lo, hi]``, by key in ``scan``'s order: one grouped query."""
        qs = self._qs().filter(**where, is_deleted=False)
        n = len(self.names)
        if not n:  # a model without key fields holds one series
            span = qs.aggregate(first=models.Min("chunk_index"), last=models.Max("chunk_index"))
            rows = [] if span["first"] is None else [(span["first"], span["last"])]
        else:
            grouped = qs.order_by().values(*self.names).annotate(
                cvs_first=models.Min("chunk_index"), cvs_last=models.Max("chunk_index"))
            if hi is not None:
                grouped = grouped.filter(cvs_first__lte=hi)
            if lo is not None:
                grouped = grouped.filter(cvs_last__gte=lo)
            rows = list(grouped.order_by(*self.names).values_list(
                *self.names, "cvs_first", "cvs_last"))
        return [(tuple(r[:n]), r[n], r[n + 1]) for r in rows
                if (hi is None or r[n] <= hi) and (lo is None or r[n + 1] >= lo)]

    def list_metas(self, where: Mapping[str, Any]) -> Iterator[tuple[SeriesKey, list[ChunkMeta]]]:
        for key, records in self.scan(where):
            yield key, [r.meta for r in records]

    def list_series(self, where: Mapping[str, Any]) -> Iterator[SeriesKey]:
        return (key for key, _ in self.list_metas(where))
