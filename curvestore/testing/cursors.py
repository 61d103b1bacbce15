"""``ForgedCursorChecks``: every backend refuses change-feed cursors it never issued.

A cursor carries a CRC, not a signature, and the store id it names is public (the manifest
shows it), so anyone can build a well-formed cursor for any position. These checks forge
cursors from the structure of real ones and require ``changes()`` to raise
:class:`~curvestore.errors.InvalidCursorError` for a position beyond the feed's end or a
malformed one, and, for a position altered within the feed, either to refuse it or to
return exactly a suffix of the feed (never an unexpected error, never changes the feed does
not hold). The HTTP servers answer that error with 400.

Mixed into :class:`~curvestore.testing.store.StoreSemantics`, so every backend that runs the
store semantics runs these too.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import TYPE_CHECKING, Any

import pytest

from curvestore.core.cursor import decode_cursor, encode_cursor
from curvestore.errors import InvalidCursorError

if TYPE_CHECKING:
    import curvestore

__all__ = ["ForgedCursorChecks", "forge_cursor"]


def forge_cursor(store_id: str, position: Any, *, raw_body: bytes | None = None) -> str:
    """A cursor in the ``cv1`` format with a valid checksum around ``[store_id, position]``
    (any JSON value) or around ``raw_body`` bytes, as an attacker would build one."""
    body = raw_body if raw_body is not None else \
        json.dumps([store_id, position], separators=(",", ":")).encode()
    mac = zlib.crc32(body).to_bytes(4, "big")
    return "cv1." + base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


class ForgedCursorChecks:
    """Forged and out-of-range cursors, on any backend (see the module docstring)."""

    if TYPE_CHECKING:  # provided by StoreSemantics / StoreFixtures
        def _feed_scenario(self, store: curvestore.Store) -> list[Any]: ...

        def feed(self, store: curvestore.Store, cursor: str | None = None,
                 **kwargs: Any) -> list[Any]: ...

    def _end_cursor(self, store: curvestore.Store) -> str:
        cursor = None
        for _ in range(100_000):
            page = store.changes(cursor, limit=10_000)
            cursor = page.cursor
            if not page.has_more:
                return cursor
        raise AssertionError("the change feed never ends (has_more stays true)")

    def test_change_feed_refuses_cursors_beyond_the_end(self, store: curvestore.Store
                                                        ) -> None:
        self._feed_scenario(store)
        store_id = store.config.store_id
        end = self._end_cursor(store)
        position = decode_cursor(end, store_id)
        forged = []
        for i in range(len(position)):
            for delta in (10**6, 10**12):
                moved = list(position)
                moved[i] += delta
                forged.append(encode_cursor(store_id, tuple(moved)))
        forged.append(encode_cursor(store_id, tuple(2**63 - 1 for _ in position)))
        for cursor in forged:
            with pytest.raises(InvalidCursorError):
                store.changes(cursor)
        # the genuine end cursor still works, and sees the next change: nothing is skipped
        assert store.changes(end).items == []
        from curvestore.testing.fixtures import curve, key

        store.write(key("z"), curve("2024-06-01", periods=4))
        (new,) = self.feed(store, end)
        assert new.key == key("z") and not new.deleted
        for cursor in forged[:2]:  # the feed grew by one batch, not by millions
            with pytest.raises(InvalidCursorError):
                store.changes(cursor)

    def test_change_feed_refuses_malformed_positions(self, store: curvestore.Store) -> None:
        self._feed_scenario(store)
        store_id = store.config.store_id
        real = list(decode_cursor(store.changes(limit=1).cursor, store_id))
        positions: list[Any] = [
            [], [*real, 0], real[:-1] or [0, 0], [-1, *real[1:]], [2**63, *real[1:]],
            [2**64, *real[1:]], [1.5, *real[1:]], ["1", *real[1:]], [True, *real[1:]],
            [None, *real[1:]], [[1], *real[1:]], {"p": real}, "0", 0, None,
        ]
        forged = [forge_cursor(store_id, p) for p in positions]
        nested = b'["' + store_id.encode() + b'",' + b"[" * 100 + b"]" * 100 + b"]"
        forged += [
            forge_cursor(store_id, None, raw_body=nested),
            forge_cursor(store_id, None, raw_body=b"[" * 100_000 + b"]" * 100_000),
            forge_cursor(store_id, None, raw_body=b'{"not": "a list"}'),
            forge_cursor(store_id, None, raw_body=b"\xff\xfe not json"),
            forge_cursor(store_id, None, raw_body=b""),
            encode_cursor(store_id, tuple(real)) + "A" * 1000,
        ]
        for cursor in forged:
            with pytest.raises(InvalidCursorError):
                store.changes(cursor)

    def test_change_feed_altered_cursor_is_refused_or_a_suffix(self, store: curvestore.Store
                                                               ) -> None:
        self._feed_scenario(store)
        store_id = store.config.store_id
        whole = self.feed(store, None, limit=10_000)
        cursors, cursor = [], None
        while True:  # every cursor a page of one change can end on
            page = store.changes(cursor, limit=1)
            cursor = page.cursor
            cursors.append(cursor)
            if not page.has_more:
                break
        tried = 0
        for genuine in cursors:
            position = decode_cursor(genuine, store_id)
            for i in range(len(position)):
                for delta in (-1, 1, 2):
                    moved = list(position)
                    moved[i] += delta
                    if moved[i] < 0:
                        continue
                    tried += 1
                    try:
                        got = self.feed(store, encode_cursor(store_id, tuple(moved)))
                    except InvalidCursorError:
                        continue
                    assert got == whole[len(whole) - len(got):], (
                        f"cursor position {moved} (altered from {list(position)}) gave "
                        "changes that are not a suffix of the feed")
        assert tried > 0

