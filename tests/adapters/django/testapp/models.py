"""Concrete chunk stores used by the tests (concrete models live only here)."""

from __future__ import annotations

import uuid

from django.db import models

from curvestore.adapters.django.models import TimeseriesChunkStore


class HolcStoreYearMonth(TimeseriesChunkStore):
    """holcstore's own test model (holcstore format, monthly chunks, 1h, Europe/Paris)."""

    version = models.IntegerField()
    kind_very_long_name_for_testing_purpose = models.CharField(max_length=50)
    CHUNK_AXIS = ("year", "month")


class HolcStoreNanoseconds(HolcStoreYearMonth):
    """The same table, its reads asking for nanosecond indexes."""

    TIME_UNIT = "ns"

    class Meta:
        proxy = True


class HolcStoreYear(TimeseriesChunkStore):
    version = models.IntegerField()
    kind_very_long_name_for_testing_purpose = models.CharField(max_length=50)
    CHUNK_AXIS = ("year",)


class HolcStoreUTC(TimeseriesChunkStore):
    version = models.IntegerField()
    kind_very_long_name_for_testing_purpose = models.CharField(max_length=50)
    STORE_TZ = "UTC"


class SyncStore(TimeseriesChunkStore):
    version = models.IntegerField()
    kind = models.CharField(max_length=5)
    ALLOW_CLIENT_SERVER_SYNC = True


class FramedStore(TimeseriesChunkStore):
    """The same as HolcStoreYearMonth, with curvestore's framing."""

    version = models.IntegerField()
    kind = models.CharField(max_length=50)
    CURVESTORE_FORMAT = True


class ReadmeChunkStore(TimeseriesChunkStore):
    """holcstore README's ``MyChunkedStore``, as written there."""

    # Custom fields (can be seen as "axis keys")
    version = models.IntegerField()
    kind = models.CharField(max_length=20)

    # Store settings
    CHUNK_AXIS = ("year", "month")
    STORE_TZ = "Europe/Paris"
    STORE_FREQ = "1h"
    ITER_CHUNK_SIZE = 200
    BULK_CREATE_BATCH_SIZE = 200


# Conformance-suite models: keys site/kind/n, 15 min, Europe/Paris, monthly chunks.
class _Conformance(TimeseriesChunkStore):
    site = models.CharField(max_length=20)
    kind = models.CharField(max_length=20)
    n = models.IntegerField()
    STORE_FREQ = "15min"

    class Meta:
        abstract = True


class FramedConformanceA(_Conformance):
    CURVESTORE_FORMAT = True


class FramedConformanceB(_Conformance):
    CURVESTORE_FORMAT = True


class _UuidConformance(_Conformance):
    """A primary key that is not an integer: the ORM paths on every database."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    CURVESTORE_FORMAT = True

    class Meta:
        abstract = True


class UuidConformanceA(_UuidConformance):
    """A concrete table for the suite (settings from its base)."""


class UuidConformanceB(_UuidConformance):
    """A concrete table for the suite (settings from its base)."""


class HolcConformanceA(_Conformance):
    """A concrete table for the suite (settings from its base)."""


class HolcConformanceB(_Conformance):
    """A concrete table for the suite (settings from its base)."""


# The suite's plain-name keys (``PLAIN_NAME_KEYS`` without ``id`` and ``data``, which are
# holcstore's own model fields), in the order of the suite's key schema.
class _PlainName(TimeseriesChunkStore):
    version = models.IntegerField()
    start = models.CharField(max_length=20)
    end = models.CharField(max_length=20)
    count = models.IntegerField()
    size = models.IntegerField()
    kind = models.CharField(max_length=20)
    type = models.CharField(max_length=20)
    value = models.IntegerField()
    chunk = models.IntegerField()
    key = models.CharField(max_length=20)
    payload = models.CharField(max_length=20)
    deleted = models.IntegerField()
    cursor = models.CharField(max_length=20)
    limit = models.IntegerField()
    STORE_FREQ = "15min"

    class Meta:
        abstract = True


class PlainNameFramed(_PlainName):
    CURVESTORE_FORMAT = True


class PlainNameUuid(_PlainName):
    """The ORM paths (a UUID primary key), as ``UuidConformanceA``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    CURVESTORE_FORMAT = True


class PlainNameHolc(_PlainName):
    """A concrete table for the suite (settings from its base)."""


# The frame suite's single-key store: key meter, 15 min, Europe/Paris, monthly chunks.
class _SingleKey(TimeseriesChunkStore):
    meter = models.CharField(max_length=20)
    STORE_FREQ = "15min"

    class Meta:
        abstract = True


class SingleKeyFramed(_SingleKey):
    CURVESTORE_FORMAT = True


class SingleKeyUuid(_SingleKey):
    """The ORM paths (a UUID primary key), as ``UuidConformanceA``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    CURVESTORE_FORMAT = True


class SingleKeyHolc(_SingleKey):
    """A concrete table for the suite (settings from its base)."""


# Stateful-suite models: keys site/n, hourly, UTC (the suite's random store).
class _Stateful(TimeseriesChunkStore):
    site = models.CharField(max_length=20)
    n = models.IntegerField()
    STORE_TZ = "UTC"

    class Meta:
        abstract = True


class StatefulFramed(_Stateful):
    CURVESTORE_FORMAT = True


class StatefulHolc(_Stateful):
    """A concrete table for the suite (settings from its base)."""


# holcstore's Store and TimeseriesStore (test_legacy_stores.py).
from curvestore.adapters.django.models import Store, TimeseriesStore  # noqa: E402


class LcStore(Store):
    """holcstore's TestDataStore."""

    class Meta(Store.Meta):
        abstract = False


class LcStoreWithYear(Store):
    """holcstore's TestDataStoreWithAttribute."""

    year = models.IntegerField()

    class Meta(Store.Meta):
        abstract = False
        constraints = (models.UniqueConstraint(fields=["prm", "client_id", "year", "created_at"],
                                               name="testapp_lcstorewithyear_unq"),)


class SeriesStore(TimeseriesStore):
    """holcstore's TestTimeseriesStoreWithAttribute."""

    year = models.IntegerField()
    kind = models.CharField(max_length=100)

    class Meta(TimeseriesStore.Meta):
        unique_together = ("year", "kind")


class KeylessStore(TimeseriesChunkStore):
    """A chunk store without key fields: the whole table is one series."""

    CHUNK_AXIS = ("year", "month")


class KeylessReplica(TimeseriesChunkStore):
    """Another one, the target of KeylessStore's exported chunks."""

    CHUNK_AXIS = ("year", "month")


# holcstore 0.6's DataFrameStore (test_dataframe_store.py), its Meta unchanged: the one
# concrete DataFrameStore of this database, so holcstore's constraint name is free.
from curvestore.adapters.django.models import DataFrameStore  # noqa: E402


class Frames(DataFrameStore):
    """holcstore's ``DefaultDataFrameStore``."""
