"""A store's frozen configuration and its key schema.

The configuration is written once, as the store's manifest, when the store is created. Opening
a store with settings that contradict the manifest raises :class:`ConfigMismatchError`: nothing
may silently change the freq, tz, chunking, dtype or keys of existing data. Only the default
codec may change over a store's life, since every chunk records the codec that encoded it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from curvestore.core.grid import freq_text
from curvestore.core.records import SeriesKey
from curvestore.errors import (
    ConfigMismatchError,
    ConfigurationError,
    IntegrityError,
    InvalidKeyError,
)

__all__ = ["KeySchema", "StoreConfig", "FORMAT_VERSION", "RESERVED_PREFIX"]

FORMAT_VERSION = 1
CHUNKINGS = ("month", "year")
DTYPES = ("float64",)
KEY_TYPES: dict[str, type] = {"str": str, "int": int}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: An int key value as text: ASCII digits and an optional sign, nothing else (``int()`` would
#: also take spaces, ``_`` separators and non-ASCII digits, which a key given as text never
#: means).
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_INT64_DIGITS = 19
#: Names starting with this prefix belong to curvestore: backends name their own columns and
#: fields with it (PostgreSQL's ``_version``, the HTTP protocol's ``_cursor``...), so a key
#: attribute never does, and every other name is the user's.
RESERVED_PREFIX = "_"


def _type_name(kind: Any) -> str:
    if kind in (str, "str"):
        return "str"
    if kind in (int, "int"):
        return "int"
    raise ConfigurationError(f"key types must be str or int, got {kind!r}")


@dataclass(frozen=True)
class KeySchema:
    """The ordered key attributes of a store: names and types (``"str"`` or ``"int"``)."""

    names: tuple[str, ...]
    types: tuple[str, ...]

    @classmethod
    def from_spec(cls, keys: Mapping[str, Any] | Iterable[str], *,
                  existing: bool = False) -> KeySchema:
        """Validate a key spec: ``{name: str | int}`` (or names, all ``str``).

        ``existing=True`` describes the keys of a store that already exists: names with the
        reserved prefix, which stores created before the prefix was reserved may have, are
        accepted there (they are refused for new stores).
        """
        items = list(keys.items()) if isinstance(keys, Mapping) else [(k, str) for k in keys]
        if not items:
            raise ConfigurationError("a store needs at least one key attribute")
        names, types = [], []
        for name, kind in items:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigurationError(
                    f"key name {name!r} is invalid: use lower-case letters, digits and '_', "
                    "starting with a letter (at most 63 characters)"
                )
            if name.startswith(RESERVED_PREFIX) and not existing:
                raise ConfigurationError(
                    f"key name {name!r} starts with {RESERVED_PREFIX!r}, the prefix reserved "
                    "for curvestore's own columns and fields; start it with a letter"
                )
            names.append(name)
            types.append(_type_name(kind))
        if len(set(names)) != len(names):
            raise ConfigurationError(f"duplicate key names in {names}")
        return cls(tuple(names), tuple(types))

    def __str__(self) -> str:
        return ", ".join(f"{n}:{t}" for n, t in zip(self.names, self.types, strict=True))

    def to_json(self) -> list[dict[str, str]]:
        return [{"name": n, "type": t} for n, t in zip(self.names, self.types, strict=True)]

    @classmethod
    def from_json(cls, data: list[dict[str, str]]) -> KeySchema:
        return cls(tuple(d["name"] for d in data), tuple(d["type"] for d in data))

    def _value(self, name: str, kind: str, value: Any, key: Any) -> Any:
        if kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise InvalidKeyError(
                    f"key {name!r} must be an int, got {type(value).__name__} {value!r}", key
                )
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise InvalidKeyError(
                    f"key {name!r} must fit in a signed 64-bit integer, got {value!r}", key
                )
            return int(value)
        if not isinstance(value, str):
            raise InvalidKeyError(
                f"key {name!r} must be a str, got {type(value).__name__} {value!r}", key
            )
        if "\x00" in value:
            raise InvalidKeyError(f"key {name!r} contains a NUL character", key)
        if not value.isascii():
            try:  # every backend stores keys as UTF-8, which has no lone surrogates
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidKeyError(
                    f"key {name!r} is not valid Unicode text ({exc.reason} at position "
                    f"{exc.start}): {value!r}", key
                ) from None
        return value

    def key(self, attrs: Mapping[str, Any]) -> SeriesKey:
        """Validate a complete key dict and return it as a :data:`SeriesKey` tuple."""
        if not isinstance(attrs, Mapping):
            raise InvalidKeyError(
                f"a series key is a dict of {list(self.names)}, got {type(attrs).__name__}", attrs
            )
        unknown = set(attrs) - set(self.names)
        if unknown:
            raise InvalidKeyError(
                f"unknown key attributes {sorted(unknown)}; this store's keys are "
                f"{list(self.names)}", attrs
            )
        missing = [n for n in self.names if n not in attrs]
        if missing:
            raise InvalidKeyError(
                f"missing key attributes {missing}: a single series needs all of "
                f"{list(self.names)}", attrs
            )
        return tuple(
            self._value(n, t, attrs[n], attrs) for n, t in zip(self.names, self.types, strict=True)
        )

    def key_from_tuple(self, values: Any) -> SeriesKey:
        """Validate a key given as a tuple in key order (``write_many``'s mapping keys)."""
        if not isinstance(values, tuple):
            values = (values,)
        if len(values) != len(self.names):
            raise InvalidKeyError(
                f"key {values!r} has {len(values)} values; expected {len(self.names)} "
                f"in the order {list(self.names)}", values
            )
        return self.key(dict(zip(self.names, values, strict=True)))

    def filter(self, where: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate a partial key (a filter): known names, right types. ``None`` is all."""
        if where is None:
            return {}
        if not isinstance(where, Mapping):
            raise InvalidKeyError(f"a filter is a dict of key attributes, got {where!r}", where)
        unknown = set(where) - set(self.names)
        if unknown:
            raise InvalidKeyError(
                f"unknown key attributes {sorted(unknown)} in filter; this store's keys are "
                f"{list(self.names)}", where
            )
        return {
            n: self._value(n, t, where[n], where)
            for n, t in zip(self.names, self.types, strict=True)
            if n in where
        }

    def filter_from_text(self, text: Mapping[str, str], *,
                         others: Iterable[str] = ()) -> dict[str, Any]:
        """A filter (a partial key) from text values, such as command-line ``key=value``
        arguments or query parameters: each value converted to its key's type, then validated
        as :meth:`filter` does (an int must fit in a signed 64-bit integer).

        Parameters
        ----------
        text
            ``{name: value}``, every value a string.
        others
            Other names the caller's input may hold (``_cursor``, ``since``...), listed in the
            message for unknown names so that it tells the whole truth.

        Raises
        ------
        InvalidKeyError
            A name that is not a key attribute, an int key whose value is not an integer
            (ASCII digits with an optional sign) or does not fit in 64 bits, or a str value the
            backends cannot store (a NUL character, a lone surrogate).
        """
        unknown = [name for name in text if name not in self.names]
        if unknown:
            known = (f"this store's keys are {', '.join(self.names)}" if self.names
                     else "this store has no key attributes")
            extra = list(others)
            raise InvalidKeyError(
                f"unknown key {', '.join(map(repr, unknown))}; {known}"
                + (f" (and {', '.join(extra)})" if extra else ""), dict(text))
        kinds = dict(zip(self.names, self.types, strict=True))
        typed = {name: _int_from_text(name, value, text) if kinds[name] == "int" else value
                 for name, value in text.items()}
        return self.filter(typed)

    def as_dict(self, key: SeriesKey) -> dict[str, Any]:
        return dict(zip(self.names, key, strict=True))

    def matches(self, key: SeriesKey, where: Mapping[str, Any]) -> bool:
        return all(key[self.names.index(n)] == v for n, v in where.items())


def _int_from_text(name: str, value: Any, text: Mapping[str, Any]) -> Any:
    """``value`` as an int when it is the text of one; anything else is left for
    :meth:`KeySchema.filter` to refuse with its typed message."""
    if not isinstance(value, str):
        return value
    if not _INT_TEXT.fullmatch(value):
        raise InvalidKeyError(f"key {name!r} is an int key; {_clipped(value)!r} is not an "
                              "integer", dict(text))
    if len(value.lstrip("+-").lstrip("0")) > _INT64_DIGITS:  # before int() reads a huge text
        raise InvalidKeyError(f"key {name!r} must fit in a signed 64-bit integer, got "
                              f"{_clipped(value)}", dict(text))
    return int(value)


def _clipped(text: str, size: int = 40) -> str:
    return text if len(text) <= size else f"{text[:size]}..."


@dataclass(frozen=True)
class StoreConfig:
    """Everything that is frozen when a store is created."""

    keys: KeySchema
    freq: str
    tz: str
    chunking: str = "month"
    codec: str = "lz4"
    dtype: str = "float64"
    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def build(
        cls,
        *,
        keys: Mapping[str, Any] | Iterable[str],
        freq: str,
        tz: str,
        chunking: str = "month",
        codec: str = "lz4",
        dtype: str = "float64",
    ) -> StoreConfig:
        schema = keys if isinstance(keys, KeySchema) else KeySchema.from_spec(keys)
        return cls(
            keys=schema, freq=normalize_freq(freq), tz=normalize_tz(tz),
            chunking=_choice("chunking", chunking, CHUNKINGS), codec=str(codec),
            dtype=_choice("dtype", dtype, DTYPES),
        )

    @property
    def freq_ns(self) -> int:
        return int(pd.Timedelta(self.freq).value)

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "curvestore",
            "format_version": FORMAT_VERSION,
            "store_id": self.store_id,
            "keys": self.keys.to_json(),
            "freq": self.freq,
            "tz": self.tz,
            "chunking": self.chunking,
            "dtype": self.dtype,
            "codec": self.codec,
        }

    @classmethod
    def from_manifest(cls, manifest: Any, where: str = "the store") -> StoreConfig:
        """The configuration a manifest records. A manifest that is not a curvestore one, or of
        another format version, raises ConfigurationError; a damaged one (a field missing or
        of the wrong type) raises IntegrityError. ``where`` names the store in messages."""
        if not isinstance(manifest, Mapping) or manifest.get("format") != "curvestore":
            raise ConfigurationError(
                f"{where} holds something that is not a curvestore store (its manifest does not "
                "say format = 'curvestore')")
        fields = _ManifestFields(manifest, where)
        version = manifest.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise fields.damaged(f"field 'format_version' must be an integer, got {version!r}")
        if version != FORMAT_VERSION:
            raise ConfigurationError(
                f"store format version {version} is not supported by this curvestore "
                f"(supports {FORMAT_VERSION}); upgrade curvestore"
            )
        try:
            freq, tz = normalize_freq(fields.text("freq")), normalize_tz(fields.text("tz"))
        except ConfigurationError as exc:
            raise fields.damaged(str(exc)) from None
        return cls(
            keys=fields.keys(), freq=freq, tz=tz,
            chunking=fields.text("chunking", CHUNKINGS), codec=fields.text("codec"),
            dtype=fields.text("dtype", DTYPES), store_id=fields.text("store_id"),
        )

    def check_compatible(self, **wanted: Any) -> None:
        """Raise ConfigMismatchError if any given setting differs from this frozen config."""
        differences: dict[str, tuple[Any, Any]] = {}
        for name, value in wanted.items():
            if value is None:
                continue
            if name == "keys":
                want = (value if isinstance(value, KeySchema)
                        else KeySchema.from_spec(value, existing=True))
                if want != self.keys:
                    differences["keys"] = (str(self.keys), str(want))
                continue
            normal = {"freq": normalize_freq, "tz": normalize_tz}.get(name, str)(value)
            if normal != getattr(self, name):
                differences[name] = (getattr(self, name), normal)
        if differences:
            raise ConfigMismatchError(differences)


class _ManifestFields:
    """Typed access to a manifest's fields: anything missing or mistyped is IntegrityError."""

    def __init__(self, manifest: Mapping[str, Any], where: str) -> None:
        self.manifest = manifest
        self.where = where

    def damaged(self, detail: str) -> IntegrityError:
        return IntegrityError(f"the manifest of {self.where} is damaged: {detail}")

    def text(self, name: str, allowed: tuple[str, ...] | None = None) -> str:
        if name not in self.manifest:
            raise self.damaged(f"field {name!r} is missing")
        value = self.manifest[name]
        if not isinstance(value, str) or not value:
            raise self.damaged(f"field {name!r} must be a non-empty string, got {value!r}")
        if allowed is not None and value not in allowed:
            raise self.damaged(f"field {name!r} must be one of {list(allowed)}, got {value!r}")
        return value

    def keys(self) -> KeySchema:
        if "keys" not in self.manifest:
            raise self.damaged("field 'keys' is missing")
        entries = self.manifest["keys"]
        # empty: a Django chunk-store model without key fields (holcstore allows them; the
        # whole table is one series); KeySchema.from_spec refuses it for other stores
        if not isinstance(entries, list):
            raise self.damaged(f"field 'keys' must be a list, got {entries!r}")
        names, types = [], []
        for entry in entries:
            if (not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str)
                    or entry.get("type") not in KEY_TYPES):
                raise self.damaged(
                    f"each key must be {{'name': str, 'type': 'str' or 'int'}}, got {entry!r}")
            names.append(entry["name"])
            types.append(entry["type"])
        if len(set(names)) != len(names):
            raise self.damaged(f"duplicate key names {names}")
        return KeySchema(tuple(names), tuple(types))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def normalize_freq(freq: Any) -> str:
    """Canonical text of a fixed frequency (``"15min"``, ``"1h"``...); calendar ones refused."""
    try:
        delta = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"freq {freq!r} is not a fixed duration such as '15min', '30min', '1h'"
        ) from exc
    if delta <= pd.Timedelta(0):
        raise ConfigurationError(f"freq must be positive, got {freq!r}")
    if delta.value % 1_000_000_000:
        raise ConfigurationError(f"freq must be a whole number of seconds, got {freq!r}")
    return freq_text(int(delta.value))


def normalize_tz(tz: Any) -> str:
    """The IANA name of a time zone, validated."""
    try:
        stamp = pd.Timestamp("2000-01-01", tz=tz)
    except Exception as exc:  # pandas raises several types for unknown zones
        raise ConfigurationError(f"unknown time zone {tz!r}") from exc
    name = str(stamp.tz)
    return "UTC" if name in ("UTC", "utc", "Etc/UTC") else name
