"""What :class:`~curvestore.testing.store.StoreSemantics` checks around the data: key and
filter validation, key names users choose, ``keys``/``max_timestamp``/``info``/verify,
the store's lifecycle (reopen, read-only, conflicting configuration) and codec changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import curvestore
from curvestore.errors import (
    ConfigMismatchError,
    InvalidKeyError,
    ReadOnlyError,
)
from curvestore.testing.fixtures import (
    FREQ,
    KEYS,
    TZ,
    StoreFixtures,
    assert_series_exact,
    curve,
    dense,
    key,
    ns_index,
    plain_name_key,
    with_option,
)

__all__ = ["MetadataSemantics"]


class MetadataSemantics(StoreFixtures):
    """Keys, max_timestamp, info, lifecycle and codecs through the public API."""

    # -- invalid keys and filters ----------------------------------------------------------
    @pytest.mark.parametrize("bad", [
        {"site": "a", "kind": "load"},
        {"site": "a"},
        {},
        {"site": "a", "kind": "load", "n": 1, "extra": "x"},
        {"site": "a", "kind": "load", "n": "1"},
        {"site": 1, "kind": "load", "n": 1},
        {"site": "a", "kind": "load", "n": True},
        {"site": "a", "kind": "load", "n": 1.0},
        {"site": None, "kind": "load", "n": 1},
        {"site": "a\udc80", "kind": "load", "n": 1},
        {"site": "a", "kind": "load", "n": 2**63},
    ], ids=["partial", "site-only", "empty", "unknown", "str-for-int", "int-for-str",
            "bool-for-int", "float-for-int", "none", "lone-surrogate", "beyond-int64"])
    def test_invalid_keys_raise(self, store: curvestore.Store, bad: dict[str, Any]) -> None:
        s = curve("2024-01-01", periods=4)
        for call in (lambda: store.write(bad, s), lambda: store.write(bad, s, mode="update"),
                     lambda: store.read(bad), lambda: store.delete(bad)):
            with pytest.raises(InvalidKeyError) as info:
                call()
            assert isinstance(info.value, ValueError)
        assert store.keys() == []
        assert store.changes().items == []

    @pytest.mark.parametrize("bad", [{"nope": "a"}, {"n": "1"}, {"site": 3}, {"n": False},
                                     {"kind": "\ud800"}, {"n": -(2**63) - 1}])
    def test_invalid_filters_raise(self, store: curvestore.Store, bad: dict[str, Any]) -> None:
        for call in (lambda: list(store.read_many(bad)), lambda: store.keys(bad),
                     lambda: store.delete_many(bad), lambda: store.max_timestamp(bad),
                     lambda: store.changes(filter=bad)):
            with pytest.raises(InvalidKeyError):
                call()

    # -- keys, max_timestamp, info ---------------------------------------------------------------
    def test_key_names_users_choose(self, plain_name_store: curvestore.Store,
                                    plain_name_url: str) -> None:
        """Keys named version, id, start, count, data, payload, deleted, cursor, limit...
        write, read, filter, update, delete, feed and reopen like any others."""
        store, keys = plain_name_store, self.plain_name_keys
        names = list(keys)
        last = names[-1]
        a, b = plain_name_key(keys, 1), plain_name_key(keys, 2)
        c = {**a, last: plain_name_key(keys, 3)[last]}  # a's twin but for the last key
        written = {
            "a": curve("2024-01-20", end="2024-03-05", seed=1, nan=0.1),
            "b": curve("2024-02-01", periods=500, seed=2),
            "c": curve("2024-03-30", end="2024-04-01", seed=3),
        }
        by_name = {"a": a, "b": b, "c": c}
        assert store.write_many({tuple(by_name[n].values()): s for n, s in written.items()}) \
            == 3 + 1 + 2
        for n, s in written.items():
            assert_series_exact(store.read(by_name[n]), dense(s))
        assert store.keys() == [a, c, b]
        assert store.info()["keys"] == {n: t.__name__ for n, t in keys.items()}
        for name in names:  # each name filters, alone and beside the others
            twins = [a] if name == last else [a, c]
            assert store.keys({name: a[name]}) == twins, name
            assert [k for k, _ in store.read_many({name: b[name]})] == [b], name
            assert store.max_timestamp({name: b[name]}) == written["b"].index[-1], name
            feed = self.feed(store, filter={name: a[name]}, limit=3)
            assert sorted({tuple(i.key.values()) for i in feed}) == sorted(
                tuple(k.values()) for k in twins), name
        assert store.keys({**b, names[0]: a[names[0]]}) == []
        # the write paths that read rows back (update's merge, replace's tombstones, delete)
        update = curve("2024-02-10", periods=50, value=7.0)
        store.write(a, update, mode="update")
        expected = ns_index(update).combine_first(ns_index(written["a"]))
        assert_series_exact(store.read(a), dense(expected))
        store.write(b, curve("2024-05-01", periods=20, seed=4), mode="replace")
        assert store.delete(c) == 2
        assert store.keys() == [a, b]
        assert [i.key for i in self.feed(store, filter={last: c[last]}) if i.deleted] == [c, c]
        store.close()
        with self.reopen(plain_name_url, keys=keys) as again:
            assert again.keys() == [a, b]
            assert_series_exact(again.read(a), dense(expected))
            assert again.read(c) is None

    def test_keys_filter_and_order(self, store: curvestore.Store) -> None:
        for k in [("b", "x", 10), ("a", "y", 2), ("a", "x", 10), ("a", "x", 2)]:
            store.write(dict(zip(KEYS, k, strict=True)), curve("2024-01-01", periods=3))
        listed = store.keys()
        assert [(d["site"], d["kind"], d["n"]) for d in listed] == [
            ("a", "x", 2), ("a", "x", 10), ("a", "y", 2), ("b", "x", 10)]
        assert store.keys({"n": 10}) == [{"site": "a", "kind": "x", "n": 10},
                                         {"site": "b", "kind": "x", "n": 10}]
        assert store.keys({"site": "a", "kind": "y"}) == [{"site": "a", "kind": "y", "n": 2}]
        assert store.keys({"site": "c"}) == []
        assert store.keys(None) == store.keys({})

    def test_max_timestamp(self, store: curvestore.Store) -> None:
        assert store.max_timestamp() is None
        a = curve("2024-01-01", periods=100, seed=64)
        b = curve("2024-02-01", periods=100, seed=65)
        b.iloc[-1] = b.iloc[-2] = np.nan  # trailing NaN is no value
        store.write(key(n=1), a)
        store.write(key(n=2), b)
        latest = store.max_timestamp()
        assert latest == b.index[-3]
        assert str(latest.tz) == TZ
        assert store.max_timestamp({"n": 1}) == a.index[-1]
        assert store.max_timestamp({"n": 3}) is None
        store.delete(key(n=2))
        assert store.max_timestamp() == a.index[-1]

    def test_verify_reads_back_every_chunk(self, store: curvestore.Store) -> None:
        from curvestore.core.verify import verify_store

        store.write(key("a"), curve("2024-01-30", periods=300, seed=1, nan=0.1))
        store.write(key("b"), curve("2024-03-01", periods=10, seed=2))
        store.delete(key("b"))
        report = verify_store(store)
        assert report.ok and (report.series, report.chunks) == (1, 2)
        assert report.payload_bytes == store.info()["payload_bytes"]

    def test_info_totals(self, store: curvestore.Store) -> None:
        empty = store.info()
        assert (empty["series"], empty["chunks"], empty["points"]) == (0, 0, 0)
        assert empty["freq"] == FREQ and empty["tz"] == TZ and empty["chunking"] == "month"
        assert empty["keys"] == {"site": "str", "kind": "str", "n": "int"}
        a = curve("2024-01-31", periods=200, seed=66, nan=0.25)
        b = curve("2024-03-01", periods=30, seed=67)
        store.write(key(n=1), a)
        store.write(key(n=2), b)
        info = store.info()
        assert info["series"] == 2
        assert info["chunks"] == 3
        assert info["points"] == int(a.notna().sum() + b.notna().sum())
        assert info["payload_bytes"] > 0
        assert info["store_id"] == store.config.store_id

    # -- lifecycle -------------------------------------------------------------------------------
    def test_data_survives_reopen(self, store: curvestore.Store, backend_url: str) -> None:
        a = curve("2024-01-01", end="2024-02-15", seed=68, nan=0.1)
        store.write(key(n=1), a)
        store.write(key(n=2), a * 2)
        store.delete(key(n=2))
        feed = self.feed(store)
        store_id = store.config.store_id
        store.close()
        with self.reopen(backend_url) as again:
            assert again.config.store_id == store_id
            assert (again.config.freq, again.config.tz) == (FREQ, TZ)
            assert again.keys() == [key(n=1)]
            assert_series_exact(again.read(key(n=1)), dense(a))
            assert self.feed(again) == feed
            again.write(key(n=3), a)
        with self.reopen(backend_url, keys=KEYS, freq=FREQ, tz=TZ, chunking="month") as third:
            assert third.keys() == [key(n=1), key(n=3)]

    def test_read_only_refuses_writes(self, store: curvestore.Store, backend_url: str) -> None:
        a = curve("2024-01-01", periods=10, seed=69)
        store.write(key(), a)
        for ro in (self.reopen(backend_url, read_only=True),
                   self.reopen(with_option(backend_url, "read_only=true"))):
            with ro:
                assert ro.read_only
                for call in (lambda ro=ro: ro.write(key(n=2), a),
                             lambda ro=ro: ro.write(key(), a, mode="update"),
                             lambda ro=ro: ro.write_many({("a", "load", 3): a}),
                             lambda ro=ro: ro.delete(key()),
                             lambda ro=ro: ro.delete_many({"site": "a"})):
                    with pytest.raises(ReadOnlyError) as info:
                        call()
                    assert isinstance(info.value, PermissionError)
                assert_series_exact(ro.read(key()), dense(a))
                assert ro.keys() == [key()]
                assert len(ro.changes().items) == 1
        assert store.keys() == [key()]
        assert_series_exact(store.read(key()), dense(a))

    @pytest.mark.parametrize("conflict", [
        {"freq": "1h"}, {"tz": "UTC"}, {"chunking": "year"},
        {"keys": {"site": str, "kind": str}}, {"keys": {"site": str, "kind": str, "n": str}},
        {"keys": {"kind": str, "site": str, "n": int}},
    ], ids=["freq", "tz", "chunking", "fewer-keys", "key-type", "key-order"])
    def test_conflicting_config_raises(self, store: curvestore.Store, backend_url: str,
                                       conflict: dict[str, Any]) -> None:
        store.write(key(), curve("2024-01-01", periods=3))
        with pytest.raises(ConfigMismatchError) as info:
            self.reopen(backend_url, **conflict)
        assert isinstance(info.value, ValueError)
        assert set(info.value.differences) == set(conflict)
        settings = {"keys": KEYS, "freq": FREQ, "tz": TZ, "chunking": "month", **conflict}
        with pytest.raises(ConfigMismatchError):
            curvestore.create_store(backend_url, exist_ok=True, **settings)
        with self.reopen(backend_url, freq="15min", tz="Europe/Paris") as same:
            assert same.keys() == [key()]
        with curvestore.create_store(backend_url, exist_ok=True, keys=KEYS, freq="15min",
                                     tz=TZ) as same:
            assert same.config.store_id == store.config.store_id

    # -- codecs ------------------------------------------------------------------------------------
    def test_codec_change_keeps_old_chunks_readable(self, store: curvestore.Store,
                                                    backend_url: str) -> None:
        pytest.importorskip("zstandard")
        assert store.codec == "lz4" and store.info()["codec"] == "lz4"
        a = curve("2024-01-01", periods=500, seed=76)
        store.write(key(n=1), a)
        store.close()
        a_update = curve("2024-02-10", periods=100, seed=77)
        b = curve("2024-01-15", periods=100, seed=78)
        with self.reopen(backend_url, codec="zstd") as zs:
            assert zs.codec == "zstd"
            zs.write(key(n=1), a_update, mode="update")
            zs.write(key(n=2), b)
        c = curve("2024-03-01", periods=10, seed=79)
        with self.reopen(with_option(backend_url, "codec=none")) as plain:
            assert plain.codec == "none"
            plain.write(key(n=3), c)
        with self.reopen(backend_url) as again:
            assert again.codec == "lz4"  # the store's default is unchanged
            assert_series_exact(again.read(key(n=1)), dense(a_update.combine_first(a)))
            assert_series_exact(again.read(key(n=2)), dense(b))
            assert_series_exact(again.read(key(n=3)), dense(c))
            codecs = {(n, r.meta.codec)
                      for n in (1, 2, 3)
                      for r in again.backend.read_chunks(again.schema.key(key(n=n)))}
            assert codecs == {(1, "lz4"), (1, "zstd"), (2, "zstd"), (3, "none")}
            got = {d["n"]: v for d, v in again.read_many()}
            assert_series_exact(got[1], dense(a_update.combine_first(a)))
