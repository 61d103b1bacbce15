"""``DjangoModelBackend``: a chunk-store model class as a curvestore :class:`Backend`.

One row of the model is one chunk: the key fields, ``chunk_index`` (``year`` or
``year * 12 + month - 1``, the same numbering as the core and holcstore), ``start_ts``,
``dtype``, ``data`` (see :mod:`.compat` for both blob formats), ``updated_at``, ``is_deleted``
(a tombstone) and ``row_version`` (the core's chunk version; NULL on rows holcstore wrote).

A transaction (:meth:`begin`) is a ``transaction.atomic`` block, committed or rolled back by
its ``commit`` or ``abort``, with ``select_for_update`` on the rows the core reads; the commit
then locks the store's manifest row, takes versions from its counter, writes the
chunk rows and appends the change feed. That lock is the last one taken and is held until
commit, so versions follow commit order on PostgreSQL too and a feed reader never skips a
late commit. Two writers creating the same new chunk meet on the unique constraint: the loser
gets :class:`ConflictError` and the core re-runs its read-merge-write.

holcstore rows are decoded on read and presented to the core as trimmed ``"none"``-codec
records (checksums computed on read: holcstore's format carries none).

On PostgreSQL with psycopg 3, the same rows, locks and commit order are implemented by
statements on Django's own connection instead of the ORM (see :mod:`._postgres`): binary
reads, binary COPY of new chunks while the core prepares the next series, and small commits
in one pipelined round trip.

The parts live in their own modules: the model, its grid and row format (:mod:`._base`), reads
and scans (:mod:`._reads`), the change feed (:mod:`._feed`) and the transaction with its commit
path (:mod:`._transaction`); this class puts them together with the manifest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from django.db import IntegrityError as DjangoIntegrityError
from django.db import transaction

from curvestore.adapters.django._feed import DjangoFeed
from curvestore.adapters.django._reads import DjangoReads
from curvestore.adapters.django._transaction import DjangoTransaction, lost_races
from curvestore.adapters.django.bookkeeping import StoreManifest, SyncState
from curvestore.adapters.django.options import model_config
from curvestore.core.config import StoreConfig
from curvestore.core.records import SeriesKey
from curvestore.core.url import StoreURL
from curvestore.errors import ConfigMismatchError, ConfigurationError, StoreExistsError

__all__ = ["DjangoModelBackend"]

_OR_BATCH = 200


def _ensure_django() -> None:
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()


class DjangoModelBackend(DjangoReads, DjangoFeed):
    """The rows of a ``TimeseriesChunkStore`` subclass (``django://app_label.Model``)."""

    schemes = ("django",)

    @classmethod
    def from_url(cls, url: StoreURL, *, read_only: bool = False) -> DjangoModelBackend:
        """``django://app_label.ModelName[?using=alias]``; sets Django up if needed
        (``DJANGO_SETTINGS_MODULE``)."""
        url.reject_unknown_options(frozenset({"using"}))
        label = (url.netloc + url.path).strip("/")
        _ensure_django()
        from django.apps import apps

        from curvestore.adapters.django.api import ChunkStoreAPI

        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as exc:
            raise ConfigurationError(f"django://{label}: no such model ({exc})") from exc
        if not issubclass(model, ChunkStoreAPI):
            raise ConfigurationError(f"django://{label} is not a TimeseriesChunkStore")
        return cls(model, using=url.options.get("using"), read_only=read_only)

    def __repr__(self) -> str:
        return f"DjangoModelBackend({self.model._meta.label}, using={self.using!r})"

    # -- what the commit uses ---------------------------------------------------------------
    def _existing_ids(self, refs: list[tuple[SeriesKey, int]]) -> dict[tuple[SeriesKey, int], int]:
        keys = sorted({k for k, _ in refs})
        chunks = sorted({c for _, c in refs})
        out: dict[tuple[SeriesKey, int], int] = {}
        n = len(self.names)
        for i in range(0, len(keys), _OR_BATCH):
            qs = self._qs().filter(self._keys_q(keys[i:i + _OR_BATCH]), chunk_index__in=chunks)
            for row in qs.values_list(*self.names, "chunk_index", "pk"):
                out[(tuple(row[:n]), row[n])] = row[n + 1]
        return out

    def _manifest_json(self) -> str:
        """The manifest recorded if a commit finds none (a new store id each time)."""
        return json.dumps({**self.model_config.manifest(), "store_id": uuid.uuid4().hex})

    def _manifest_row(self) -> StoreManifest | None:
        return StoreManifest.objects.using(self.using).filter(store=self.table).first()

    def _lock_manifest(self) -> StoreManifest:
        rows = StoreManifest.objects.using(self.using).select_for_update()
        row = rows.filter(store=self.table).first()
        if row is None:  # created lazily (the ORM API), e.g. after a test flush
            # a concurrent writer may create it first: then its row is the one to lock
            with suppress(DjangoIntegrityError), transaction.atomic(using=self.using):
                self._insert_manifest(model_config(self.model, uuid.uuid4().hex).manifest())
            row = rows.get(store=self.table)
        return row

    def _insert_manifest(self, manifest: dict[str, Any]) -> None:
        StoreManifest.objects.using(self.using).create(
            store=self.table, manifest=json.dumps(manifest), last_version=0)

    # -- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        row = self._manifest_row()
        return None if row is None else json.loads(row.manifest)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        """Record the store; its keys and grid must be the model's (ConfigMismatchError)."""
        wanted = StoreConfig.from_manifest(manifest)
        mine = self.model_config
        differences = {name: (getattr(mine, name), getattr(wanted, name))
                       for name in ("keys", "freq", "tz", "chunking", "dtype")
                       if getattr(mine, name) != getattr(wanted, name)}
        if differences:
            raise ConfigMismatchError(differences)
        try:
            with transaction.atomic(using=self.using):
                if self._manifest_row() is not None:
                    raise StoreExistsError(f"a store already exists at {self!r}")
                self._insert_manifest(manifest)
        except DjangoIntegrityError as exc:
            raise StoreExistsError(f"a store already exists at {self!r}") from exc

    # -- writes ----------------------------------------------------------------------------
    def begin(self, keys: Sequence[SeriesKey]) -> DjangoTransaction:
        """Enter a ``transaction.atomic`` block (a savepoint inside the caller's own block),
        which the transaction's ``commit`` or ``abort`` leaves."""
        atomic = transaction.atomic(using=self.using)
        with lost_races():  # SQLite's BEGIN IMMEDIATE waits for the write lock
            atomic.__enter__()
        return DjangoTransaction(self, keys, atomic)

    def get_state(self, name: str) -> str | None:
        row = SyncState.objects.using(self.using).filter(store=self.table, name=name).first()
        return None if row is None else row.value
