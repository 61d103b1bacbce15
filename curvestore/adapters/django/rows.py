"""A chunk row as the ORM backend writes it, and the instants of its date columns: shared by
the backend and holcstore's ``import_chunks`` (the API mixin), which puts rows as they are
through the core's transaction (:class:`RowRecord`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from curvestore.adapters.django._postgres import dt_of, ns_of
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey

__all__ = ["Row", "RowRecord", "to_datetime", "to_ns"]


def to_ns(value: Any) -> int:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return ns_of(value)  # what database rows hold; pandas is the slow general case
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.as_unit("ns").value)


def to_datetime(ns: int) -> Any:
    """An aware datetime (DateTimeField keeps microseconds: finer digits are dropped)."""
    return dt_of(ns)


@dataclass(slots=True)
class Row:
    """A chunk row to write, already in the table's format."""

    data: bytes
    dtype: str
    start_ns: int
    updated_ns: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class RowRecord(ChunkRecord):
    """A chunk to store as ``row``, a row in the table's format (a holcstore blob with its
    ``dtype``, ``start_ts`` and ``updated_at``, as ``export_chunks`` gave it), instead of
    encoding the record: ``DjangoTransaction.put`` keeps it as it is. Its meta only names the
    chunk and whether it is a tombstone (what the core's key checks and the feed need)."""

    row: Row = field(kw_only=True)

    @classmethod
    def of(cls, key: SeriesKey, chunk: int, row: Row) -> RowRecord:
        return cls(key, ChunkMeta(chunk=chunk, deleted=row.deleted), row=row)
