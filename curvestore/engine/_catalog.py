"""The catalog: what the log says is live, as columns, rebuilt by folding entries.

A :class:`Catalog` is immutable: folding an entry returns a new one, so a reader keeps a
consistent snapshot for as long as it holds it while writers move on. Rows are kept sorted by
``(sid, chunk, version)`` and hold only the current state of each chunk: its base row and the
fragments appended after it. A fold is a merge of two sorted arrays (``searchsorted`` and
``insert``), O(rows) with no re-sort and no object per chunk.

Series are numbered in order of creation (``sid``) and named by :class:`Names`, one numpy
column per key attribute, so filters, key order and summaries are vectorised.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from curvestore.core.records import SeriesKey
from curvestore.engine._format import APPEND, DELETED, ROW, Container
from curvestore.errors import IntegrityError

__all__ = ["Catalog", "Names", "among", "chunk_keys"]

_CHUNK_BIAS = 1 << 31


def chunk_keys(sid: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """One sortable int64 per (series, chunk): series first, then chunk (chunks may be
    negative, before 1970)."""
    return (sid.astype(np.int64) << 32) | (chunk.astype(np.int64) + _CHUNK_BIAS)


def among(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``np.isin(values, members)`` for integers, by binary search in the sorted members:
    several times faster when the values are a whole catalog's (hundreds of thousands)."""
    members = np.unique(members)
    if not len(members):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(members, values), len(members) - 1)
    return members[at] == values


class Names:
    """Key values of every series ever created, by sid; append-only, shared between
    catalogs (a fold that creates series makes a new one)."""

    def __init__(self, types: Sequence[str], columns: Sequence[np.ndarray] | None = None
                 ) -> None:
        self.types = tuple(types)
        self.columns = [np.asarray(c) for c in columns] if columns is not None else [
            np.empty(0, dtype=np.int64 if t == "int" else np.str_) for t in self.types]
        self._index: dict[SeriesKey, int] | None = None
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def extended(self, columns: Sequence[Sequence[Any]]) -> Names:
        added = [np.asarray(c, dtype=np.int64 if t == "int" else np.str_)
                 for c, t in zip(columns, self.types, strict=True)]
        return Names(self.types, [np.concatenate((old, new)) if len(old) else new
                                  for old, new in zip(self.columns, added, strict=True)])

    def sids(self, keys: Sequence[SeriesKey]) -> np.ndarray:
        """The sid of each key, -1 for keys never created."""
        index = self._index
        if index is None:
            index = self._index = {k: i for i, k in enumerate(self.keys(None))}
        return np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def keys(self, sids: np.ndarray | None) -> list[SeriesKey]:
        columns = self.columns if sids is None else [c[sids] for c in self.columns]
        return list(zip(*(c.tolist() for c in columns), strict=True))

    def matching(self, where: Mapping[str, Any], names: Sequence[str]) -> np.ndarray | None:
        """A boolean mask over sids for a validated filter (None: every series)."""
        mask = None
        for name, value in where.items():
            hit = self.columns[names.index(name)] == value
            mask = hit if mask is None else mask & hit
        return mask

    def order(self) -> np.ndarray:
        """Every sid, ordered by key (cached: the catalog is immutable)."""
        if self._order is None:
            self._order = np.lexsort(self.columns[::-1]) if self.columns else np.empty(0, int)
        return self._order

    def to_json(self) -> list[list[Any]]:
        return [c.tolist() for c in self.columns]


