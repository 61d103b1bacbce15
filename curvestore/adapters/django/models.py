"""``TimeseriesChunkStore``: holcstore's abstract chunk-store model on curvestore's core.

Subclass it with your key fields (integer or text) and class settings::

    class MyStore(TimeseriesChunkStore):
        version = models.IntegerField()
        kind = models.CharField(max_length=20)
        CHUNK_AXIS = ("year", "month")   # or ("year",)
        STORE_TZ = "Europe/Paris"
        STORE_FREQ = "1h"

Concrete subclasses get, as with holcstore, a unique constraint and an index on
``(*keys, chunk_index)``, an index on ``updated_at``, and a default table name that freezes the
settings (``<app>_<model>__ca<axis>_f<freq>_tz<tz>_<sync|nosync>``). Settings are validated at
class definition and cannot be reassigned afterwards.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.base import ModelBase

from curvestore.adapters.django import options
from curvestore.adapters.django.api import ChunkStoreAPI
from curvestore.adapters.django.backend import DjangoModelBackend
from curvestore.adapters.django.bookkeeping import ChunkChange, StoreManifest, SyncState
from curvestore.adapters.django.querysets import ChunkQuerySet

__all__ = ["ChunkChange", "ChunkQuerySet", "StoreManifest", "SyncState", "TimeseriesChunkStore"]


class _ChunkStoreBase(ModelBase):
    """Adds constraints, indexes and the frozen table name to concrete chunk stores."""

    def __new__(mcls, name: str, bases: tuple[type, ...], attrs: dict[str, Any],
                **kwargs: Any) -> Any:
        cls = super().__new__(mcls, name, bases, attrs, **kwargs)
        meta = cls._meta
        if meta.abstract:
            return cls
        for manager in meta.managers:
            qs_class = getattr(manager, "_queryset_class", None)
            if qs_class is None or not issubclass(qs_class, ChunkQuerySet):
                raise ImproperlyConfigured(
                    f"{name}.{manager.name}: managers of a TimeseriesChunkStore must use a "
                    "queryset deriving from curvestore.adapters.django.querysets.ChunkQuerySet "
                    "(e.g. MyQuerySet(ChunkQuerySet).as_manager())"
                )
        if meta.proxy:  # the concrete model's table, constraints and settings signature
            return cls
        sig = options.signature(cls)
        if meta.db_table == f"{meta.app_label}_{name.lower()}":
            meta.db_table = options.table_name(meta.app_label, name, sig)
            meta.original_attrs["db_table"] = meta.db_table
        elif sig not in meta.db_table:
            raise ImproperlyConfigured(
                f"{name}: db_table {meta.db_table!r} must contain the frozen settings "
                f"signature {sig!r}"
            )
        keys = sorted(f.name for f in options.key_fields(meta))
        axis = [*keys, "chunk_index"]
        meta.constraints = [*meta.constraints, models.UniqueConstraint(
            fields=axis, name=options.index_name(meta.db_table, "unq"))]
        meta.original_attrs["constraints"] = meta.constraints
        indexes = list(meta.indexes)
        for fields, tag in ((axis, "axis"), (["updated_at"], "upd")):
            if not any(set(i.fields) == set(fields) for i in indexes):
                indexes.append(models.Index(fields=fields,
                                            name=options.index_name(meta.db_table, tag)))
        meta.indexes = indexes
        meta.original_attrs["indexes"] = indexes
        options.key_schema(cls)  # unsupported key field types fail now
        return cls

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in options.FROZEN_ATTRS and hasattr(cls, name):
            raise AttributeError(f"{cls.__name__}.{name} is frozen (it names the table and "
                                 "the stored grid); define a new model instead")
        super().__setattr__(name, value)


class TimeseriesChunkStore(ChunkStoreAPI, models.Model, metaclass=_ChunkStoreBase):
    """One row per chunk (a calendar year or month) of one series; see the module docs."""

    chunk_index = models.IntegerField()
    start_ts = models.DateTimeField()
    dtype = models.CharField(max_length=16)
    updated_at = models.DateTimeField(auto_now=False)
    is_deleted = models.BooleanField(default=False)
    data = models.BinaryField()
    #: The core's chunk version (NULL on rows holcstore wrote): holcstore ignores it.
    row_version = models.BigIntegerField(null=True, blank=True, editable=False)

    CHUNK_AXIS: tuple[str, ...] = ("year", "month")
    STORE_TZ: str = "Europe/Paris"
    STORE_FREQ: str = "1h"
    ALLOW_CLIENT_SERVER_SYNC: bool = False
    CACHED_INDEX_SIZE: int = 120
    #: Unit of the DatetimeIndex that reads return ("s", "ms", "us", "ns"); None is the unit
    #: pandas gives new timestamps (``us`` on pandas 3, ``ns`` on pandas 2), as holcstore's
    #: own reads do.
    TIME_UNIT: str | None = None
    #: Opt-in curvestore framing of ``data`` (checksums, codec id, trimmed span); holcstore
    #: cannot read such rows. Both formats are always readable, so it may be switched.
    CURVESTORE_FORMAT: bool = False
    #: The ORM backend the core store runs on (handed to the API mixin from here, since the
    #: backend needs these models and the models need the mixin).
    _cs_backend_class: ClassVar[type[DjangoModelBackend]] = DjangoModelBackend

    objects = ChunkQuerySet.as_manager()

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        options.validate_settings(cls)

    def delete(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """Delete this chunk through the queryset (``keep_tracking=True``: a tombstone)."""
        return type(self)._default_manager.filter(pk=self.pk).delete(**kwargs)

# holcstore's one-blob-per-series models and its DataFrame store (in their own modules).
from curvestore.adapters.django.dataframe_store import DataFrameStore  # noqa: E402
from curvestore.adapters.django.lc_store import Store  # noqa: E402
from curvestore.adapters.django.series_store import TimeseriesStore  # noqa: E402

__all__ += ["DataFrameStore", "Store", "TimeseriesStore"]
