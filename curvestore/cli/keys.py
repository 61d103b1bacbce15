"""Keys on the command line: ``--keys site:str,year:int`` specs and ``key=value`` arguments.

Converting values to the store's key types is the core's :meth:`KeySchema.filter_from_text`
(shared with the HTTP and Django servers); this module only adds the command-line wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from curvestore.cli.common import CLIError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["full_key", "key_filter", "parse_key_spec", "parse_pairs"]


def parse_key_spec(spec: str) -> dict[str, str]:
    """``'site:str,year:int'`` -> ``{'site': 'str', 'year': 'int'}`` (type defaults to str)."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, kind = item.partition(":")
        kind = kind.strip() if sep else "str"
        if kind not in ("str", "int"):
            raise CLIError(f"key {name!r}: type must be str or int, got {kind!r}")
        if name.strip() in keys:
            raise CLIError(f"key {name.strip()!r} is given twice in --keys")
        keys[name.strip()] = kind
    if not keys:
        raise CLIError("--keys needs at least one NAME[:str|int], e.g. --keys site:str,kind:str")
    return keys


def parse_pairs(items: Sequence[str]) -> dict[str, str]:
    """``['site=a', 'kind=b']`` -> ``{'site': 'a', 'kind': 'b'}``."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"expected key=value, got {item!r}")
        if name in pairs:
            raise CLIError(f"key {name!r} is given twice")
        pairs[name] = value
    return pairs


def key_filter(store: Store, items: Sequence[str]) -> dict[str, Any]:
    """The filter (a partial key) given as key=value arguments, typed for ``store``;
    InvalidKeyError for an unknown name or a value of the wrong type."""
    return store.schema.filter_from_text(parse_pairs(items))


def full_key(store: Store, items: Sequence[str], what: str) -> dict[str, Any]:
    """A complete series key from key=value arguments, or a CLIError naming what is missing."""
    key = key_filter(store, items)
    missing = [name for name in store.schema.names if name not in key]
    if missing:
        raise CLIError(f"{what} needs the full series key; missing "
                       f"{', '.join(f'{m}=...' for m in missing)}")
    return key