@dataclass(frozen=True, eq=False)
class Catalog:
    """The state after log entry ``seq``: live rows, series names, saved states, and the
    tables rows index (objects, codecs, dtypes)."""

    seq: int
    names: Names
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=ROW))
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    objects: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    states: Mapping[str, str] = field(default_factory=dict)
    #: entries folded since the newest checkpoint, and the rows they held
    pending: int = 0
    pending_rows: int = 0

    @classmethod
    def empty(cls, types: Sequence[str]) -> Catalog:
        return cls(0, Names(types))

    # -- reading ---------------------------------------------------------------------------
    def series_rows(self, sid: int, lo: int | None = None, hi: int | None = None
                    ) -> np.ndarray:
        """Rows of one series with ``lo <= chunk <= hi``, ordered by (chunk, version)."""
        first, last = self.slices(np.array([sid]), lo, hi)
        return self.rows[int(first[0]):int(last[0])]

    def slices(self, sids: np.ndarray, lo: int | None, hi: int | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """For each sid, the row range ``[start, end)`` of its chunks ``lo..hi``."""
        base = sids.astype(np.int64) << 32
        first = np.searchsorted(self.keys, base + (0 if lo is None else lo + _CHUNK_BIAS))
        last = (np.searchsorted(self.keys, base + (1 << 32)) if hi is None
                else np.searchsorted(self.keys, base + hi + _CHUNK_BIAS, side="right"))
        return first, np.maximum(first, last)

    @functools.cached_property
    def size_prefix(self) -> np.ndarray:
        """Running total of payload bytes over the rows (``[0, s0, s0 + s1, ...]``): the
        bytes of any row range in O(1), to cut bulk reads into bounded groups."""
        return np.r_[0, np.cumsum(self.rows["size"])]

    def rows_of(self, sids: np.ndarray, lo: int | None = None, hi: int | None = None
                ) -> np.ndarray:
        """Rows of many series (any order of ``sids``) in chunk range, in catalog order."""
        rows = self.rows
        mask = among(rows["sid"], sids)
        if lo is not None:
            mask &= rows["chunk"] >= lo
        if hi is not None:
            mask &= rows["chunk"] <= hi
        return rows[mask]

    def live_sids(self) -> np.ndarray:
        """Sids with live rows, ascending (rows are sorted by sid)."""
        return self.series_stats["sid"]

    @functools.cached_property
    def series_stats(self) -> dict[str, np.ndarray]:
        """Per series with live rows, ascending by sid: what metadata calls need (first and
        last chunk and offsets, chunk count, valid points, payload bytes). Computed once per
        catalog with reductions over contiguous row ranges."""
        rows, keys = self.rows, self.keys
        sid = rows["sid"]
        if not len(rows):
            empty = np.empty(0, dtype=np.int64)
            return dict.fromkeys(("sid", "first_chunk", "first_start", "last_chunk",
                                  "last_stop", "chunks", "points", "payload_bytes"), empty)
        firsts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        lasts = np.r_[firsts[1:], len(rows)] - 1
        distinct = np.r_[True, keys[1:] != keys[:-1]].astype(np.int64)
        return {"sid": sid[firsts], "first_chunk": rows["chunk"][firsts],
                "first_start": rows["start"][firsts], "last_chunk": rows["chunk"][lasts],
                "last_stop": rows["start"][lasts] + rows["length"][lasts],
                "chunks": np.add.reduceat(distinct, firsts),
                "points": np.add.reduceat(rows["count"], firsts),
                "payload_bytes": np.add.reduceat(rows["size"], firsts)}

    # -- folding ---------------------------------------------------------------------------
    def fold(self, entry: Container) -> Catalog:
        """The catalog after ``entry`` (the next entry of the log)."""
        return self.fold_all([entry])

    def fold_all(self, entries: Sequence[Container]) -> Catalog:
        """The catalog after ``entries`` (the next entries of the log, in order), their rows
        merged in one pass: opening a store folds every entry after its checkpoint, and a
        pass each would copy a large catalog once per entry."""
        catalog, batches = self, []
        for entry in entries:
            catalog, new = catalog._fold_header(entry)
            if len(new):
                batches.append(new)
        if not batches:
            return catalog
        rows, keys = _apply(self.rows, self.keys,
                            batches[0] if len(batches) == 1 else np.concatenate(batches))
        return replace(catalog, rows=rows, keys=keys)

    def _fold_header(self, entry: Container) -> tuple[Catalog, np.ndarray]:
        """The catalog after ``entry`` but for its rows, and its rows in this catalog's
        tables."""
        header = entry.header
        if header.get("seq") != self.seq + 1:
            raise IntegrityError(f"log entry {header.get('seq')!r} does not follow "
                                 f"entry {self.seq}: the log is damaged")
        names = self.names
        created = header.get("new_series")
        if created:
            if created["first"] != len(names):
                raise IntegrityError(f"log entry {self.seq + 1} numbers its new series from "
                                     f"{created['first']}, expected {len(names)}")
            names = names.extended(created["columns"])
        objects, obj_map = _merged_table(self.objects, header.get("objects", ()))
        codecs, codec_map = _merged_table(self.codecs, header.get("codecs", ()))
        dtypes, dtype_map = _merged_table(self.dtypes, header.get("dtypes", ()))
        states = self.states
        if header.get("states"):
            states = {**states, **header["states"]}
        new = entry.rows
        remaps = [(name, table) for name, table in (("obj", obj_map), ("codec", codec_map),
                                                     ("dtype", dtype_map))
                  if len(table) and (table != np.arange(len(table))).any()]
        if len(new) and remaps:  # the entry's tables differ from ours: renumber a copy
            new = new.copy()
            for name, table in remaps:
                new[name] = table[new[name]]
        return replace(self, seq=self.seq + 1, names=names, objects=objects, codecs=codecs,
                       dtypes=dtypes, states=states, pending=self.pending + 1,
                       pending_rows=self.pending_rows + len(new)), new

    def without_unused_objects(self) -> Catalog:
        """This catalog with its object table cut to the objects rows refer to (for a
        checkpoint: compacted segments drop out of it)."""
        used, inverse = np.unique(self.rows["obj"], return_inverse=True)
        rows = self.rows.copy()
        rows["obj"] = inverse.reshape(-1)
        return replace(self, rows=rows, objects=tuple(self.objects[i] for i in used.tolist()))


def _merged_table(table: tuple[str, ...], names: Sequence[str]
                  ) -> tuple[tuple[str, ...], np.ndarray]:
    """``table`` with ``names`` added, and each name's index in the result."""
    if not names:
        return table, np.empty(0, dtype=np.int64)
    index = {name: i for i, name in enumerate(table)}
    out = list(table)
    mapping = []
    for name in names:
        if name not in index:
            index[name] = len(out)
            out.append(name)
        mapping.append(index[name])
    return tuple(out), np.asarray(mapping, dtype=np.int64)


def _apply(rows: np.ndarray, keys: np.ndarray, new: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Fold entries' rows (in log order; one per chunk per entry): a base row or tombstone
    replaces every row of its chunk before it, a fragment goes after them. Done at once for
    any number of entries: a chunk keeps its rows from the last replacing one on (stored
    rows only if none replaces them), tombstones dropped. The new rows are gathered once
    (a copy of rows costs mostly the fresh memory it fills: ~90 MB at a million rows)."""
    new_keys = chunk_keys(new["sid"], new["chunk"])
    order = np.argsort(new_keys, kind="stable")  # log order within a chunk
    new_keys, flags = new_keys[order], new["flags"][order]
    keep = (flags & DELETED) == 0
    replacing = (flags & APPEND) == 0
    if replacing.any():
        if len(keys):
            drop = among(keys, new_keys[replacing])
            if drop.any():
                rows, keys = rows[~drop], keys[~drop]
        # a chunk's rows before its last replacing one go too
        starts = np.r_[True, new_keys[1:] != new_keys[:-1]]
        group = np.cumsum(starts) - 1
        at = np.arange(len(new_keys))
        last = np.maximum.reduceat(np.where(replacing, at, -1), np.flatnonzero(starts))
        keep &= at >= last[group]
    if keep.all() and (order[1:] > order[:-1]).all():
        taken = new  # in order already, all kept: no copy
    else:
        taken, new_keys = new[order[keep]], new_keys[keep]
    if not len(taken):
        return rows, keys
    if not len(keys):
        return taken, new_keys
    at = np.searchsorted(keys, new_keys, side="right")
    return np.insert(rows, at, taken), np.insert(keys, at, new_keys)
