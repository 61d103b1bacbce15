"""The backend-neutral core, the bottom layer: it imports nothing else of the package (see
tests/test_architecture.py). It owns the contracts plugins implement (:class:`Backend`,
:class:`Transaction`, :class:`Codec`), the records they move, the store's configuration and
grid, and the :class:`Store` built on them; codec lookup, observers and the readers of
ingest's file sources are handed in.

Names load on first use, so importing a contract does not import pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curvestore.core.backend import (
        Backend,
        StaleStateError,
        Transaction,
        bound_schema,
        stale_state,
    )
    from curvestore.core.batch import ChunkBatch, SeriesSummary
    from curvestore.core.capabilities import (
        BatchTransaction,
        Capabilities,
        ChecksIntegrity,
        Compacts,
        DecodesPieces,
        KeepsState,
        StateTransaction,
        Summarises,
        WritesBatches,
    )
    from curvestore.core.codec import Codec, CodecLookup
    from curvestore.core.config import KeySchema, StoreConfig
    from curvestore.core.ingest import IngestProgress, IngestReport, LongTable, TableReader
    from curvestore.core.longform import IngestColumns
    from curvestore.core.records import (
        Change,
        ChangePage,
        ChunkMeta,
        ChunkRecord,
        FeedBatch,
        Position,
        SeriesKey,
    )
    from curvestore.core.store import FeedItem, FeedPage, Observer, Store, Window
    from curvestore.core.sync import ChangeSource, ReplicationReport, replicate
    from curvestore.core.url import StoreURL

_HOMES = {
    "Backend": "backend", "Transaction": "backend", "bound_schema": "backend",
    "stale_state": "backend", "StaleStateError": "backend",
    "ChunkBatch": "batch", "SeriesSummary": "batch",
    "BatchTransaction": "capabilities", "Summarises": "capabilities",
    "WritesBatches": "capabilities", "Capabilities": "capabilities",
    "ChecksIntegrity": "capabilities", "Compacts": "capabilities",
    "DecodesPieces": "capabilities", "KeepsState": "capabilities",
    "StateTransaction": "capabilities",
    "Codec": "codec", "CodecLookup": "codec",
    "KeySchema": "config", "StoreConfig": "config",
    "IngestProgress": "ingest", "IngestReport": "ingest", "LongTable": "ingest",
    "TableReader": "ingest", "IngestColumns": "longform",
    "Change": "records", "ChangePage": "records", "ChunkMeta": "records",
    "ChunkRecord": "records", "SeriesKey": "records", "FeedBatch": "records",
    "Position": "records",
    "FeedItem": "store", "FeedPage": "store", "Observer": "store", "Store": "store",
    "Window": "store",
    "ChangeSource": "sync", "ReplicationReport": "sync", "replicate": "sync",
    "StoreURL": "url",
}

__all__ = [
    "Backend",
    "BatchTransaction",
    "Capabilities",
    "Change",
    "ChangePage",
    "ChangeSource",
    "ChecksIntegrity",
    "ChunkBatch",
    "ChunkMeta",
    "ChunkRecord",
    "Codec",
    "CodecLookup",
    "Compacts",
    "DecodesPieces",
    "FeedBatch",
    "FeedItem",
    "FeedPage",
    "IngestColumns",
    "IngestProgress",
    "IngestReport",
    "KeepsState",
    "KeySchema",
    "LongTable",
    "Observer",
    "Position",
    "ReplicationReport",
    "SeriesKey",
    "SeriesSummary",
    "StaleStateError",
    "StateTransaction",
    "Store",
    "StoreConfig",
    "StoreURL",
    "Summarises",
    "TableReader",
    "Transaction",
    "Window",
    "WritesBatches",
    "bound_schema",
    "replicate",
    "stale_state",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'curvestore.core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"curvestore.core.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
