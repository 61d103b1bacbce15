"""``Store``: holcstore's abstract load-curve store (``client_id``, ``prm``, ``version``).

Signatures and return shapes follow holcstore 0.6.7 (``hostore.models.Store``); blobs are read
in both formats and written as curvestore series blobs (see :mod:`.blobs`). Differences:
entry dicts omit Django's ``_state``; versioned ``set_lc`` is safe under concurrent writers
(the newest row of the series is locked, and a unique-constraint conflict on the new version
is retried inside a savepoint); ``find_holes`` honours ``custom_filters`` (holcstore passed
them on as unknown keyword arguments and failed).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from django.db import IntegrityError, models, router, transaction
from django.db.models import Max

from curvestore.adapters.django.blobs import DEFAULT_CODEC, decode_series, encode_series
from curvestore.adapters.django.series_store import entry_dict, ts_combine_first
from curvestore.errors import ConfigurationError

__all__ = ["Range", "Store", "StoreQuerySet", "check_ts_completeness",
           "find_constant_sequences"]

logger = logging.getLogger(__name__)
_RETRIES = 50
_NO_MARGIN = pd.Timedelta(0)
Entries = list[dict[str, Any]]


class StoreQuerySet(models.QuerySet):
    """Default queryset of :class:`Store` (as holcstore's)."""


class Range:
    """A closed time range ``[sd, ed]``, as holcstore's ``Range`` (hashable, comparable)."""

    def __init__(self, sd: Any, ed: Any) -> None:
        if sd > ed:
            raise ValueError(f"range start {sd} after its end {ed}")
        self.sd, self.ed = sd, ed

    def __hash__(self) -> int:
        return hash(f"{self.sd}-{self.ed}")

    def __eq__(self, other: object) -> bool:
        return (self.sd, self.ed) == (getattr(other, "sd", None), getattr(other, "ed", None))

    def __repr__(self) -> str:
        return f"Range({self.sd!r}, {self.ed!r})"

    def overlap(self, other: Range) -> bool:
        return self.sd <= other.ed and self.ed >= other.sd

    def includes(self, other: Range) -> bool:
        return self.sd <= other.sd <= self.ed and self.sd <= other.ed <= self.ed

    @staticmethod
    def combine(ranges: list[Range]) -> list[Range]:
        """Merge overlapping ranges (sorts ``ranges`` in place, as holcstore)."""
        ranges.sort(key=lambda r: r.sd)
        out: list[Range] = []
        for r in ranges:
            if out and out[-1].overlap(r):
                out[-1].ed = max(out[-1].ed, r.ed)
            else:
                out.append(r)
        return out

    def difference_missing(self, requested: Range, min_delta: pd.Timedelta) -> list[Range]:
        """Parts of ``requested`` outside this (available) range, at least ``min_delta`` long."""
        out = []
        if requested.sd < self.sd and self.sd - requested.sd >= min_delta:
            out.append(Range(requested.sd, min(self.sd, requested.ed)))
        if requested.ed > self.ed and requested.ed - self.ed >= min_delta:
            out.append(Range(max(self.ed, requested.sd), requested.ed))
        return out


def find_constant_sequences(ds: pd.Series) -> tuple[tuple[tuple[Any, Any], Any], ...]:
    """Runs of equal values (NaN equals NaN): ``(((first, last), value), ...)``."""
    values = ds.to_numpy()
    if not len(values):
        return ()
    isna = pd.isna(values)
    same = (values[1:] == values[:-1]) | (isna[1:] & isna[:-1])
    starts = np.concatenate(([0], np.flatnonzero(~same) + 1))
    ends = np.concatenate((starts[1:] - 1, [len(values) - 1]))
    idx = ds.index
    return tuple(((idx[s], idx[e]), values[s]) for s, e in zip(starts, ends, strict=True))


def check_ts_completeness(ds: pd.Series, start: Any, end: Any, tag: str | None = None,
                          freq: str | None = None, freq_margin: Any = None,
                          msgs: list[str] | None = None) -> Sequence[tuple[Any, Any]]:
    """Holes of ``ds`` over ``[start, end]`` at ``freq``, widened by ``freq_margin``."""
    freq = freq or "30min"
    margin = pd.to_timedelta(freq_margin if freq_margin is not None else
                             (freq if freq[0].isdigit() else "1" + freq))
    label = f"{tag} " if tag else ""

    def notify(msg: str) -> None:
        (msgs.append if msgs is not None else logger.warning)(label + msg)

    if ds.empty:
        notify("is empty")
        return ((start, end),)
    nulls = ds.reindex(pd.date_range(start, end, freq=freq)).isnull()
    holes = []
    if nulls.any():
        notify("contains NaNs")
        for (first, last), isnull in find_constant_sequences(nulls):
            if isnull:
                holes.append((first - margin, last + margin))
    return holes


def _slice_with_delay(ds: pd.Series, delay: pd.Timedelta | None) -> pd.Series:
    if delay is None or ds is None or ds.empty:
        return ds
    return ds[ds.index.min() + delay:]


def _combine(entries: Entries, combined_by: Iterable[str], delay: Any) -> Entries:
    """Entries (newest first) combined per ``combined_by`` value: the first one wins."""
    combined: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        e["data"] = _slice_with_delay(e["data"], delay)
        key = tuple(e[a] for a in combined_by)
        if key in combined:
            combined[key]["data"] = ts_combine_first([combined[key]["data"], e["data"]])
        else:
            combined[key] = e
    return list(combined.values())


def _single_entry(prm: str, entries: Entries, combined_by: Sequence[str]) -> Entries:
    """The one combined entry of ``prm``, as the hole finders need: ``combined_by`` values
    other than ``prm`` (e.g. ``("prm", "version")``) leave several, which have no single
    hole list."""
    if len(entries) != 1:
        raise ConfigurationError(
            f"prm {prm!r} has {len(entries)} entries once combined by {tuple(combined_by)}; "
            "finding holes needs one per prm (combine by ('prm',) or add filters)")
    return entries


class Store(models.Model):
    """Load curves keyed by ``(client_id, prm)``, optionally versioned."""

    client_id = models.IntegerField()
    prm = models.CharField(max_length=70)
    last_modified = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True, null=True)
    data = models.BinaryField(blank=True, null=True)
    version = models.IntegerField(default=0)

    #: Core codec of new blobs.
    BLOB_CODEC: ClassVar[str] = DEFAULT_CODEC
    #: Unit of the DatetimeIndex reads return where it holds the stored instants exactly
    #: ("s", "ms", "us", "ns"); None is the unit pandas gives new timestamps.
    TIME_UNIT: ClassVar[str | None] = None

    objects = StoreQuerySet.as_manager()

    class Meta:
        abstract = True
        constraints = (models.UniqueConstraint(
            fields=["prm", "client_id", "version"],
            name="%(app_label)s_%(class)s_prm_clientid_version"),)
        indexes = (models.Index(fields=["prm", "client_id"]),)

    @classmethod
    def count(cls, client_id: int, custom_filters: dict[str, Any] | None = None) -> int:
        """Number of rows (versions included) of ``client_id``."""
        return cls._default_manager.filter(client_id=client_id, **(custom_filters or {})).count()

    @classmethod
    def _read(cls, qs: models.QuerySet) -> Entries:
        return [entry_dict(entry) for entry in qs]

    @classmethod
    def get_last_version_lc(cls, prm: str, client_id: int,
                            custom_filters: dict[str, Any] | None = None,
                            order_by: Sequence[str] = ("-version",)) -> pd.Series | None:
        """The newest version's series, or None."""
        entry = cls._default_manager.filter(prm=prm, client_id=client_id,
                                            **(custom_filters or {})).order_by(*order_by).first()
        return None if entry is None else decode_series(entry.data, cls.TIME_UNIT)

    @classmethod
    def get_lc(cls, prm: str, client_id: int, combined_versions: bool = True,
               version: int | None = None, custom_filters: dict[str, Any] | None = None,
               combined_by: Sequence[str] = ("prm",), order_by: Sequence[str] = ("-version",),
               combined_delay: pd.Timedelta | None = None) -> Entries:
        """Entry dicts of ``prm``; with ``combined_versions``, versions combined in
        ``order_by`` order (newest first by default: newer values win)."""
        qs = cls._default_manager.filter(prm=prm, client_id=client_id,
                                         **(custom_filters or {})).order_by(*order_by)
        if version is not None:
            qs = qs.filter(version=version)
        entries = cls._read(qs)
        if entries and combined_versions:
            entries = _combine(entries, combined_by, combined_delay)
        return entries

    @classmethod
    def get_many_lc(cls, prms: Sequence[str], client_id: int, combined_versions: bool = True,
                    custom_filters: dict[str, Any] | None = None,
                    combined_by: Sequence[str] = ("prm",),
                    order_by: Sequence[str] = ("-version",),
                    combined_delay: pd.Timedelta | None = None) -> dict[str, Entries]:
        """``{prm: entries}`` (a defaultdict: absent prms give ``[]``), as :meth:`get_lc`."""
        qs = cls._default_manager.filter(prm__in=list(prms), client_id=client_id,
                                         **(custom_filters or {})).order_by(*order_by)
        results: defaultdict[str, Entries] = defaultdict(list)
        for e in cls._read(qs):
            results[e["prm"]].append(e)
        if combined_versions:
            for prm, entries in results.items():
                results[prm] = _combine(entries, combined_by, combined_delay)
        return results

    @classmethod
    def set_lc(cls, prm: str, value: pd.Series, client_id: int, versionning: bool = False,
               versionning_by: Sequence[str] = ("prm",),
               attributes_to_set: dict[str, Any] | None = None) -> None:
        """Store ``value`` for ``prm``: replace it, or with ``versionning`` add a new version
        (numbered per ``versionning_by`` attributes). All-NaN series are ignored."""
        attrs = dict(attributes_to_set or {})
        if not isinstance(value, pd.Series):
            raise ValueError(f"Cannot cache value of type {type(value)}, only series "
                             "are accepted")
        if value.isnull().all():
            logger.warning("Key %s is ignored because data is null", prm)
            return
        blob = encode_series(value, name=prm, codec_id=cls.BLOB_CODEC)
        if not versionning:
            cls._default_manager.update_or_create(client_id=client_id, prm=prm,
                                                  defaults={"data": blob}, **attrs)
            return
        if "prm" not in versionning_by:
            raise ValueError("versionning_by must contain 'prm'")
        scope = {"prm": prm, **{k: v for k, v in attrs.items() if k in versionning_by}}
        cls._add_version(client_id, scope, {**attrs, "prm": prm, "data": blob})

    @classmethod
    def _add_version(cls, client_id: int, scope: Mapping[str, Any],
                     fields: dict[str, Any]) -> None:
        """Insert the next version of the ``scope`` series; concurrent writers are serialised
        by a lock on its newest row, and a lost race on the first version is retried."""
        db = router.db_for_write(cls)
        qs = cls._default_manager.filter(client_id=client_id, **scope)
        failed: int | None = None
        with transaction.atomic(using=db):
            for attempt in range(_RETRIES):
                list(qs.order_by("-version").select_for_update().values_list("pk")[:1])
                latest = qs.aggregate(Max("version"))["version__max"]
                version = 0 if latest is None else latest + 1
                if version == failed or attempt == _RETRIES - 1:
                    raise IntegrityError(f"cannot add version {version} of {dict(scope)!r}: "
                                         "a unique constraint refuses it")
                try:
                    with transaction.atomic(using=db):
                        cls._default_manager.create(client_id=client_id, version=version,
                                                    **fields)
                    return
                except IntegrityError:
                    failed = version
                    time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))

    @classmethod
    def set_many_lc(cls, dataseries: Mapping[str, pd.Series] | pd.DataFrame, client_id: int,
                    versionning: bool = False, versionning_by: Sequence[str] = ("prm",),
                    attributes_to_set: dict[str, Any] | None = None) -> None:
        """:meth:`set_lc` for each ``prm: series`` item (a DataFrame's columns too)."""
        for prm, data in dataseries.items():
            if data is not None and not data.empty:
                cls.set_lc(prm, data, client_id, versionning=versionning,
                           versionning_by=versionning_by, attributes_to_set=attributes_to_set)

    @classmethod
    def clear(cls, prms: Sequence[str], client_id: int, version: int | None = None,
              custom_filters: dict[str, Any] | None = None) -> None:
        """Delete ``prms`` of ``client_id`` (one ``version`` only if given)."""
        qs = cls._default_manager.filter(prm__in=list(prms), client_id=client_id,
                                         **(custom_filters or {}))
        if version is not None:
            qs = qs.filter(version=version)
        qs.delete()

    @classmethod
    def clear_all(cls, client_id: int | None = None,
                  custom_filters: dict[str, Any] | None = None) -> None:
        """Delete every row (of ``client_id`` / matching ``custom_filters`` if given)."""
        qs = cls._default_manager.filter(**(custom_filters or {}))
        if client_id is not None:
            qs = qs.filter(client_id=client_id)
        qs.delete()

    @classmethod
    def find_holes(cls, client_id: int, sd: dt.datetime, ed: dt.datetime, freq: str = "30min",
                   prms: list[str] | None = None, chunk_size: int = 50,
                   freq_margin: pd.Timedelta = _NO_MARGIN,
                   custom_filters: dict[str, Any] | None = None,
                   combined_by: Sequence[str] = ("prm",),
                   order_by: Sequence[str] = ("-version",)) -> Iterator[tuple[str, Any]]:
        """Yield ``(prm, [(hole_start, hole_end), ...])`` over ``[sd, ed]`` (bounds included);
        an absent prm is one hole ``(sd, ed)``."""
        filters = custom_filters or {}
        if prms is None:
            prms = list(cls._default_manager.filter(client_id=client_id, **filters)
                        .values_list("prm", flat=True))
        for i in range(0, len(prms), chunk_size):
            part = prms[i:i + chunk_size]
            data = cls.get_many_lc(part, client_id, combined_versions=True,
                                   custom_filters=filters, combined_by=combined_by,
                                   order_by=order_by)
            for prm in part:
                entries = data[prm]
                if not entries:
                    yield prm, [(sd, ed)]
                    continue
                entry = _single_entry(prm, entries, combined_by)[0]
                yield prm, check_ts_completeness(entry["data"], sd, ed, freq=freq,
                                                 freq_margin=freq_margin)

    @classmethod
    def find_groups(cls, client_id: int, prms: list[str], drr: Range, freq: str = "30min",
                    combined_by: Sequence[str] = ("prm",),
                    order_by: Sequence[str] = ("-version",)) -> tuple[dict, dict]:
        """Group ``prms`` by missing range within ``drr``: ``({Range: [prm, ...]}, data)``
        where ``data`` keeps the prms that have values, sliced to ``drr``."""
        data = cls.get_many_lc(prms, client_id, combined_versions=True,
                               combined_by=combined_by, order_by=order_by)
        groups: defaultdict[Any, list[str]] = defaultdict(list)
        absent = [p for p in prms if p not in data]
        if absent:
            groups[drr].extend(absent)
        empty = []
        for prm, objs in data.items():
            obj = _single_entry(prm, objs, combined_by)[0]
            obj["data"] = obj["data"][drr.sd:drr.ed]
            mask = obj["data"].notnull()
            values = obj["data"][mask]
            missing: list[Range] = []
            if values.empty:
                missing.append(drr)
                empty.append(prm)
            else:
                available = Range(values.index.min(), values.index.max())
                missing.extend(available.difference_missing(drr, pd.to_timedelta(freq)))
            for (start, end), not_null in find_constant_sequences(mask):
                if not not_null:
                    missing.append(Range(start, end))
            for r in Range.combine(missing):
                groups[r].append(prm)
        for prm in empty:
            data.pop(prm)
        return groups, data
