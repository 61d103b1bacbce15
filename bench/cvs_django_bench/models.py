"""The adapter's chunk stores, configured exactly as bench/hostore_bench's holcstore model:
keys (site, kind), month chunks, 15 min, Europe/Paris. Only the import differs.

``AdapterLoadCurve`` writes holcstore's blob format (the drop-in default);
``AdapterFramedLoadCurve`` opts into curvestore's framing (``CURVESTORE_FORMAT = True``).
Each has its own table; bench/django_adapter.py creates them with the schema editor.
"""

from django.db import models

from curvestore.adapters.django.models import TimeseriesChunkStore


class AdapterLoadCurve(TimeseriesChunkStore):
    site = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)

    CHUNK_AXIS = ("year", "month")
    STORE_TZ = "Europe/Paris"
    STORE_FREQ = "15min"

    class Meta:
        app_label = "cvs_django_bench"


class AdapterFramedLoadCurve(TimeseriesChunkStore):
    site = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)

    CHUNK_AXIS = ("year", "month")
    STORE_TZ = "Europe/Paris"
    STORE_FREQ = "15min"
    CURVESTORE_FORMAT = True

    class Meta:
        app_label = "cvs_django_bench"
