"""``StoreSemantics``: the store behaviour every backend must reproduce, through the public API.

Subclass it in a backend's test module with a ``backend_url_factory`` fixture (see
:mod:`curvestore.testing.fixtures`, which also holds the helpers re-exported here). It runs
the store semantics, grouped by theme in their own modules (writes:
:class:`~curvestore.testing.store_writes.WriteSemantics`; reads:
:class:`~curvestore.testing.store_reads.ReadSemantics`; wide frames:
:class:`~curvestore.testing.store_frames.FrameSemantics`; long-format rows:
:class:`~curvestore.testing.store_ingest.IngestSemantics`; Arrow streams:
:class:`~curvestore.testing.store_arrow.ArrowSemantics`; batch transactions and summaries,
on backends that have them: :class:`~curvestore.testing.store_batches.BatchSemantics`; keys,
info, lifecycle and codecs:
:class:`~curvestore.testing.store_metadata.MetadataSemantics`), the change feed
(:class:`~curvestore.testing.feed.ChangeFeedSemantics`), forged cursors
(:class:`~curvestore.testing.cursors.ForgedCursorChecks`) and input validation
(:class:`~curvestore.testing.inputs.InputSemantics`). The tests compare every read with what
pandas computes from the written data, bit for bit.
"""

from __future__ import annotations

from curvestore.testing.compaction import CompactionSemantics
from curvestore.testing.cursors import ForgedCursorChecks
from curvestore.testing.feed import ChangeFeedSemantics
from curvestore.testing.fixtures import (
    FREQ,
    KEYS,
    PLAIN_NAME_KEYS,
    TZ,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
    month,
    ns_index,
    plain_name_key,
    read_expected,
    with_option,
)
from curvestore.testing.inputs import InputSemantics
from curvestore.testing.store_arrow import ArrowSemantics
from curvestore.testing.store_batches import BatchSemantics
from curvestore.testing.store_frames import FrameSemantics
from curvestore.testing.store_ingest import IngestSemantics
from curvestore.testing.store_metadata import MetadataSemantics
from curvestore.testing.store_reads import ReadSemantics
from curvestore.testing.store_writes import WriteSemantics

__all__ = [
    "FREQ",
    "KEYS",
    "PLAIN_NAME_KEYS",
    "TZ",
    "StoreFixtures",
    "StoreSemantics",
    "assert_series_exact",
    "curve",
    "dense",
    "key",
    "month",
    "ns_index",
    "plain_name_key",
    "read_expected",
    "with_option",
]


class StoreSemantics(WriteSemantics, ReadSemantics, FrameSemantics, IngestSemantics,
                     ArrowSemantics, BatchSemantics, MetadataSemantics, InputSemantics,
                     ForgedCursorChecks, ChangeFeedSemantics, CompactionSemantics):
    """Store semantics (ARCHITECTURE section 2) through the public API, on any backend."""
