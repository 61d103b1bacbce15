"""A chunk store without key fields (the whole table is one series), on SQLite and on
PostgreSQL, whose fast path reads such a model with ``WHERE TRUE`` instead of a key match:
writes, reads, streams, max_horodate, the change feed and the export/import sync helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from testapp.models import KeylessReplica, KeylessStore

PARIS = "Europe/Paris"


def hours(start: str, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="1h", tz=PARIS)


@pytest.fixture
def written() -> pd.Series:
    """January to March, February without values (no row), then an update in March."""
    s = pd.concat([pd.Series(np.arange(24 * 10, dtype=float), index=hours("2024-01-05", 24 * 10)),
                   pd.Series(5.0, index=hours("2024-03-01", 24 * 20))])
    KeylessStore.set_ts({}, s)
    patch = pd.Series(-1.0, index=hours("2024-03-10", 5))
    KeylessStore.set_ts({}, patch, update=True)
    return patch.combine_first(s)


def test_set_and_get(written: pd.Series) -> None:
    assert KeylessStore.get_model_keys() == set()
    assert sorted(KeylessStore.objects.values_list("chunk_index", flat=True)) == [
        2024 * 12, 2024 * 12 + 2]  # no row for February
    got = KeylessStore.get_ts({})
    pd.testing.assert_series_equal(got.dropna(), written, check_freq=False,
                                   check_index_type=False)
    assert got.index.freq == "1h" and got.index[0] == written.index[0]
    window = KeylessStore.get_ts({}, "2024-03-09 23:00", "2024-03-10 02:00")
    assert window.tolist() == [5.0, -1.0, -1.0, -1.0]
    feb = KeylessStore.get_ts({}, "2024-02-10", "2024-02-11")  # inside, no value: NaN
    assert len(feb) == 25 and feb.isna().all()
    assert KeylessStore.get_ts({}, "2024-05-01", "2024-06-01") is None
    with pytest.raises(ValueError, match="partial attributes"):
        KeylessStore.get_ts({"version": 1})


def test_insert_over_the_series_is_refused_and_replace_rewrites(written: pd.Series) -> None:
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        KeylessStore.set_ts({}, pd.Series(1.0, index=hours("2024-06-01", 3)))
    new = pd.Series(7.0, index=hours("2024-06-01", 3))
    KeylessStore.set_ts({}, new, replace=True)
    pd.testing.assert_series_equal(KeylessStore.get_ts({}), new, check_freq=False,
                                   check_index_type=False)


@pytest.mark.parametrize("chunk_size", [1, 200])
def test_yield_many_ts(written: pd.Series, chunk_size: int) -> None:
    whole = list(KeylessStore.yield_many_ts({}, qs_iterator_chunk_size=chunk_size))
    assert len(whole) == 1 and whole[0][1] == {}
    pd.testing.assert_series_equal(whole[0][0], KeylessStore.get_ts({}))
    feb = list(KeylessStore.yield_many_ts({}, "2024-02-10", "2024-02-11",
                                          qs_iterator_chunk_size=chunk_size))
    assert len(feb) == 1 and len(feb[0][0]) == 25 and feb[0][0].isna().all()
    assert list(KeylessStore.yield_many_ts({}, "2024-05-01", "2024-06-01")) == []
    with pytest.raises(ValueError, match="Unknown attribute"):
        KeylessStore.yield_many_ts({"kind": "a"})


def test_max_horodate(written: pd.Series) -> None:
    assert KeylessStore.get_max_horodate({}) == written.index[-1]
    pk = dict(KeylessStore.objects.values_list("chunk_index", "pk"))
    assert KeylessStore.get_many_max_horodate({}) == {  # per row (distinct_on "id")
        (pk[2024 * 12],): pd.Timestamp("2024-01-14 23:00", tz=PARIS),
        (pk[2024 * 12 + 2],): written.index[-1]}
    KeylessStore.objects.all().delete()
    assert KeylessStore.get_max_horodate({}) is None


def test_change_feed_and_export_import_sync(written: pd.Series) -> None:
    feed = KeylessStore._cs_store().changes().items
    assert [(i.key, i.chunk) for i in feed] == [({}, 2024 * 12), ({}, 2024 * 12 + 2),
                                                ({}, 2024 * 12 + 2)]
    updates = KeylessStore.list_updates(pd.Timestamp("2000-01-01", tz="UTC"))
    assert [(u["attrs"], u["chunk_index"]) for u in updates] == [({}, 2024 * 12),
                                                                ({}, 2024 * 12 + 2)]
    exported = KeylessStore.export_chunks([{"attrs": u["attrs"], "chunk_index": u["chunk_index"]}
                                           for u in updates])
    KeylessReplica.import_chunks(exported)
    pd.testing.assert_series_equal(KeylessReplica.get_ts({}), KeylessStore.get_ts({}))
    # a tombstone travels too: the replica then holds March only
    KeylessStore.objects.filter(chunk_index=2024 * 12).delete(keep_tracking=True)
    since = updates[-1]["updated_at"]
    again = [u for u in KeylessStore.list_updates(since) if u["is_deleted"]]
    KeylessReplica.import_chunks(KeylessStore.export_chunks(
        [{"attrs": u["attrs"], "chunk_index": u["chunk_index"]} for u in again]))
    assert KeylessReplica.get_ts({}).index[0] == pd.Timestamp("2024-03-01", tz=PARIS)
    pd.testing.assert_series_equal(KeylessReplica.get_ts({}), KeylessStore.get_ts({}))
