"""``DataFrameStore``: holcstore 0.6's abstract model for one DataFrame per ``(client_id, key)``.

Subclass it (nothing to add) and run ``makemigrations``::

    class Features(DataFrameStore):
        pass

    Features.update_or_create_df(client_id=1, key="features_v1", df=frame, meta={"v": 1})
    frame = Features.load_df(1, "features_v1")          # None when absent

Each row holds the frame as Parquet (pyarrow, zstd) in ``payload`` and a JSON ``meta``. The
fields, the unique constraint ``unique_client_key`` and the ``(client_id, key)`` index are
holcstore's, so a table holcstore created is used as it is and rows written by either library
read with the other. Needs pyarrow (``pip install "curvestore[parquet]"``).

holcstore's behaviour is kept where callers can see it: ``meta`` must be a JSON-serialisable
dict and gets ``store_index`` (whether the frame's index was stored) set in place when
absent, the upsert returns ``(row, created)``, and rows keep ``created_at``/``updated_at``.
Beyond holcstore, ``client_id`` must be an integer and a ``meta`` that JSON cannot carry
(NaN, sets, ...) raises ``TypeError`` before anything is written.
"""

from __future__ import annotations

import io
import json
import logging
import numbers
from typing import Any

import pandas as pd
from django.db import models, router, transaction

__all__ = ["DataFrameStore"]

logger = logging.getLogger(__name__)


def _parquet_engine() -> str:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ImportError('DataFrameStore needs pyarrow: pip install "curvestore[parquet]"'
                          ) from exc
    return "pyarrow"


def _check_meta(meta: Any) -> dict:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    try:
        # allow_nan=False: PostgreSQL's jsonb refuses NaN, so SQLite must not accept it either
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable: {exc}") from exc
    return meta


class DataFrameStore(models.Model):
    """One Parquet-encoded DataFrame per ``(client_id, key)``; see the module docs."""

    client_id = models.IntegerField(db_index=True)
    key = models.CharField(max_length=255, db_index=True)
    meta = models.JSONField(default=dict, blank=True)
    payload = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["client_id", "key"])]  # noqa: RUF012 (Django Meta)
        # holcstore's name, kept so that its migrations and tables match (it is not
        # per-model: two concrete DataFrameStores in one database need their own Meta)
        constraints = [models.UniqueConstraint(  # noqa: RUF012 (Django Meta)
            fields=["client_id", "key"], name="unique_client_key")]

    @classmethod
    def update_or_create_df(cls, client_id: int, key: str, df: pd.DataFrame,
                            meta: dict | None = None, *, store_index: bool = True
                            ) -> tuple[DataFrameStore, bool]:
        """Store ``df`` under ``(client_id, key)``, replacing what was there; returns the row
        and whether it was created. ``store_index=False`` drops the frame's index."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas.DataFrame, not {type(df).__name__}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, not {key!r}")
        if not isinstance(client_id, numbers.Integral) or isinstance(client_id, bool):
            raise TypeError(f"client_id must be an integer, not {client_id!r}")
        meta = _check_meta(meta)
        meta.setdefault("store_index", store_index)
        buffer = io.BytesIO()
        df.to_parquet(buffer, engine=_parquet_engine(), compression="zstd", index=store_index)
        payload = buffer.getvalue()
        # update_or_create locks an existing row and, when two writers create the same one,
        # retries the read after the unique constraint refused the second insert
        with transaction.atomic(using=router.db_for_write(cls)):
            row, created = cls._default_manager.update_or_create(
                client_id=int(client_id), key=key, defaults={"meta": meta, "payload": payload})
        logger.info("DataFrame stored: client_id=%s key=%s rows=%d bytes=%d",
                    client_id, key, len(df), len(payload))
        return row, created

    @classmethod
    def load_df(cls, client_id: int, key: str) -> pd.DataFrame | None:
        """The DataFrame stored under ``(client_id, key)``, or None."""
        row = cls._default_manager.filter(client_id=client_id, key=key).only("payload").first()
        if row is None:
            return None
        return pd.read_parquet(io.BytesIO(row.payload), engine=_parquet_engine())
