"""The ORM backend's side of the core's transactions: ``begin`` enters a ``transaction.atomic``
block that ``commit`` and ``abort`` leave (a savepoint inside the caller's own block), errors
of a lost race become ConflictError, and the change feed's positions are the logged versions
(cursors issued before the core wrapped positions stay valid)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.db import IntegrityError, OperationalError, connections, transaction
from testapp.models import FramedStore, HolcStoreYearMonth, SyncStore

from curvestore.adapters.django._transaction import lost_races
from curvestore.adapters.django.models import ChunkChange
from curvestore.core import chunks
from curvestore.core.backend import StaleStateError, Transaction
from curvestore.core.capabilities import Capabilities
from curvestore.core.cursor import encode_cursor
from curvestore.core.records import ChunkRecord
from curvestore.errors import ConflictError

K = "kind_very_long_name_for_testing_purpose"
JAN_2024 = 2024 * 12


def month(year: int, month: int, value: float) -> pd.Series:
    start = pd.Timestamp(year=year, month=month, day=1, tz="Europe/Paris")
    index = pd.date_range(start, start + pd.offsets.MonthBegin(), freq="1h", inclusive="left")
    return pd.Series(value, index=index)


def record(key: tuple, chunk: int, value: float) -> ChunkRecord:
    """A core record of a whole month of ``value``, as the core puts one."""
    store = HolcStoreYearMonth._cs_store()
    _, length = store.grid.period(chunk)
    return chunks.encode(key, chunks.Piece(chunk, 0, np.full(length, value)),
                         store.codecs(store.codec), "float64")


def connection() -> Any:
    """Django's connection to the database of this run (the thread's own)."""
    return connections[HolcStoreYearMonth._cs_backend().using]


def test_commit_and_abort_leave_the_atomic_block_begin_entered() -> None:
    backend = HolcStoreYearMonth._cs_backend()
    key = (1, "tx")
    tx = backend.begin([key])
    assert connection().in_atomic_block
    tx.put([record(key, JAN_2024, 1.0)])
    (change,) = tx.commit()
    assert not connection().in_atomic_block and connection().get_autocommit()
    assert (change.key, change.chunk, change.deleted) == (key, JAN_2024, False)
    tx.abort()  # after commit: nothing left to undo
    assert HolcStoreYearMonth.objects.count() == 1

    tx = backend.begin([key])
    assert [m.chunk for m in tx.live_metas(key)] == [JAN_2024]
    tx.put([record(key, JAN_2024 + 1, 2.0)])  # on PostgreSQL, COPYed at once
    tx.abort()
    assert not connection().in_atomic_block and connection().get_autocommit()
    with pytest.raises(RuntimeError, match="already committed or aborted"):
        tx.commit()
    assert HolcStoreYearMonth.objects.count() == 1
    assert ChunkChange.objects.filter(store=HolcStoreYearMonth._meta.db_table).count() == 1


def put_then_lose_the_state_race(key: tuple) -> Callable[[Transaction], None]:
    """A body whose commit fails after writing its rows: its compare-and-set of saved
    state expects a value that is not there."""
    def body(tx: Transaction) -> None:
        tx.put([record(key, JAN_2024, 1.0)])
        tx.set_state("cursor", "new", expected="stale")  # type: ignore[attr-defined]

    return body


def test_a_failing_commit_rolls_back_everything_and_leaves_the_block() -> None:
    store = SyncStore._cs_store()
    key = (1, "A")
    with pytest.raises(StaleStateError):
        store.transact([key], put_then_lose_the_state_race(key))
    assert not connection().in_atomic_block
    assert not SyncStore.objects.exists()
    assert store.changes().items == [] and store.get_state("cursor") is None
    SyncStore.set_ts({"version": 1, "kind": "A"}, month(2024, 1, 3.0), replace=True)
    assert store.get_state("cursor") is None and len(store.changes().items) == 1


def test_a_write_in_the_callers_atomic_block_is_a_savepoint_of_it() -> None:
    alias = HolcStoreYearMonth._cs_backend().using
    first, second = {"version": 1, K: "a"}, {"version": 1, K: "b"}
    with transaction.atomic(using=alias):
        HolcStoreYearMonth.set_ts(first, month(2024, 1, 1.0))
        with pytest.raises(IntegrityError):  # the series exists: its savepoint is undone
            HolcStoreYearMonth.set_ts(first, month(2024, 2, 9.0))
        with pytest.raises(StaleStateError):  # undone after its rows were written
            HolcStoreYearMonth._cs_store().transact(
                [(1, "b")], put_then_lose_the_state_race((1, "b")))
        HolcStoreYearMonth.set_ts(second, month(2024, 3, 2.0))  # the block is still usable
        assert connection().in_atomic_block
    assert set(HolcStoreYearMonth.get_ts(first)) == {1.0}
    assert set(HolcStoreYearMonth.get_ts(second)) == {2.0}
    feed = HolcStoreYearMonth._cs_store().changes().items
    assert [(i.key[K], i.chunk) for i in feed] == [("a", JAN_2024), ("b", JAN_2024 + 2)]

    with pytest.raises(ZeroDivisionError), transaction.atomic(using=alias):
        HolcStoreYearMonth.set_ts({"version": 2, K: "c"}, month(2024, 1, 5.0))
        1 / 0  # noqa: B018 - the caller's block fails after the write committed into it
    assert HolcStoreYearMonth.get_ts({"version": 2, K: "c"}) is None
    assert len(HolcStoreYearMonth._cs_store().changes().items) == 2


def test_import_chunks_and_tombstones_go_through_the_core_transaction() -> None:
    """Both reach the change feed (replicas learn of them) and the store's observers."""
    attrs = {"version": 1, "kind": "A"}
    SyncStore.set_ts(attrs, pd.concat([month(2024, 1, 1.0), month(2024, 2, 2.0)]),
                     replace=True)
    spec = [{"attrs": attrs, "chunk_index": c} for c in (JAN_2024, JAN_2024 + 1)]
    payload = SyncStore.export_chunks(spec)
    SyncStore.objects.all().delete(_disable_sync_safety=True)
    store = SyncStore._cs_store()
    cursor = store.changes().cursor
    seen: list[str] = []
    observer, store.observer = store.observer, lambda event, **_: seen.append(event)
    try:
        SyncStore.import_chunks(payload)
        assert bytes(SyncStore.objects.get(chunk_index=JAN_2024).data) == payload[0][0]
        assert SyncStore.objects.filter(chunk_index=JAN_2024).delete(keep_tracking=True) == 1
    finally:
        store.observer = observer
    assert seen == ["chunks_committed", "chunks_committed"]
    page = store.changes(cursor)
    assert [(i.chunk, i.deleted) for i in page.items] == [
        (JAN_2024, False), (JAN_2024 + 1, False), (JAN_2024, True)]
    assert set(SyncStore.get_ts(attrs)) == {2.0}


