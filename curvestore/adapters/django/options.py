"""Class settings of chunk-store models: validation, key fields, frozen table name, config.

The settings are validated when a subclass is defined (``ValueError`` naming the model and the
bad value, as holcstore does); the grid they describe must be exact (curvestore refuses
periods that do not start on the grid, e.g. ``STORE_FREQ = '7min'``).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from curvestore.core.config import KeySchema, StoreConfig, normalize_freq, normalize_tz
from curvestore.core.grid import get_grid, resolve_time_unit
from curvestore.errors import ConfigurationError

if TYPE_CHECKING:  # models imports this module; the import is for the annotations only
    from curvestore.adapters.django.models import TimeseriesChunkStore

__all__ = ["FROZEN_ATTRS", "RESERVED_FIELDS", "key_schema", "model_config", "table_name",
           "validate_settings"]

#: Fields owned by the abstract model (holcstore's names, plus ``row_version``).
RESERVED_FIELDS = frozenset({"id", "chunk_index", "start_ts", "data", "dtype", "updated_at",
                             "is_deleted", "row_version"})
FROZEN_ATTRS = ("CHUNK_AXIS", "STORE_TZ", "STORE_FREQ", "ALLOW_CLIENT_SERVER_SYNC")
ALLOWED_AXES = {("year",): "year", ("year", "month"): "month"}
PG_MAX_NAME = 63

_INT_TYPES = {"IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
              "PositiveSmallIntegerField", "PositiveBigIntegerField"}
_STR_TYPES = {"CharField", "TextField", "SlugField"}


def validate_settings(cls: type[TimeseriesChunkStore]) -> None:
    """Raise ValueError for an invalid class setting of chunk-store model ``cls``."""
    name = cls.__name__
    axis = tuple(getattr(cls, "CHUNK_AXIS", ()))
    if axis not in ALLOWED_AXES:
        raise ValueError(f"Invalid CHUNK_AXIS {cls.CHUNK_AXIS!r} for model {name}: allowed "
                         f"{sorted(ALLOWED_AXES)}")
    try:
        freq = normalize_freq(cls.STORE_FREQ)
    except ConfigurationError as exc:
        raise ValueError(f"Invalid STORE_FREQ {cls.STORE_FREQ!r} for model {name}: {exc}") from None
    try:
        tz = normalize_tz(cls.STORE_TZ)
    except ConfigurationError:
        raise ValueError(f"Invalid STORE_TZ {cls.STORE_TZ!r} for model {name}") from None
    try:
        grid = get_grid(int(StoreConfig.build(keys=["k"], freq=freq, tz=tz).freq_ns), tz,
                        ALLOWED_AXES[axis])
    except ConfigurationError as exc:
        raise ValueError(f"Invalid store grid for model {name}: {exc}") from None
    try:
        grid.check_unit(resolve_time_unit(getattr(cls, "TIME_UNIT", None)))
    except ConfigurationError as exc:
        raise ValueError(f"Invalid TIME_UNIT for model {name}: {exc}") from None
    if not isinstance(cls.ALLOW_CLIENT_SERVER_SYNC, bool):
        raise ValueError(f"ALLOW_CLIENT_SERVER_SYNC must be a bool for model {name}")
    size = cls.CACHED_INDEX_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"CACHED_INDEX_SIZE must be an int >= 0 for model {name}, got {size!r}")
    if not isinstance(getattr(cls, "CURVESTORE_FORMAT", False), bool):
        raise ValueError(f"CURVESTORE_FORMAT must be a bool for model {name}")


def key_fields(meta: Any) -> list[models.Field]:
    """The user's key fields, in declaration order (a proxy model's are its table's)."""
    fields = meta.concrete_model._meta.local_fields if meta.proxy else meta.local_fields
    return [f for f in fields if not f.auto_created and f.name not in RESERVED_FIELDS]


def key_schema(model: type[models.Model]) -> KeySchema:
    """The core key schema of a concrete model: int and str fields only.

    Built directly (not through ``KeySchema.from_spec``) because names the core reserves for
    its own columns, such as ``version``, are ordinary key fields here.
    """
    names, types = [], []
    for field in key_fields(model._meta):
        kind = field.get_internal_type()
        if kind in _INT_TYPES:
            types.append("int")
        elif kind in _STR_TYPES:
            types.append("str")
        else:
            raise ImproperlyConfigured(
                f"{model.__name__}.{field.name}: key fields of a chunk store must be integer or "
                f"text fields, got {kind}"
            )
        names.append(field.name)
    return KeySchema(tuple(names), tuple(types))


def model_config(model: type[models.Model], store_id: str | None = None) -> StoreConfig:
    """The frozen core configuration a model's class settings describe."""
    kwargs: dict[str, Any] = {} if store_id is None else {"store_id": store_id}
    return StoreConfig(
        keys=key_schema(model), freq=normalize_freq(model.STORE_FREQ),  # type: ignore[attr-defined]
        tz=normalize_tz(model.STORE_TZ),  # type: ignore[attr-defined]
        chunking=ALLOWED_AXES[tuple(model.CHUNK_AXIS)],  # type: ignore[attr-defined]
        codec="lz4", dtype="float64", **kwargs,
    )


def signature(cls: Any) -> str:
    """holcstore's table signature: ``ca<axis>_f<freq>_tz<tz>_<sync|nosync>`` (raw values)."""
    return "_".join([
        "ca" + "_".join(cls.CHUNK_AXIS),
        "f" + cls.STORE_FREQ,
        "tz" + cls.STORE_TZ.replace("/", "_"),
        "sync" if cls.ALLOW_CLIENT_SERVER_SYNC else "nosync",
    ])


def table_name(app_label: str, model_name: str, sig: str, max_len: int = PG_MAX_NAME) -> str:
    """``<app>_<model>__<sig>``; past ``max_len``, cut and suffixed with an 8-hex digest
    (byte-for-byte holcstore's rule, so existing tables keep their names)."""
    base = f"{app_label}_{model_name.lower()}__{sig}"
    if len(base) <= max_len:
        return base
    digest = blake2b(base.encode(), digest_size=4).hexdigest()
    return f"{base[:max_len - 9]}_{digest}"


def index_name(db_table: str, suffix: str, max_len: int = 30) -> str:
    """holcstore's constraint/index names: ``<table>_<suffix>``, else prefix + 4-hex digest."""
    base = f"{db_table}_{suffix}"
    if len(base) <= max_len:
        return base
    digest = blake2b(base.encode(), digest_size=2).hexdigest()
    return f"{base[:max_len - 5]}_{digest}"
