"""``ObjectStoreConformance``: the object-store contract (:mod:`curvestore.objects.base`), on
any adapter.

An adapter's test module subclasses it and provides an ``object_store`` fixture (a new, empty
store)::

    class TestMine(ObjectStoreConformance):
        shared_between_processes = True     # False for in-process stores (memory)

        @pytest.fixture
        def object_store(self, tmp_path):
            return MineObjectStore(tmp_path)

Stores shared between processes must pickle (as the arguments that reopen them): the
process tests send them to ``spawn``-ed children. Those tests race ``put_if_absent`` and
compare-and-increment loops between processes, and read an object while another process
replaces it in a loop; the same races also run between threads, for every adapter.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from curvestore.errors import ConflictError, InvalidDataError, InvalidKeyError
from curvestore.objects.base import ObjectStore
from curvestore.testing.object_races import (
    HEADER,
    check_payload,
    increment,
    payload,
    race_create,
    replace_loop,
    torn_size,
)

__all__ = ["ObjectStoreConformance"]

#: Keys whose order is easy to get wrong: '-' and '.' sort before '/', which sorts before '0'.
ORDER_KEYS = ["a-b", "a.b", "a/b-", "a/b.c/d", "a/b/c", "a/b0", "a/bc", "a0", "ab", "b",
              "log/0009", "log/0010", "x/é", "x/z", "x/ü/1", "Z", "é", "éa/1"]
BAD_KEYS: list[Any] = ["", "/a", "a/", "a//b", "./a", "a/./b", "a/../b", "..", "a\x00b",
                       "a\nb", "a\\b", "\ud800", "x" * 1025, "s/" + "y" * 256, ".curvestore/x",
                       None, 1, b"a"]
class ObjectStoreConformance:
    """The shipped tests of the object-store contract; see the module docstring."""

    #: False for stores that live in one process (their process tests are skipped).
    shared_between_processes: ClassVar[bool] = True
    #: Racing workers (threads and processes).
    workers: ClassVar[int] = 8
    #: Keys every worker tries to create in the put_if_absent races.
    race_keys: ClassVar[int] = 40
    #: Increments per worker in the compare-and-increment races.
    increments: ClassVar[int] = 20
    #: Replacements done while another worker reads (torn-read tests).
    torn_rounds: ClassVar[int] = 60
    #: An object "a" and objects "a/..." can coexist (files: InvalidKeyError for the second).
    nested_keys: ClassVar[bool] = True
    #: Seconds before a test gives up on a child process.
    process_timeout: ClassVar[float] = 180.0

    @pytest.fixture
    def object_store(self) -> ObjectStore:
        """Override: an empty store of the adapter under test."""
        pytest.fail(f"{type(self).__name__} must define an `object_store` fixture returning "
                    "an empty store of the adapter under test")

    @pytest.fixture
    def secrets(self) -> list[str]:
        """Strings that must never appear in a repr, a pickle or an error message (the
        values of credential variables in the environment are always checked too)."""
        return []

    # -- helpers ------------------------------------------------------------------------------
    def require_processes(self) -> None:
        if not self.shared_between_processes:
            pytest.skip(f"{type(self).__name__}: the store is not shared between processes")

    def run_workers(self, kind: str, target: Callable[..., None], store: ObjectStore,
                    args: list[tuple[Any, ...]], per_worker: int = 1) -> list[Any]:
        """Run ``target(store, *a, barrier, results)`` for each ``a`` in threads or spawned
        processes, all released together; returns the ``per_worker`` results each put in
        ``results``."""
        if kind == "process":
            ctx = multiprocessing.get_context("spawn")
            barrier: Any = ctx.Barrier(len(args))
            results: Any = ctx.Queue()
            workers: list[Any] = [ctx.Process(target=target, args=(store, *a, barrier, results))
                                  for a in args]
        else:
            barrier, results = threading.Barrier(len(args)), queue.Queue()
            errors: list[BaseException] = []

            def guarded(*a: Any) -> None:
                try:
                    target(*a)
                except BaseException as exc:
                    errors.append(exc)
                    barrier.abort()
                    raise

            workers = [threading.Thread(target=guarded, args=(store, *a, barrier, results))
                       for a in args]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(self.process_timeout)
        hung = [w for w in workers if w.is_alive()]
        for worker in hung:
            if kind == "process":
                worker.kill()
                worker.join()
        assert not hung, f"{len(hung)} {kind}(es) hung"
        if kind == "process":
            assert [w.exitcode for w in workers] == [0] * len(workers)
        else:
            assert not errors, errors
        return [results.get(timeout=self.process_timeout)
                for _ in range(per_worker * len(args))]

    # -- round trips ----------------------------------------------------------------------------
    @pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 3, b"\x00" * 1000],
                             ids=["empty", "one-byte", "binary", "zeros"])
    def test_round_trip(self, object_store: ObjectStore, data: bytes) -> None:
        version = object_store.put("a/b.bin", data)
        assert isinstance(version, str) and version
        assert object_store.get("a/b.bin") == (data, version)

    def test_round_trip_large(self, object_store: ObjectStore) -> None:
        data = os.urandom(1 << 20) * 20  # 20 MiB
        version = object_store.put("big", data)
        got = object_store.get("big")
        assert got is not None and got[1] == version and got[0] == data
        assert object_store.get_range("big", 19 << 20, 10) == data[19 << 20:(19 << 20) + 10]
        assert object_store.get_suffix("big", 100) == data[-100:]

    def test_put_parts(self, object_store: ObjectStore) -> None:
        parts = [payload(i, 70_000 * i) for i in range(4)]
        pieces: list[bytes | bytearray] = [*parts, bytearray(b"x")]
        version = object_store.put_parts("joined", iter(pieces))
        assert object_store.get("joined") == (b"".join(parts) + b"x", version)
        with pytest.raises(InvalidDataError):
            object_store.put_parts("joined", [b"a", "text"])  # type: ignore[list-item]
        assert object_store.get("joined") == (b"".join(parts) + b"x", version)  # untouched

    def test_bytes_like_data(self, object_store: ObjectStore) -> None:
        source = bytearray(b"mutable")
        object_store.put("k1", source)
        source[:] = b"changed"  # the store keeps what was given at the call
        object_store.put_if_absent("k2", memoryview(b"view"))
        assert [object_store.get(k)[0] for k in ("k1", "k2")] == [b"mutable", b"view"]  # type: ignore[index]

    @pytest.mark.parametrize("data", ["text", 12, None, [1, 2]])
    def test_non_bytes_data_is_refused(self, object_store: ObjectStore, data: Any) -> None:
        for call in (lambda: object_store.put("k", data),
                     lambda: object_store.put_if_absent("k", data),
                     lambda: object_store.put_if_match("k", data, "v")):
            with pytest.raises(InvalidDataError):
                call()
        assert object_store.get("k") is None

    def test_missing_objects_read_as_none(self, object_store: ObjectStore) -> None:
        assert object_store.get("nope") is None
        assert object_store.get_range("nope", 0, 5) is None
        assert object_store.get_range("nope", 0, 0) is None
        assert object_store.get_suffix("nope", 5) is None
        assert object_store.get_suffix("nope", 0) is None
        assert object_store.get_many(["nope", "no/pe"]) == [None, None]

    # -- ranges and suffixes --------------------------------------------------------------------
    @pytest.mark.parametrize("size", [0, 1, 100])
    def test_ranges(self, object_store: ObjectStore, size: int) -> None:
        data = bytes(i % 256 for i in range(size))
        object_store.put("r", data)
        for start in (0, 1, 50, size - 1, size, size + 1, 1000):
            if start < 0:
                continue
            for length in (None, 0, 1, 10, size, size + 5):
                want = data[start:] if length is None else data[start:start + length]
                assert object_store.get_range("r", start, length) == want, (start, length)
        for length in (0, 1, 10, size, size + 5, 10**9):
            want = data[len(data) - min(length, len(data)):]
            assert object_store.get_suffix("r", length) == want, length

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
    def test_bad_range_arguments(self, object_store: ObjectStore, bad: Any) -> None:
        object_store.put("r", b"0123456789")
        with pytest.raises(InvalidDataError):
            object_store.get_range("r", bad, 2)
        if bad is not None:
            with pytest.raises(InvalidDataError):
                object_store.get_range("r", 0, bad)
            with pytest.raises(InvalidDataError):
                object_store.get_suffix("r", bad)

    def test_get_many_and_ranges(self, object_store: ObjectStore) -> None:
        keys = [f"many/{i:03d}" for i in range(40)]
        versions = {k: object_store.put(k, k.encode() * 3) for k in keys}
        asked = [*keys, "many/missing", keys[0]]
        got = object_store.get_many(asked)
        assert got == [(k.encode() * 3, versions[k]) for k in keys] + [
            None, (keys[0].encode() * 3, versions[keys[0]])]
        requests: list[tuple[str, int, int | None]] = [(k, 2, 4) for k in keys]
        requests += [("many/missing", 0, 1), (keys[1], 100, 5), (keys[2], 1, None)]
        want = [k.encode()[2:6] for k in keys] + [None, b"", (keys[2].encode() * 3)[1:]]
        assert object_store.get_ranges(requests) == want
        assert object_store.get_many([]) == [] and object_store.get_ranges([]) == []

    def test_ranges_as_views(self, object_store: ObjectStore) -> None:
        data = payload(7, 3 << 20)  # large enough for a file store to map it
        object_store.put("big", data)
        requests: list[tuple[str, int, int | None]] = [
            ("big", 0, 10), ("big", 5, 1 << 20), ("big", len(data) - 100, 1000),
            ("big", 70_001, None), ("big", len(data) + 1, 4), ("missing", 0, 5)]
        got = object_store.get_ranges(requests, views=True)
        assert [None if g is None else bytes(g) for g in got] == [
            data[:10], data[5:5 + (1 << 20)], data[-100:], data[70_001:], b"", None]
        # what was returned stays as read after the object is replaced, then deleted
        object_store.put("big", b"replaced")
        object_store.delete("big")
        assert bytes(got[1]) == data[5:5 + (1 << 20)] and bytes(got[3]) == data[70_001:]
        with pytest.raises(InvalidKeyError):
            object_store.get_ranges([("../x", 0, 1)], views=True)

    # -- versions -------------------------------------------------------------------------------
    def test_versions_change_on_every_put(self, object_store: ObjectStore) -> None:
        contents = [b"A", b"B", b"A", b"BB", b"", b"A"]
        seen: list[str] = []
        for data in contents:
            version = object_store.put("v", data)
            assert object_store.get("v") == (data, version)
            (listed,) = list(object_store.list("v"))
            assert (listed.key, listed.size, listed.version) == ("v", len(data), version)
            assert not seen or version != seen[-1]
            seen.append(version)
        by_content: dict[bytes, set[str]] = {}
        for data, version in zip(contents, seen, strict=True):
            by_content.setdefault(data, set()).add(version)
        # never one version for two contents: a compare-and-swap cannot overwrite unread bytes
        for data, versions in by_content.items():
            for other, other_versions in by_content.items():
                if other != data:
                    assert not versions & other_versions
        if object_store.unique_versions:
            assert len(set(seen)) == len(seen), seen
            again = object_store.put("v", b"A")
            assert again not in seen
        for call in (lambda: object_store.put_if_match("v", b"x", ""),
                     lambda: object_store.put_if_match("v", b"x", None),  # type: ignore[arg-type]
                     lambda: object_store.delete("v", if_match="")):
            with pytest.raises(InvalidDataError):
                call()

    def test_put_if_absent(self, object_store: ObjectStore) -> None:
        version = object_store.put_if_absent("log/00000000000000000001.json", b"first")
        with pytest.raises(ConflictError):
            object_store.put_if_absent("log/00000000000000000001.json", b"second")
        assert object_store.get("log/00000000000000000001.json") == (b"first", version)
        object_store.delete("log/00000000000000000001.json")
        again = object_store.put_if_absent("log/00000000000000000001.json", b"third")
        assert object_store.get("log/00000000000000000001.json") == (b"third", again)

    def test_put_if_match(self, object_store: ObjectStore) -> None:
        first = object_store.put("ref", b"1")
        second = object_store.put_if_match("ref", b"2", first)
        assert second != first
        with pytest.raises(ConflictError):
            object_store.put_if_match("ref", b"stale", first)
        assert object_store.get("ref") == (b"2", second)
        (listed,) = list(object_store.list("ref"))
        third = object_store.put_if_match("ref", b"3", listed.version)
        assert object_store.get("ref") == (b"3", third)
        object_store.delete("ref")
        with pytest.raises(ConflictError):
            object_store.put_if_match("ref", b"gone", third)
        assert object_store.get("ref") is None

    def test_delete(self, object_store: ObjectStore) -> None:
        object_store.delete("never/was")  # no error without if_match
        version = object_store.put("d/x", b"x")
        newer = object_store.put("d/x", b"y")
        with pytest.raises(ConflictError):
            object_store.delete("d/x", if_match=version)
        assert object_store.get("d/x") == (b"y", newer)
        object_store.delete("d/x", if_match=newer)
        assert object_store.get("d/x") is None
        assert list(object_store.list("d/")) == []
        with pytest.raises(ConflictError):
            object_store.delete("d/x", if_match=newer)
        object_store.put("d/x", b"back")  # the key is usable again
        assert object_store.get("d/x")[0] == b"back"  # type: ignore[index]

    # -- listings -------------------------------------------------------------------------------
    def test_list_order_prefixes_and_start_after(self, object_store: ObjectStore) -> None:
        versions = {k: object_store.put(k, k.encode()) for k in reversed(ORDER_KEYS)}
        ordered = sorted(ORDER_KEYS)
        listed = list(object_store.list())
        assert [i.key for i in listed] == ordered
        assert all(i.size == len(i.key.encode()) and i.version == versions[i.key]
                   for i in listed)
        for prefix in ("", "a", "a/", "a/b", "a/b/", "log/0", "x/", "x/ü", "é", "q", "a-"):
            want = [k for k in ordered if k.startswith(prefix)]
            assert [i.key for i in object_store.list(prefix)] == want, prefix
            for after in [*ORDER_KEYS, "", "a/", "a/b/", "a/a", "log/", "log/00095", "x/ü", "~"]:
                want_after = [k for k in want if k > after]
                got = [i.key for i in object_store.list(prefix, start_after=after)]
                assert got == want_after, (prefix, after)

    def test_numbered_log(self, object_store: ObjectStore) -> None:
        for n in (3, 1, 12, 2, 10, 11):
            object_store.put_if_absent(f"log/{n:020d}.json", b"{}")
        object_store.put("log-head.json", b"{}")
        names = [i.key for i in object_store.list("log/")]
        assert names == [f"log/{n:020d}.json" for n in (1, 2, 3, 10, 11, 12)]
        tail = [i.key for i in object_store.list("log/", start_after=f"log/{3:020d}.json")]
        assert tail == [f"log/{n:020d}.json" for n in (10, 11, 12)]
        assert list(object_store.list("nothing/")) == []

    def test_list_many_keys(self, object_store: ObjectStore) -> None:
        keys = [f"p/{i % 7}/{i:05d}" for i in range(300)]
        for k in keys:
            object_store.put(k, b"")
        assert [i.key for i in object_store.list("p/")] == sorted(keys)
        assert [i.key for i in object_store.list("p/3/")] == sorted(k for k in keys
                                                                   if k.startswith("p/3/"))

    # -- keys -----------------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", BAD_KEYS, ids=lambda k: repr(k)[:20])
    def test_bad_keys_are_refused(self, object_store: ObjectStore, bad: Any) -> None:
        calls: list[Callable[[], Any]] = [
            lambda: object_store.get(bad), lambda: object_store.get_range(bad, 0, 1),
            lambda: object_store.get_suffix(bad, 1), lambda: object_store.get_many([bad]),
            lambda: object_store.put(bad, b"x"), lambda: object_store.put_if_absent(bad, b"x"),
            lambda: object_store.put_if_match(bad, b"x", "v"), lambda: object_store.delete(bad)]
        for call in calls:
            with pytest.raises(InvalidKeyError) as info:
                call()
            assert info.value.key is bad or info.value.key == bad
        assert list(object_store.list()) == []

    def test_key_and_keys_under_it(self, object_store: ObjectStore) -> None:
        object_store.put("n", b"object")
        object_store.put("m/x", b"under")
        if self.nested_keys:
            object_store.put("n/x", b"under")
            object_store.put_if_absent("m", b"object")
            assert [i.key for i in object_store.list()] == ["m", "m/x", "n", "n/x"]
            return
        for call in (lambda: object_store.put("n/x", b"under"),
                     lambda: object_store.put_if_absent("n/x/y", b"under"),
                     lambda: object_store.put("m", b"object"),
                     lambda: object_store.put_if_absent("m", b"object")):
            with pytest.raises(InvalidKeyError):
                call()
        assert object_store.get("m") is None and object_store.get("n/x") is None
        assert [i.key for i in object_store.list()] == ["m/x", "n"]

    @pytest.mark.parametrize("bad", ["/a", "a//", "a/../", "x\x00", ".curvestore/", None])
    def test_bad_prefixes_are_refused(self, object_store: ObjectStore, bad: Any) -> None:
        with pytest.raises(InvalidKeyError):
            list(object_store.list(bad))

    def test_unusual_valid_keys(self, object_store: ObjectStore) -> None:
        keys = ["..a", "a..", ".hidden", "sp ace/tab-less", "日本/語", "e\u0301", "x" * 255,
                "/".join(["s"] * 300), "a:b@c=d+e%20"]
        for k in keys:
            object_store.put(k, k.encode())
        assert [i.key for i in object_store.list()] == sorted(keys)
        assert all(object_store.get(k)[0] == k.encode() for k in keys)  # type: ignore[index]

    # -- races ----------------------------------------------------------------------------------
    def _race_create(self, object_store: ObjectStore, kind: str) -> None:
        keys = [f"race/{i:03d}" for i in range(self.race_keys)]
        results = self.run_workers(kind, race_create, object_store,
                                   [(keys, w) for w in range(self.workers)], len(keys))
        assert len(results) == len(keys) * self.workers
        for key in keys:
            winners = [(w, v) for k, w, v in results if k == key and v is not None]
            assert len(winners) == 1, f"{key}: winners {winners}"
            ((worker, version),) = winners
            assert object_store.get(key) == (f"{worker}".encode(), version)

    def test_put_if_absent_race_threads(self, object_store: ObjectStore) -> None:
        self._race_create(object_store, "thread")

    @pytest.mark.slow
    def test_put_if_absent_race_processes(self, object_store: ObjectStore) -> None:
        self.require_processes()
        self._race_create(object_store, "process")

    def _race_increment(self, object_store: ObjectStore, kind: str) -> None:
        object_store.put("counter", b"0")
        self.run_workers(kind, increment, object_store,
                         [("counter", self.increments)] * self.workers)
        got = object_store.get("counter")
        assert got is not None and int(got[0]) == self.workers * self.increments

    def test_compare_and_increment_threads(self, object_store: ObjectStore) -> None:
        self._race_increment(object_store, "thread")

    @pytest.mark.slow
    def test_compare_and_increment_processes(self, object_store: ObjectStore) -> None:
        self.require_processes()
        self._race_increment(object_store, "process")

    def _torn(self, object_store: ObjectStore, kind: str) -> None:
        object_store.put("hot", payload(0, torn_size(0)))
        done: list[Any] = []
        runner = threading.Thread(target=lambda: done.append(self.run_workers(
            kind, replace_loop, object_store, [("hot", self.torn_rounds)])))
        runner.start()
        reads, seen = 0, set()
        while runner.is_alive() or reads == 0:
            got = object_store.get("hot")
            assert got is not None
            seen.add(check_payload(got[0]))
            head = object_store.get_range("hot", 0, HEADER.size)
            assert head is not None and len(head) == HEADER.size
            tail = object_store.get_suffix("hot", 1000)
            assert tail is not None and len(set(tail)) == 1, "torn suffix read"
            reads += 1
        runner.join()
        assert done == [[self.torn_rounds]], "the writer failed"
        assert check_payload(object_store.get("hot")[0]) == self.torn_rounds  # type: ignore[index]
        assert seen <= set(range(self.torn_rounds + 1))

    def test_reads_never_torn_threads(self, object_store: ObjectStore) -> None:
        self._torn(object_store, "thread")

    @pytest.mark.slow
    def test_reads_never_torn_processes(self, object_store: ObjectStore) -> None:
        self.require_processes()
        self._torn(object_store, "process")

    # -- secrets, pickling ----------------------------------------------------------------------
    def test_no_secret_in_repr_pickle_or_errors(self, object_store: ObjectStore,
                                                secrets: list[str]) -> None:
        hidden = [s for s in [*secrets, *(os.environ.get(n) for n in (
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))] if s]
        texts = [repr(object_store), str(object_store)]
        object_store.put("s", b"1")
        for call in (lambda: object_store.put_if_absent("s", b"2"),
                     lambda: object_store.put_if_match("s", b"2", "stale-version"),
                     lambda: object_store.get("a//b")):
            with pytest.raises((ConflictError, InvalidKeyError)) as info:
                call()
            texts.append(str(info.value))
        if self.shared_between_processes:
            blob = pickle.dumps(object_store)
            texts.append(blob.decode("latin-1"))
            clone = pickle.loads(blob)
            try:
                assert clone.get("s") == object_store.get("s")
            finally:
                clone.close()
        for text in texts:
            for secret in hidden:
                assert secret not in text

    def test_context_manager(self, object_store: ObjectStore) -> None:
        with object_store as same:
            assert same is object_store
            same.put("c", b"1")


def iter_keys(store: ObjectStore, prefix: str = "") -> Iterator[str]:
    """The keys of a listing (a convenience for adapter-specific tests)."""
    return (info.key for info in store.list(prefix))
