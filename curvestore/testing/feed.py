"""``ChangeFeedSemantics``: the change feed every backend must serve (ARCHITECTURE sections
3 and 6): every committed change exactly once, in commit order, tombstones included, after an
opaque cursor that is stable across reopenings and refused by other stores.

Mixed into :class:`~curvestore.testing.store.StoreSemantics`; usable on its own with the
fixture of :mod:`curvestore.testing.fixtures`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import curvestore
from curvestore.errors import CurvestoreError, InvalidCursorError, SeriesExistsError
from curvestore.testing.fixtures import (
    FREQ,
    KEYS,
    TZ,
    StoreFixtures,
    curve,
    key,
)

__all__ = ["ChangeFeedSemantics"]


class ChangeFeedSemantics(StoreFixtures):
    """The change feed, through ``Store.changes``, on any backend."""

    def _feed_scenario(self, store: curvestore.Store) -> list[list[tuple[str, str, bool]]]:
        """Run writes; return per commit the set of (site, month, deleted) the feed must show."""
        jan, feb, mar, apr = "2024-01", "2024-02", "2024-03", "2024-04"
        steps: list[list[tuple[str, str, bool]]] = []
        store.write(key("a"), curve("2024-01-20", end="2024-02-10", seed=70))
        steps.append([("a", jan, False), ("a", feb, False)])
        store.write(key("b"), curve("2024-03-01", periods=10, seed=71), mode="update")
        steps.append([("b", mar, False)])
        store.write(key("a"), curve("2024-02-20", end="2024-03-05", seed=72), mode="update")
        steps.append([("a", feb, False), ("a", mar, False)])
        store.write(key("a"), curve("2024-03-10", periods=10, seed=73), mode="replace")
        steps.append([("a", jan, True), ("a", feb, True), ("a", mar, False)])
        store.delete(key("b"))
        steps.append([("b", mar, True)])
        with pytest.raises(SeriesExistsError):
            store.write_many({("c", "load", 1): curve("2024-04-01", periods=5),
                              ("a", "load", 1): curve("2024-04-01", periods=5)})
        store.write_many({("c", "load", 1): curve("2024-04-01", periods=5),
                          ("d", "load", 1): curve("2024-03-31 23:00", periods=8)})
        steps.append([("c", apr, False), ("d", mar, False), ("d", apr, False)])
        store.write(key("b"), curve("2024-01-01", periods=5, seed=74))  # re-insert
        steps.append([("b", jan, False)])
        return steps

    @staticmethod
    def _label(item: Any) -> tuple[str, str, bool]:
        return item.key["site"], item.period_start.strftime("%Y-%m"), item.deleted

    def test_change_feed_every_change_once_in_commit_order(self, store: curvestore.Store
                                                           ) -> None:
        page = store.changes()
        assert page.items == [] and not page.has_more and isinstance(page.cursor, str)
        steps = self._feed_scenario(store)
        items = self.feed(store, None, limit=10_000)
        assert len(items) == sum(len(s) for s in steps)
        position = 0
        for expected in steps:  # commit order: each commit's changes form one block
            block = items[position:position + len(expected)]
            assert sorted(self._label(i) for i in block) == sorted(expected)
            position += len(expected)
        for item in items:
            assert set(item.key) == set(KEYS)
            assert item.period_start.tz is not None and str(item.period_start.tz) == TZ
            assert item.period_start == item.period_start.normalize().replace(day=1)
        versions: dict[Any, int] = {}
        for item in items:
            ident = (tuple(item.key.values()), item.chunk)
            assert item.version > versions.get(ident, -(2**63)), "versions must increase"
            versions[ident] = item.version
        # at the end of the feed: no more items, the cursor stays usable
        last = store.changes(store.changes(limit=10_000).cursor)
        assert last.items == [] and not last.has_more

    def test_change_feed_incremental_pages(self, store: curvestore.Store) -> None:
        cursor = store.changes().cursor
        seen = []
        for expected in self._feed_scenario_steps(store):
            page = store.changes(cursor)
            assert sorted(self._label(i) for i in page.items) == sorted(expected)
            assert not page.has_more
            seen += page.items
            cursor = page.cursor
        assert seen == self.feed(store)

    def _feed_scenario_steps(self, store: curvestore.Store) -> Iterator[list[Any]]:
        s = curve("2024-01-31 23:00", periods=8, seed=75)
        store.write(key("a"), s)
        yield [("a", "2024-01", False), ("a", "2024-02", False)]
        store.write(key("a"), s.iloc[:2], mode="replace")
        yield [("a", "2024-01", False), ("a", "2024-02", True)]
        yield []
        store.delete_many()
        yield [("a", "2024-01", True)]

    @pytest.mark.parametrize("limit", [1, 2, 3, 5])
    def test_change_feed_paging_equals_one_read(self, store: curvestore.Store, limit: int
                                                ) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000)
        assert not whole.has_more
        paged = []
        cursor = None
        for _ in range(1000):
            page = store.changes(cursor, limit=limit)
            # a backend may end pages on commit boundaries, so a page can exceed ``limit``
            assert page.items or not page.has_more, "a page made no progress"
            paged += page.items
            cursor = page.cursor
            if not page.has_more:
                break
        assert paged == whole.items
        again = store.changes(cursor, limit=limit)
        assert again.items == [] and not again.has_more

    def test_change_feed_filter(self, store: curvestore.Store) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000).items
        for where in ({"site": "a"}, {"site": "b"}, {"n": 1}, {"site": "zz"},
                      {"site": "d", "kind": "load", "n": 1}):
            expected = [i for i in whole if all(i.key[k] == v for k, v in where.items())]
            assert self.feed(store, filter=where, limit=10_000) == expected
            assert self.feed(store, filter=where, limit=2) == expected

    def test_change_feed_rejects_bad_limit(self, store: curvestore.Store) -> None:
        bad_limits: tuple[Any, ...] = (0, -1, "10")  # "10": a str, deliberately mistyped
        for limit in bad_limits:
            with pytest.raises(CurvestoreError):
                store.changes(limit=limit)

    def test_change_feed_cursor_from_another_store(self, store: curvestore.Store,
                                                   other_backend_url: str | None) -> None:
        from curvestore.core.cursor import encode_cursor

        store.write(key(), curve("2024-01-01", periods=3))
        foreign = [encode_cursor("0" * 32, (0,)), encode_cursor("not-this-store", (1, 2))]
        if other_backend_url is not None:
            with curvestore.create_store(other_backend_url, keys=KEYS, freq=FREQ, tz=TZ) as other:
                other.write(key(), curve("2024-01-01", periods=3))
                foreign.append(other.changes().cursor)
                foreign.append(other.changes(limit=1).cursor)
                with pytest.raises(InvalidCursorError):
                    other.changes(store.changes().cursor)
        for cursor in foreign:
            with pytest.raises(InvalidCursorError):
                store.changes(cursor)

    def test_change_feed_malformed_cursor(self, store: curvestore.Store) -> None:
        store.write(key(), curve("2024-01-01", periods=3))
        good = store.changes(limit=1).cursor
        flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
        for bad in ("", "garbage", "cv1.", "cv1.!!!!", good[: len(good) // 2], flipped,
                    good + "x", 123, b"bytes"):
            with pytest.raises(InvalidCursorError):
                store.changes(bad)  # type: ignore[arg-type]

    def test_change_feed_cursor_survives_reopen(self, store: curvestore.Store,
                                                backend_url: str) -> None:
        self._feed_scenario(store)
        whole = store.changes(limit=10_000).items
        head = store.changes(limit=4)
        middle, done = head.cursor, len(head.items)
        assert 0 < done < len(whole)
        end = store.changes(limit=10_000).cursor
        store.close()
        with self.reopen(backend_url) as again:
            assert self.feed(again, middle) == whole[done:]
            assert again.changes(end).items == []
            again.write(key("e"), curve("2024-05-01", periods=3))
            (new,) = again.changes(end).items
            assert new.key == key("e") and not new.deleted
        with self.reopen(backend_url, read_only=True) as third:
            assert self.feed(third, middle) == [*whole[done:], new]
