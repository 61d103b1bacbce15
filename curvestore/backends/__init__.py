"""Backends: where chunk records live (memory, filesystem, postgres, s3, tiered; Django's is in
the Django adapter). Each built-in is a module or small package of its own, registered like a
third-party plugin, its driver imported on first use.

A plugin's backend imports everything it needs from here: the contract (owned by the core,
:mod:`curvestore.core.backend`), the records it moves, cursors and URLs.
"""

from curvestore.core.backend import (
    Backend,
    IntegrityProblem,
    Transaction,
    bound_schema,
    stale_state,
)
from curvestore.core.cursor import decode_cursor, encode_cursor, unknown_position
from curvestore.core.records import Change, ChangePage, ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.url import StoreURL

__all__ = ["Backend", "Change", "ChangePage", "ChunkMeta", "ChunkRecord", "IntegrityProblem",
           "SeriesKey", "StoreURL", "Transaction", "bound_schema", "decode_cursor", "encode_cursor",
           "stale_state", "unknown_position"]
