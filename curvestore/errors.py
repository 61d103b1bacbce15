"""The one exception tree of curvestore.

Every error raised on purpose by curvestore derives from :class:`CurvestoreError` and, where
a built-in exception has the same meaning, from that built-in too, so ``except ValueError``
keeps working for callers that do not know curvestore. Errors carry the facts that caused
them as attributes (``key``, ``scheme``, ``codec_id`` ...) so callers need not parse messages.
Driver errors (psycopg, botocore, OS errors) are translated at the backend boundary and
chained with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BackendNotInstalledError",
    "ConfigMismatchError",
    "ConfigurationError",
    "ConflictError",
    "CurvestoreError",
    "DuplicatePointError",
    "GridError",
    "IntegrityError",
    "InvalidCursorError",
    "InvalidDataError",
    "InvalidKeyError",
    "NotFoundError",
    "ReadOnlyError",
    "SeriesExistsError",
    "SeriesNotFoundError",
    "StoreExistsError",
    "StoreNotFoundError",
    "SyncError",
    "UnknownBackendError",
    "UnknownCodecError",
]


class CurvestoreError(Exception):
    """Root of every error curvestore raises on purpose."""


class ConfigurationError(CurvestoreError, ValueError):
    """A store, URL or option is invalid."""


class UnknownBackendError(ConfigurationError):
    """No backend is registered for a URL scheme."""

    def __init__(self, scheme: str, available: Iterable[str]) -> None:
        self.scheme = scheme
        self.available = sorted(available)
        super().__init__(
            f"unknown store URL scheme {scheme!r}; available schemes: "
            f"{', '.join(self.available) or 'none'}"
        )


class UnknownCodecError(ConfigurationError):
    """No codec is registered under an id."""

    def __init__(self, codec_id: str, available: Iterable[str]) -> None:
        self.codec_id = codec_id
        self.available = sorted(available)
        super().__init__(
            f"unknown codec {codec_id!r}; available codecs: {', '.join(self.available) or 'none'}"
        )


class ConfigMismatchError(ConfigurationError):
    """A store was opened with settings that contradict its manifest."""

    def __init__(self, differences: Mapping[str, tuple[Any, Any]]) -> None:
        self.differences = dict(differences)
        detail = "; ".join(
            f"{name}: store has {have}, asked for {want}"
            for name, (have, want) in sorted(self.differences.items())
        )
        super().__init__(f"the store's frozen configuration differs from the one given: {detail}")


class BackendNotInstalledError(CurvestoreError, ImportError):
    """A plugin is registered but its driver package is not installed."""

    def __init__(self, what: str, extra: str | None, cause: str = "") -> None:
        self.what = what
        self.extra = extra
        hint = f'; install it with: pip install "curvestore[{extra}]"' if extra else ""
        reason = f" ({cause})" if cause else ""
        super().__init__(f"{what} needs a package that is not installed{reason}{hint}")


class StoreExistsError(ConfigurationError):
    """create_store was asked to create a store where one already exists (at ``url``, the
    redacted URL, when known)."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class NotFoundError(CurvestoreError, LookupError):
    """Something looked up does not exist."""


class StoreNotFoundError(NotFoundError):
    """open_store found no store (no manifest) at the location (``url``, redacted, when
    known)."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class SeriesNotFoundError(NotFoundError):
    """A series that must exist does not."""

    def __init__(self, key: Mapping[str, Any]) -> None:
        self.key = dict(key)
        super().__init__(f"no series {self.key}")


class InvalidKeyError(CurvestoreError, ValueError):
    """A series key misses attributes, names unknown ones, or has values of the wrong type."""

    def __init__(self, message: str, key: Any = None) -> None:
        self.key = key
        super().__init__(message)


class InvalidDataError(CurvestoreError, ValueError):
    """Input values or index cannot be stored as given (wrong index type, naive, duplicates,
    non-numeric or infinite values)."""


class GridError(InvalidDataError):
    """Timestamps are not on the store's grid (finer than or not aligned to ``freq``)."""


class DuplicatePointError(InvalidDataError):
    """Long-format input holds two rows for one point: the same series (``key``, a dict) at
    the same instant (``timestamp``, in the store's time zone)."""

    def __init__(self, key: Mapping[str, Any], timestamp: Any, detail: str = "") -> None:
        self.key = dict(key)
        self.timestamp = timestamp
        shown = ", ".join(f"{k}={v!r}" for k, v in self.key.items())
        super().__init__(f"two rows for series {shown} at {timestamp}{detail}; each series "
                         "takes one value per timestamp")


class SeriesExistsError(CurvestoreError, ValueError):
    """An insert targeted a series that already has live chunks."""

    def __init__(self, keys: Iterable[Mapping[str, Any]]) -> None:
        self.keys = [dict(k) for k in keys]
        shown = ", ".join(str(k) for k in self.keys[:5])
        more = f" and {len(self.keys) - 5} more" if len(self.keys) > 5 else ""
        super().__init__(
            f"series already exist: {shown}{more}; use mode='update' or mode='replace'"
        )


class ConflictError(CurvestoreError):
    """A conditional write lost a race with another writer."""


class ReadOnlyError(CurvestoreError, PermissionError):
    """A write was attempted on a store opened read-only."""


class IntegrityError(CurvestoreError):
    """Stored bytes fail their checksum or cannot be decoded."""


class SyncError(CurvestoreError):
    """The change feed or a replication step cannot proceed (bad cursor, foreign store...)."""


class InvalidCursorError(SyncError, ValueError):
    """A change-feed cursor this store cannot accept: malformed, issued by another store or
    another kind of backend, or positioned beyond the end of the feed or between entries.

    Cursors carry a checksum, not a signature: they are not secret and can be forged, so
    every backend checks the position against its feed before using it. The message never
    repeats more than the start of the cursor.
    """

    def __init__(self, message: str, cursor: object = None) -> None:
        self.cursor = cursor
        super().__init__(message)
