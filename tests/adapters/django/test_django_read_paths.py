"""The adapter's own read paths (``get_ts``/``yield_many_ts`` assemble the backend's decoded
pieces, whole holcstore periods in one piece, cached ``freq``'d indexes) give exactly what
the core's generic path (``Store.read`` over checksummed records) gives, on rows holcstore
wrote, including empty and partial chunks, for every window and ``drop_bounds_na``."""

from __future__ import annotations

import lz4.frame
import numpy as np
import pandas as pd
import pytest
from django.db import connections
from testapp.models import FramedStore, HolcStoreYearMonth

from curvestore.core.transact import transaction

K = "kind_very_long_name_for_testing_purpose"
PARIS = "Europe/Paris"


def period(year: int, month: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(year=year, month=month, day=1, tz=PARIS)
    return pd.date_range(start, start + pd.offsets.MonthBegin(), freq="1h", inclusive="left")


def holc_row(version: int, kind: str, year: int, month: int, values: np.ndarray
             ) -> HolcStoreYearMonth:
    """A row exactly as holcstore writes one (whole-period LZ4 frame, start_ts = start)."""
    return HolcStoreYearMonth(
        version=version, kind_very_long_name_for_testing_purpose=kind,
        chunk_index=year * 12 + month - 1, start_ts=period(year, month)[0], dtype="float64",
        data=lz4.frame.compress(np.ascontiguousarray(values, dtype=float).tobytes()),
        updated_at=pd.Timestamp.now(tz="UTC"), is_deleted=False)


def month_values(year: int, month: int, kind: str, seed: int) -> np.ndarray:
    n = len(period(year, month))
    rng = np.random.default_rng(seed)
    if kind == "full":
        return rng.random(n)
    if kind == "empty":
        return np.full(n, np.nan)
    values = np.full(n, np.nan)  # "partial": values in the middle only, a hole inside
    values[40:n - 30] = rng.random(n - 70)
    values[100:120] = np.nan
    return values


LAYOUTS = {  # (month, kind) per series, months of 2024
    "whole": [(1, "full"), (2, "full"), (3, "full"), (4, "full")],
    "empty_edges": [(1, "empty"), (2, "full"), (3, "full"), (4, "empty")],
    "empty_inside": [(1, "full"), (2, "empty"), (3, "full")],
    "partial_edges": [(1, "partial"), (2, "full"), (3, "partial")],
    "gap": [(1, "full"), (3, "full")],
    "single": [(5, "partial")],
    "partial_gap": [(1, "partial"), (3, "full")],
}


@pytest.fixture
def hand_built() -> dict[str, dict]:
    rows, attrs = [], {}
    for version, (name, layout) in enumerate(LAYOUTS.items()):
        attrs[name] = {"version": version, K: name}
        for i, (month, kind) in enumerate(layout):
            rows.append(holc_row(version, name, 2024, month,
                                 month_values(2024, month, kind, seed=version * 10 + i)))
    HolcStoreYearMonth.objects.bulk_create(rows)
    return attrs


WINDOWS = [(None, None), ("2024-01-15", None), (None, "2024-03-10 05:00"),
           ("2024-02-01", "2024-02-29 23:00"), ("2024-01-01 03:00", "2024-03-31 12:00"),
           ("2024-06-01", "2024-07-01"), ("2024-03-05", "2024-02-01"),
           # a valued chunk whose values end before the window, which runs on into a month
           # without rows inside the series
           ("2024-01-31 12:00", "2024-02-10")]


def generic(attrs: dict, start: object, end: object, drop: bool) -> pd.Series | None:
    """The core's own path: Store.read over the backend's checksummed records."""
    store = HolcStoreYearMonth._cs_store()
    bound = HolcStoreYearMonth._bound
    return store.read(attrs, bound(start), bound(end), drop_bounds_na=drop)


def assert_same(got: pd.Series | None, expected: pd.Series | None) -> None:
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert np.array_equal(got.index.as_unit("ns").asi8, expected.index.as_unit("ns").asi8)
    assert str(got.index.tz) == str(expected.index.tz)
    assert np.array_equal(got.to_numpy(), expected.to_numpy(), equal_nan=True)
    if len(got) > 1:
        assert got.index.freq == pd.tseries.frequencies.to_offset("1h")


def nan_window(name: str, start: object, end: object) -> pd.Series | None:
    """holcstore's answer for a window without values: NaN over the window's part within the
    series' months (from its first to its last), None when the window misses them."""
    months = [m for m, _ in LAYOUTS[name]]
    hours = pd.date_range(period(2024, months[0])[0], period(2024, months[-1])[-1], freq="1h")
    keep = np.ones(len(hours), dtype=bool)
    if start is not None:
        keep &= hours >= pd.Timestamp(start, tz=PARIS)
    if end is not None:
        keep &= hours <= pd.Timestamp(end, tz=PARIS)
    kept = hours[keep]
    return pd.Series(np.nan, index=kept) if len(kept) else None


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_get_ts_equals_the_generic_read(hand_built: dict, window: tuple, drop: bool) -> None:
    """Windows with values: what the core reads. Windows without: holcstore's NaN window
    (the core's read gives None there)."""
    start, end = window
    for name, attrs in hand_built.items():
        got = HolcStoreYearMonth.get_ts(attrs, start, end, drop_bounds_na=drop)
        expected = generic(attrs, start, end, drop)
        assert_same(got, expected if expected is not None else nan_window(name, start, end))


@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("chunk_size", [1, 3, 200])
def test_yield_many_ts_equals_get_ts(hand_built: dict, window: tuple, drop: bool,
                                     chunk_size: int) -> None:
    """Every series get_ts returns, the same, in key order (windows without values: NaN as
    holcstore yields them, whether the series' rows there are NaN or absent)."""
    start, end = window
    got = [(attrs[K], series) for series, attrs in HolcStoreYearMonth.yield_many_ts(
        {}, start, end, qs_iterator_chunk_size=chunk_size, drop_bounds_na=drop)]
    expected = {}
    for name, attrs in hand_built.items():
        series = generic(attrs, start, end, drop)
        expected[name] = series if series is not None else nan_window(name, start, end)
    assert [name for name, _ in got] == [name for name, _ in sorted(
        hand_built.items(), key=lambda item: item[1]["version"]) if expected[name] is not None]
    for name, series in got:
        assert_same(series, expected[name])
        assert_same(HolcStoreYearMonth.get_ts(hand_built[name], start, end,
                                              drop_bounds_na=drop), series)
    if window == ("2024-02-01", "2024-02-29 23:00"):  # the case this guards
        assert {name for name, s in got if s.isna().all()} == {
            "empty_inside", "gap", "partial_gap"}


def test_yield_many_ts_filters_and_order(hand_built: dict) -> None:
    wanted = [hand_built[n]["version"] for n in ("gap", "whole", "single")]
    got = [(attrs["version"], attrs[K]) for _, attrs in
           HolcStoreYearMonth.yield_many_ts({"version__in": wanted}, qs_iterator_chunk_size=2)]
    assert got == sorted((hand_built[n]["version"], n) for n in ("gap", "whole", "single"))


def test_returned_indexes_are_not_shared() -> None:
    s = pd.Series(np.arange(100.0), index=pd.date_range("2024-01-01", periods=100, freq="1h",
                                                          tz=PARIS))
    HolcStoreYearMonth.set_ts({"version": 1, K: "a"}, s)
    first = HolcStoreYearMonth.get_ts({"version": 1, K: "a"})
    second = HolcStoreYearMonth.get_ts({"version": 1, K: "a"})
    first.index.name = "renamed"
    assert second.index.name is None
    assert HolcStoreYearMonth.get_ts({"version": 1, K: "a"}).index.name is None
    pd.testing.assert_series_equal(second, s, check_names=False, check_freq=False,
                                   check_index_type=False)


@pytest.mark.parametrize("model", [HolcStoreYearMonth, FramedStore], ids=lambda m: m.__name__)
def test_update_spanning_new_and_existing_chunks(model: type) -> None:
    """An update rewrites an existing chunk and creates a new one in one commit (on
    PostgreSQL: the pipelined UPDATE and INSERT); the change feed gets both, in order."""
    attrs = {"version": 1, (K if model is HolcStoreYearMonth else "kind"): "u"}
    jan = pd.Series(1.0, index=period(2024, 1))
    model.set_ts(attrs, jan)
    week = pd.Series(2.0, index=pd.date_range("2024-01-28", periods=7 * 24, freq="1h", tz=PARIS))
    model.set_ts(attrs, week, update=True)
    expected = jan.combine_first(week)
    expected.loc[week.index] = 2.0
    pd.testing.assert_series_equal(model.get_ts(attrs), expected, check_freq=False,
                                   check_names=False, check_index_type=False)
    feed = model._cs_store().changes().items
    assert [i.version for i in feed] == [1, 2, 3]
    assert feed[0].chunk == 2024 * 12  # the insert, then the update's two chunks (any order)
    assert sorted(i.chunk for i in feed[1:]) == [2024 * 12, 2024 * 12 + 1]


def test_postgres_writes_skip_pglz() -> None:
    """On PostgreSQL with lz4 TOAST support, the adapter's blobs are not pglz-compressed
    again (the write transaction uses lz4 for TOAST); reads are unaffected."""
    conn = connections[HolcStoreYearMonth._cs_backend().using]
    if conn.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with conn.cursor() as cur:
        cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                    "WHERE name = 'default_toast_compression'")
        if not cur.fetchone()[0]:
            pytest.skip("server built without lz4")
    s = pd.Series(np.tile(np.arange(24.0), 60), index=pd.date_range(
        "2024-01-01", periods=24 * 60, freq="1h", tz=PARIS))
    HolcStoreYearMonth.set_ts({"version": 1, K: "z"}, s)
    table = conn.ops.quote_name(HolcStoreYearMonth._meta.db_table)
    with conn.cursor() as cur:
        cur.execute(f"SELECT DISTINCT pg_column_compression(data) FROM {table}")
        methods = {row[0] for row in cur.fetchall()}
        cur.execute("SHOW default_toast_compression")
        session_default = cur.fetchone()[0]
    assert "pglz" not in methods
    assert session_default == "pglz"  # SET LOCAL: the session's setting is untouched
    pd.testing.assert_series_equal(HolcStoreYearMonth.get_ts({"version": 1, K: "z"}), s,
                                   check_freq=False, check_names=False, check_index_type=False)


