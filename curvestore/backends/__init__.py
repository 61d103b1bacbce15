"""Backends: where chunk records live (memory, filesystem, postgres, s3, tiered; Django's is in
the Django adapter). Each built-in is a module or small package of its own, registered like a
third-party plugin, its driver imported on first use.

A plugin's backend imports everything it needs from here: the contract (owned by the core,
:mod:`curvestore.core.backend`), the records it moves, the optional capability protocols,
feed positions and URLs.
"""

from curvestore.core.backend import (
    Backend,
    IntegrityProblem,
    StaleStateError,
    Transaction,
    bound_schema,
    stale_state,
)
from curvestore.core.capabilities import (
    ChecksIntegrity,
    DecodesPieces,
    KeepsState,
    StateTransaction,
)
from curvestore.core.cursor import unknown_position
from curvestore.core.records import (
    Change,
    ChunkMeta,
    ChunkRecord,
    FeedBatch,
    Position,
    SeriesKey,
)
from curvestore.core.url import StoreURL

__all__ = ["Backend", "Change", "ChecksIntegrity", "ChunkMeta", "ChunkRecord", "DecodesPieces",
           "FeedBatch", "IntegrityProblem", "KeepsState", "Position", "SeriesKey",
           "StaleStateError", "StateTransaction", "StoreURL", "Transaction", "bound_schema",
           "stale_state", "unknown_position"]
