"""``ChunkQuerySet``: the queryset every chunk-store manager must derive from.

``delete()`` is holcstore's: ``keep_tracking=True`` turns the matching chunks into tombstones
(``is_deleted``, empty data, a new ``updated_at``), which replicas then learn through the
change feed; ``keep_tracking=False`` deletes rows for good and is refused (ValueError) on
models with ``ALLOW_CLIENT_SERVER_SYNC = True``, where it would leave replicas stale.
"""

from __future__ import annotations

from typing import Any

from django.db import models

__all__ = ["ChunkQuerySet"]


class ChunkQuerySet(models.QuerySet):
    """Queryset of chunk rows with tombstone-aware deletion."""

    def delete(self, keep_tracking: bool = False,  # type: ignore[override]
               _disable_sync_safety: bool = False) -> Any:
        """Soft-delete (``keep_tracking=True``, returns the number of chunks tombstoned) or
        hard-delete (returns Django's ``(count, per_model)``) the matching chunks."""
        model = self.model
        if not keep_tracking:
            if model.ALLOW_CLIENT_SERVER_SYNC and not _disable_sync_safety:
                raise ValueError(
                    f"Trying to delete {model.__name__} objects with ALLOW_CLIENT_SERVER_SYNC="
                    "True and keep_tracking=False: client stores would never learn of it; "
                    "use delete(keep_tracking=True)"
                )
            return super().delete()
        return model._cs_tombstone(self)
