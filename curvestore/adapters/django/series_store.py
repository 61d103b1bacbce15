"""``TimeseriesStore``: holcstore's abstract one-blob-per-series model on curvestore blobs.

Subclass it with your key fields and a unique constraint on them::

    class MyTimeseriesStore(TimeseriesStore):
        year = models.IntegerField()
        kind = models.CharField(max_length=100)

        class Meta(TimeseriesStore.Meta):
            unique_together = ("year", "kind")

Blobs holcstore wrote (Feather, LZ4) stay readable (pyarrow needed); new blobs use curvestore's
series blob (codec ``BLOB_CODEC``, checksum, exact index: see :mod:`.blobs`), which holcstore
cannot read. Deliberate differences from holcstore 0.6.7: no unique constraint / index on
``data`` (holcstore's Meta had them: identical series under two keys collided, and PostgreSQL
refuses btree entries over ~2.7 kB), so switching adds a migration dropping them; inserting
over an existing series raises :class:`SeriesExistsIntegrityError`, which is both a
``django.db.IntegrityError`` and a ``ValueError`` (holcstore raised ``ValueError``);
``decoded_ts_data`` returns a copy without Django's ``_state`` instead of mutating the instance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pandas as pd
from django.db import IntegrityError, models, router, transaction

from curvestore.adapters.django.blobs import DEFAULT_CODEC, decode_series, encode_series
from curvestore.errors import SeriesExistsError

__all__ = ["SeriesExistsIntegrityError", "TimeseriesStore", "ts_combine_first"]

logger = logging.getLogger(__name__)


class SeriesExistsIntegrityError(IntegrityError, SeriesExistsError):
    """``set_ts`` without ``update``/``replace`` over an existing series."""

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        self.keys = [dict(attrs)]
        Exception.__init__(self, f"a series already exists for {dict(attrs)!r}; pass "
                                 "update=True or replace=True")


def ts_combine_first(series: Iterable[pd.Series | None]) -> pd.Series:
    """``combine_first`` from left to right (the first series wins); empty/None skipped."""
    out: pd.Series | None = None
    for ds in series:
        if ds is None or ds.empty:
            continue
        out = ds if out is None else out.combine_first(ds)
    return out if out is not None else pd.Series(dtype=float)


def entry_dict(entry: models.Model) -> dict[str, Any]:
    """The row's fields as a dict (no ``_state``), ``data`` decoded to its series."""
    out = {k: v for k, v in vars(entry).items() if k != "_state"}
    out["data"] = decode_series(out["data"], getattr(entry, "TIME_UNIT", None))
    return out


class TimeseriesStore(models.Model):
    """One row (one blob) per series, identified by the subclass's key fields."""

    data = models.BinaryField(blank=True, null=True)

    #: Core codec of the values (and explicit timestamps) of new blobs.
    BLOB_CODEC: ClassVar[str] = DEFAULT_CODEC
    #: Unit of the DatetimeIndex reads return where it holds the stored instants exactly
    #: ("s", "ms", "us", "ns"); None is the unit pandas gives new timestamps.
    TIME_UNIT: ClassVar[str | None] = None

    class Meta:
        abstract = True

    @property
    def decoded_ts_data(self) -> dict[str, Any]:
        """This row's fields, ``data`` decoded to the series."""
        return entry_dict(self)

    @classmethod
    def encode_serie(cls, ds: pd.Series) -> bytes:
        """The blob stored for ``ds`` (named ``"name"``, as holcstore names it)."""
        return encode_series(ds, name="name", codec_id=cls.BLOB_CODEC)

    @classmethod
    def get_ts(cls, ts_attributes: dict[str, Any], flat: bool = False,
               _qs: models.QuerySet | None = None) -> pd.Series | list[dict[str, Any]]:
        """Series matching ``ts_attributes``: a list of entry dicts, or with ``flat`` the one
        series (``ValueError`` when none or several match)."""
        qs = _qs if _qs is not None else cls._default_manager.filter(**ts_attributes)
        entries = [entry.decoded_ts_data for entry in qs]
        if not flat:
            return entries
        if len(entries) == 1:
            return entries[0]["data"]
        what = "No serie" if not entries else "Multiple series"
        raise ValueError(f"{what} found for key {ts_attributes!r}")

    @classmethod
    def set_ts(cls, ts_attributes: dict[str, Any], ds_ts: pd.Series, update: bool = False,
               replace: bool = False) -> None:
        """Store ``ds_ts`` under ``ts_attributes``.

        ``update`` combines it with the stored series (new values win); ``replace`` overwrites.
        Without either, a stored series raises :class:`SeriesExistsIntegrityError`. An all-NaN
        series is ignored with a warning, as holcstore does.
        """
        if update and replace:
            raise ValueError("update and replace are mutually exclusive")
        if ts_attributes is None:
            raise ValueError("ts_attributes is None")
        if not isinstance(ds_ts, pd.Series):
            raise ValueError(f"Cannot cache value of type {type(ds_ts)}, only pd.Series "
                             "are accepted")
        if ds_ts.isnull().all():
            logger.warning("Key %r is ignored because data is null", ts_attributes)
            return
        manager = cls._default_manager
        with transaction.atomic(using=router.db_for_write(cls)):
            rows = list(manager.filter(**ts_attributes).select_for_update())
            if not rows:
                manager.create(data=cls.encode_serie(ds_ts), **ts_attributes)
                return
            if not (update or replace):
                raise SeriesExistsIntegrityError(ts_attributes)
            if update:
                if len(rows) > 1:
                    raise ValueError(f"Multiple series found for key {ts_attributes!r}")
                ds_ts = ts_combine_first([ds_ts, decode_series(rows[0].data, cls.TIME_UNIT)])
            if len(rows) > 1:
                manager.filter(pk__in=[r.pk for r in rows]).delete()
                manager.create(data=cls.encode_serie(ds_ts), **ts_attributes)
                return
            rows[0].data = cls.encode_serie(ds_ts)
            rows[0].save(update_fields=["data"])

    @classmethod
    def clear(cls, custom_filters: dict[str, Any]) -> None:
        """Delete the series matching ``custom_filters``."""
        cls._default_manager.filter(**custom_filters).delete()
