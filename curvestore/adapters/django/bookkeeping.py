"""The adapter's own tables, shared by every chunk-store model of a database.

* ``StoreManifest``: one row per chunk-store table: the frozen core manifest (store id, keys,
  grid) and the version counter. Commits lock this row last, so versions (and the change
  feed) follow commit order on every database, with no gap for a reader to skip.
* ``ChunkChange``: the change feed, one row per committed chunk write or tombstone.
* ``SyncState``: small named values saved in the same commit as replicated chunks (cursors).
"""

from __future__ import annotations

from django.db import models

__all__ = ["ChunkChange", "StoreManifest", "SyncState"]


class StoreManifest(models.Model):
    store = models.CharField(max_length=255, unique=True)
    manifest = models.TextField()
    last_version = models.BigIntegerField(default=0)

    class Meta:
        app_label = "curvestore"
        db_table = "curvestore_manifest"


class ChunkChange(models.Model):
    store = models.CharField(max_length=255)
    version = models.BigIntegerField()
    key = models.TextField()  # JSON list of the key values, in the store's key order
    chunk = models.IntegerField()
    deleted = models.BooleanField(default=False)

    class Meta:
        app_label = "curvestore"
        db_table = "curvestore_change"
        constraints = [models.UniqueConstraint(  # noqa: RUF012 (Django Meta)
                       fields=["store", "version"], name="curvestore_change_version")]


class SyncState(models.Model):
    store = models.CharField(max_length=255)
    name = models.CharField(max_length=512)
    value = models.TextField()

    class Meta:
        app_label = "curvestore"
        db_table = "curvestore_sync_state"
        constraints = [models.UniqueConstraint(  # noqa: RUF012 (Django Meta)
                       fields=["store", "name"], name="curvestore_sync_state_name")]
