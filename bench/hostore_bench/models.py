"""The concrete holcstore chunk store: keys (site, kind), month chunks, 15 min, Europe/Paris.

holcstore's metaclass adds the unique constraint and indexes on (keys..., chunk_index) and names
the table after the frozen configuration; bench/run.py creates it with the schema editor.
"""

from django.db import models
from hostore.models import TimeseriesChunkStore


class BenchLoadCurve(TimeseriesChunkStore):
    site = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)

    CHUNK_AXIS = ("year", "month")
    STORE_TZ = "Europe/Paris"
    STORE_FREQ = "15min"

    class Meta:
        app_label = "hostore_bench"