def test_feed_positions_are_the_logged_versions() -> None:
    """A cursor is the store id and the version of the last change it covers, as before the
    core wrapped the feed: cursors clients kept stay valid."""
    store = FramedStore._cs_store()
    for i in range(3):
        FramedStore.set_ts({"version": 1, "kind": str(i)}, month(2024, 1, float(i)))
    versions = [i.version for i in store.changes().items]
    assert versions == [1, 2, 3]
    kept = encode_cursor(store.config.store_id, (versions[0],))
    assert [i.key["kind"] for i in store.changes(kept).items] == ["1", "2"]
    assert store.changes(limit=2).cursor == encode_cursor(store.config.store_id, (2,))
    assert store.changes(encode_cursor(store.config.store_id, (0,))).items == \
        store.changes().items


def test_the_backend_keeps_state_and_decodes_pieces() -> None:
    assert HolcStoreYearMonth._cs_store().capabilities == Capabilities(
        state=True, integrity=False, pieces=True)


def test_lost_races_are_conflicts_other_database_errors_are_not() -> None:
    for error in (IntegrityError("duplicate key value violates unique constraint"),
                  OperationalError("deadlock detected"),
                  OperationalError("database is locked")):
        with pytest.raises(ConflictError) as raised, lost_races():
            raise error
        assert raised.value.__cause__ is error
    with pytest.raises(OperationalError, match="no such table"), lost_races():
        raise OperationalError("no such table: elsewhere")
