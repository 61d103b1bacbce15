"""The state the parts of :class:`~curvestore.adapters.django.backend.DjangoModelBackend`
share: the model, its grid and querysets, and the table's row format (holcstore's blobs or
curvestore's frames; see :mod:`.compat`) as core records and pieces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from django.db import models, router

from curvestore.adapters.django import compat
from curvestore.adapters.django._postgres import pg_paths
from curvestore.adapters.django.options import key_schema, model_config
from curvestore.adapters.django.rows import Row, to_ns
from curvestore.core import chunks as _chunks
from curvestore.core.backend import Backend
from curvestore.core.grid import get_grid
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey, checksum
from curvestore.errors import IntegrityError
from curvestore.registry import get_codec

__all__ = ["FIELDS", "DjangoBackendBase"]

#: The row fields the reads fetch, in this order (chunk_index first).
FIELDS = ("chunk_index", "start_ts", "dtype", "data", "updated_at", "row_version")


class DjangoBackendBase(Backend):
    """What every part of the backend shares: the model, its database alias and grid,
    querysets of its rows, and the conversion of rows to core records and back."""

    def __init__(self, model: type[models.Model], *, using: str | None = None,
                 read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.model = model
        self.using = using or router.db_for_write(model)
        self.table = model._meta.db_table
        self.model_config = model_config(model)
        self.names = key_schema(model).names
        self.framed = bool(getattr(model, "CURVESTORE_FORMAT", False))
        cfg = self.model_config
        self.grid = get_grid(cfg.freq_ns, cfg.tz, cfg.chunking)
        self.freq_ns = cfg.freq_ns
        self._pg = pg_paths(model, self.using, self.names)  # None: the ORM paths

    # -- helpers ---------------------------------------------------------------------------
    def key_dict(self, key: SeriesKey) -> dict[str, Any]:
        return dict(zip(self.names, key, strict=True))

    def _qs(self) -> models.QuerySet:
        return self.model._base_manager.using(self.using)

    @staticmethod
    def _range(qs: models.QuerySet, lo: int | None, hi: int | None) -> models.QuerySet:
        if lo is not None:
            qs = qs.filter(chunk_index__gte=lo)
        if hi is not None:
            qs = qs.filter(chunk_index__lte=hi)
        return qs

    def _record(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str, data: Any,
                updated_at: Any, version: int | None) -> ChunkRecord | None:
        """A row as the core sees it; None for a live row without any value."""
        data = bytes(data)
        updated = to_ns(updated_at)
        if compat.is_framed(data):
            f = compat.unpack_frame(data)
            meta = ChunkMeta(chunk=chunk, start=f.start, length=f.length, count=f.count,
                             codec=f.codec, dtype=dtype or "float64", checksum=f.checksum,
                             size=len(f.payload), version=version or 0, updated_at=updated)
            return ChunkRecord(key, meta, f.payload)
        placed = self._holc_values(key, chunk, start_ts, dtype, data)
        if placed is None:
            return None
        start, values = placed
        valid = ~np.isnan(values)
        if not valid.any():
            return None
        first = int(valid.argmax())
        last = len(values) - int(valid[::-1].argmax())
        payload = np.ascontiguousarray(values[first:last], dtype="<f8").tobytes()
        meta = ChunkMeta(chunk=chunk, start=start + first, length=last - first,
                         count=int(valid.sum()), codec="none", dtype="float64",
                         checksum=checksum(payload), size=len(payload),
                         version=version or 0, updated_at=updated)
        return ChunkRecord(key, meta, payload)

    def _piece(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str, data: Any
               ) -> _chunks.Piece | None:
        """A row's values on the grid (None without any value): ``_record`` then the core's
        decode, except that a holcstore row's values are used as they are, NaN included
        (assembling places them on the grid and trims the NaN bounds the same way)."""
        data = bytes(data)
        if compat.is_framed(data):
            record = self._record(key, chunk, start_ts, dtype, data, 0, None)
            return None if record is None else _chunks.decode(record, get_codec)
        placed = self._holc_values(key, chunk, start_ts, dtype, data)
        if placed is None or np.isnan(placed[1]).all():
            return None
        return _chunks.Piece(chunk, *placed)

    def _holc_values(self, key: SeriesKey, chunk: int, start_ts: Any, dtype: str,
                     data: bytes) -> tuple[int, np.ndarray] | None:
        """A holcstore row's values cut to its chunk's period, with the offset of the first
        in the period; None when none falls inside it. IntegrityError off the grid."""
        values = compat.holc_decode(data, dtype)
        _, period_len = self.grid.period(chunk)
        offset_ns = to_ns(start_ts) - self.grid.period_start_ns(chunk)
        if offset_ns % self.freq_ns:
            raise IntegrityError(f"chunk {chunk} of {key}: start_ts {start_ts} is not on the "
                                 f"store's {self.model_config.freq} grid")
        offset = offset_ns // self.freq_ns
        a, b = max(0, -offset), min(len(values), period_len - offset)
        return None if b <= a else (offset + a, values[a:b])

    def _row(self, record: ChunkRecord, now: int) -> Row:
        """A core record in the table's format (holcstore's unless ``CURVESTORE_FORMAT``)."""
        meta = record.meta
        period_ns = self.grid.period_start_ns(meta.chunk)
        updated = meta.updated_at or now
        if meta.deleted:
            return Row(compat.HOLC_EMPTY, "float64", period_ns, updated, True)
        if self.framed:
            data = compat.pack_frame(meta.codec, meta.start, meta.length, meta.count,
                                     meta.checksum, record.payload)
            return Row(data, meta.dtype, period_ns + meta.start * self.freq_ns, updated, False)
        values = get_codec(meta.codec).decode(record.payload, dtype=np.dtype(meta.dtype),
                                              length=meta.length)
        _, period_len = self.grid.period(meta.chunk)
        full = np.full(period_len, np.nan)
        full[meta.start:meta.start + meta.length] = values
        return Row(compat.holc_encode(full), "float64", period_ns, updated, False)

    def _keys_q(self, keys: Iterable[SeriesKey]) -> models.Q:
        q = models.Q()
        for key in keys:
            q |= models.Q(**self.key_dict(key))
        return q