def test_concurrent_set_many_ts_of_the_same_series() -> None:
    """Writers inserting the same new series at once (on PostgreSQL their new chunks are
    COPYed while they are prepared): one wins, every other gets IntegrityError, the stored
    series is exactly the winner's and the change feed has no gap."""
    import threading

    from django.db import IntegrityError as DjangoIntegrityError

    writers = 4
    index = pd.date_range("2024-01-01", "2024-06-30 23:00", freq="1h", tz=PARIS)
    outcomes: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            barrier.wait()
            HolcStoreYearMonth.set_many_ts({(1, "race"): pd.Series(float(n), index=index)},
                                           keys=("version", K))
            outcomes[n] = "won"
        except DjangoIntegrityError:
            outcomes[n] = "lost"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    winners = [n for n, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1 and len(outcomes) == writers
    got = HolcStoreYearMonth.get_ts({"version": 1, K: "race"})
    assert got.index.equals(index)
    assert (got == float(winners[0])).all()
    feed = HolcStoreYearMonth._cs_store().changes().items
    assert [i.version for i in feed] == list(range(1, 7))  # 6 months, versions 1..6


def _record(key: tuple, chunk: int, value: float) -> object:
    """A core record of a whole month of ``value`` (what the core puts for a series)."""
    from curvestore.core import chunks

    store = HolcStoreYearMonth._cs_store()
    _, length = store.grid.period(chunk)
    return chunks.encode(key, chunks.Piece(chunk, 0, np.full(length, value)),
                         store.codecs(store.codec),
                         "float64")


def test_chunk_put_twice_in_one_transaction_keeps_the_last() -> None:
    """On PostgreSQL the first put of a new chunk is COPYed at once; putting it again
    rewrites that row at commit, under the same version, with one change-feed entry."""
    backend = HolcStoreYearMonth._cs_backend()
    key, chunk = (1, "twice"), 2024 * 12 + 2
    with transaction(backend, [key]) as tx:
        assert tx.live_metas(key) == []
        tx.put([_record(key, chunk, 1.0)])
        tx.put([_record(key, chunk, 2.0), _record(key, chunk + 1, 3.0)])
    got = HolcStoreYearMonth.get_ts({"version": 1, K: "twice"})
    assert set(got.loc["2024-03"]) == {2.0} and set(got.loc["2024-04"]) == {3.0}
    feed = HolcStoreYearMonth._cs_store().changes().items
    assert sorted((i.chunk, i.version) for i in feed) in (
        [(chunk, 1), (chunk + 1, 2)], [(chunk, 2), (chunk + 1, 1)])
    assert HolcStoreYearMonth.objects.filter(version=1).count() == 2


def test_failure_after_chunks_were_streamed_leaves_nothing() -> None:
    backend = HolcStoreYearMonth._cs_backend()
    key = (1, "boom")
    with pytest.raises(ZeroDivisionError), transaction(backend, [key]) as tx:
        tx.live_metas(key)
        tx.put([_record(key, 2024 * 12 + m, 1.0) for m in range(3)])
        1 / 0  # noqa: B018
    assert not HolcStoreYearMonth.objects.exists()
    assert HolcStoreYearMonth._cs_store().changes().items == []
    HolcStoreYearMonth.set_ts({"version": 1, K: "boom"}, pd.Series(  # the connection works
        1.0, index=period(2024, 1)))
    assert len(HolcStoreYearMonth.get_ts({"version": 1, K: "boom"})) == len(period(2024, 1))


def test_yield_many_ts_nan_windows_of_series_the_adapter_wrote() -> None:
    """Series the adapter wrote store no row for a month without values: a window there, or
    on the NaN end of a valued month running into one, is yielded as NaN over the window
    (as get_ts returns it); a window beyond a series' chunks yields nothing for it."""
    jan_mar = pd.concat([pd.Series(1.0, index=period(2024, 1)[:24 * 10]),
                         pd.Series(3.0, index=period(2024, 3))])
    HolcStoreYearMonth.set_ts({"version": 1, K: "jan_mar"}, jan_mar)
    HolcStoreYearMonth.set_ts({"version": 2, K: "feb"}, pd.Series(2.0, index=period(2024, 2)))
    HolcStoreYearMonth.set_ts({"version": 3, K: "may"}, pd.Series(5.0, index=period(2024, 5)))
    assert not HolcStoreYearMonth.objects.filter(version=1, chunk_index=2024 * 12 + 1).exists()
    for start, end, nan_from, nan_to in [
            ("2024-02-03", "2024-02-05 06:00", "2024-02-03", "2024-02-05 06:00"),
            ("2024-01-20", "2024-02-10", "2024-01-20", "2024-02-10")]:
        for drop in (True, False):
            got = {a[K]: s for s, a in HolcStoreYearMonth.yield_many_ts(
                {}, start, end, qs_iterator_chunk_size=1, drop_bounds_na=drop)}
            assert list(got) == ["jan_mar", "feb"]
            expected = pd.Series(np.nan, index=pd.date_range(nan_from, nan_to, freq="1h",
                                                             tz=PARIS))
            assert_same(got["jan_mar"], expected)
            assert_same(HolcStoreYearMonth.get_ts({"version": 1, K: "jan_mar"}, start, end,
                                                  drop_bounds_na=drop), expected)
            assert (got["feb"] == 2.0).all()
    # only "may" has a chunk in April..June; "jan_mar" ends in March
    got = [(a[K], s) for s, a in HolcStoreYearMonth.yield_many_ts({}, "2024-04-10", "2024-06-01")]
    assert [name for name, _ in got] == ["may"]
    # a window after the data of a series' last chunk: that chunk's part of the window
    got = {a[K]: s for s, a in HolcStoreYearMonth.yield_many_ts({"version__in": [2, 3]},
                                                                "2024-05-31 23:00", "2024-07-01")}
    assert list(got) == ["may"] and len(got["may"]) == 1 and got["may"].iloc[0] == 5.0


def test_yield_many_ts_nan_windows_cost_one_query() -> None:
    """The series without a value in the window add one query in all, not one per series
    (counted on the ORM's log: on PostgreSQL the scan itself bypasses it)."""
    from django.test.utils import CaptureQueriesContext

    alias = HolcStoreYearMonth._cs_backend().using

    def queries(n_series: int) -> int:
        HolcStoreYearMonth.objects.all().delete()
        for v in range(n_series):  # January and March: no row in February
            HolcStoreYearMonth.set_ts({"version": v, K: "x"}, pd.concat([
                pd.Series(1.0, index=period(2024, 1)), pd.Series(3.0, index=period(2024, 3))]))
        with CaptureQueriesContext(connections[alias]) as captured:
            got = list(HolcStoreYearMonth.yield_many_ts({}, "2024-02-01", "2024-02-29 23:00",
                                                        qs_iterator_chunk_size=1))
        assert len(got) == n_series and all(s.isna().all() and len(s) == 29 * 24
                                            for s, _ in got)
        return len(captured.captured_queries)

    assert queries(2) == queries(12)
