"""``BackendConformance``: the raw Backend contract (ARCHITECTURE section 3), on any backend.

Subclass it with the same ``backend_url`` fixture as :class:`~curvestore.testing.StoreSemantics`
(a URL to an empty location)::

    class TestMine(BackendConformance):
        shared_between_processes = True     # False for in-process backends (memory)

        @pytest.fixture
        def backend_url(self, tmp_path):
            return f"mine://{tmp_path}/s"

        @pytest.fixture
        def secret_url(self):               # optional: a URL carrying a password
            return "mine://user:s3cret@host/db"   # that must never show in reprs

The tests reach the backend through ``store.backend``, build chunk records with the core's
encoder, and check versions, range reads, ordered streaming scans, tombstones, rollback,
closing and secret hiding; and, from
:class:`~curvestore.testing.backend_concurrency.BackendConcurrency`, that concurrent updates
lose no point and, for backends shared between processes, that a writer killed with SIGKILL
never leaves a torn batch, neither for a read-write open nor for readers that recover nothing
(a handle opened before the kill, a read-only open) (``@pytest.mark.slow``: they run by
default).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import curvestore
from curvestore.backends.memory import MemoryBackend
from curvestore.backends.tiered import tiered_url
from curvestore.core import chunks as _chunks
from curvestore.core.records import ChunkMeta, ChunkRecord, SeriesKey
from curvestore.core.transact import transaction
from curvestore.core.url import parse_url
from curvestore.errors import (
    CurvestoreError,
    IntegrityError,
    InvalidKeyError,
    ReadOnlyError,
    StoreExistsError,
)
from curvestore.registry import get_codec
from curvestore.testing.backend_concurrency import BackendConcurrency
from curvestore.testing.fixtures import FREQ, KEYS, TZ, curve, key

__all__ = ["BackendConformance"]

JAN_2024 = 2024 * 12  # monthly chunk index of January 2024


def _record(k: SeriesKey, chunk: int, values: Any, start: int = 0,
            codec: str = "lz4") -> ChunkRecord:
    piece = _chunks.Piece(chunk, start, np.asarray(values, dtype=np.float64))
    return _chunks.encode(k, piece, get_codec(codec), "float64")


def _tombstone(k: SeriesKey, chunk: int) -> ChunkRecord:
    return ChunkRecord(k, ChunkMeta(chunk=chunk, deleted=True))


def _put(backend: Any, records: list[ChunkRecord]) -> list[Any]:
    keys = sorted({r.key for r in records})
    with transaction(backend, keys) as tx:
        tx.put(records)
    return tx.committed


class BackendConformance(BackendConcurrency):
    """The Backend contract every backend must prove (the concurrency part in
    :class:`~curvestore.testing.backend_concurrency.BackendConcurrency`)."""

    @pytest.fixture
    def secret_url(self) -> str | None:
        """A URL to an empty location that carries a password (None: the test is skipped)."""
        return None

    @pytest.fixture
    def backend(self, store: curvestore.Store) -> Any:
        return store.backend

    # -- manifest ----------------------------------------------------------------------------
    def test_backend_manifest(self, store: curvestore.Store, backend: Any) -> None:
        manifest = backend.read_manifest()
        assert manifest == store.config.manifest()
        with pytest.raises(StoreExistsError):
            backend.create_manifest(store.config.manifest())
        assert backend.read_manifest() == manifest

    # -- versions ------------------------------------------------------------------------------
    def test_backend_versions_increase_per_chunk(self, store: curvestore.Store, backend: Any
                                                 ) -> None:
        k = store.schema.key(key())
        seen: dict[int, list[int]] = {}
        for i in range(4):
            store.write(key(), curve("2024-01-31 23:00", periods=8, seed=i), mode="update")
            for record in backend.read_chunks(k):
                seen.setdefault(record.chunk, []).append(record.meta.version)
        for chunk, versions in seen.items():
            assert len(versions) == 4
            assert versions == sorted(set(versions)), (chunk, versions)
        # raw puts: the version given is ignored; a non-zero updated_at is kept (replication
        # keeps the origin's time), zero means "now"
        before = backend.read_chunks(k, JAN_2024, JAN_2024)[0].meta.version
        assert abs(backend.read_chunks(k, JAN_2024, JAN_2024)[0].meta.updated_at
                   - time.time_ns()) < 3600 * 10**9
        origin = 1_700_000_000_000_000_000  # whole microseconds: SQL timestamp columns keep it
        record = _record(k, JAN_2024, [1.0, 2.0]).with_meta(version=1, updated_at=origin)
        committed = _put(backend, [record])
        (stored,) = backend.read_chunks(k, JAN_2024, JAN_2024)
        assert stored.meta.version > before
        assert stored.meta.updated_at == origin
        assert [(c.key, c.chunk, c.version, c.deleted) for c in committed] == [
            (k, JAN_2024, stored.meta.version, False)]
        tomb = _put(backend, [_tombstone(k, JAN_2024)])
        assert tomb[0].deleted and tomb[0].version > stored.meta.version
        again = _put(backend, [_record(k, JAN_2024, [3.0])])
        assert again[0].version > tomb[0].version
        feed = [i for i in store.changes(limit=10_000).items if i.chunk == JAN_2024]
        assert [i.version for i in feed] == sorted({i.version for i in feed})

    # -- reads -----------------------------------------------------------------------------------
    def test_backend_records_round_trip(self, store: curvestore.Store, backend: Any) -> None:
        k = store.schema.key(key())
        records = [_record(k, JAN_2024 + i, np.arange(i + 1) + 0.5, start=i * 3,
                           codec=("lz4", "none")[i % 2]) for i in range(3)]
        records[1] = _record(k, JAN_2024 + 1, [1.0, np.nan, 3.0], start=7, codec="none")
        _put(backend, records)
        got = backend.read_chunks(k)
        assert [r.chunk for r in got] == [r.chunk for r in records]
        for want, have in zip(records, got, strict=True):
            assert have.key == k and have.payload == want.payload
            for field in ("chunk", "start", "length", "count", "codec", "dtype", "checksum",
                          "size", "deleted"):
                assert getattr(have.meta, field) == getattr(want.meta, field), field
            piece = _chunks.decode(have, get_codec)  # verifies the checksum
            assert piece.start == want.meta.start

    def test_backend_read_chunks_range(self, store: curvestore.Store, backend: Any) -> None:
        k = store.schema.key(key())
        _put(backend, [_record(k, JAN_2024 + i, [float(i)]) for i in range(6)])
        _put(backend, [_record(store.schema.key(key(n=2)), JAN_2024 + 9, [9.0])])

        def chunks(lo: int | None, hi: int | None) -> list[int]:
            return [r.chunk - JAN_2024 for r in backend.read_chunks(k, lo, hi)]

        assert chunks(None, None) == [0, 1, 2, 3, 4, 5]
        assert chunks(JAN_2024 + 1, JAN_2024 + 3) == [1, 2, 3]
        assert chunks(JAN_2024 + 2, JAN_2024 + 2) == [2]
        assert chunks(JAN_2024 + 4, None) == [4, 5]
        assert chunks(None, JAN_2024 + 1) == [0, 1]
        assert chunks(JAN_2024 + 3, JAN_2024 + 2) == []
        assert chunks(JAN_2024 + 6, JAN_2024 + 100) == []
        assert chunks(JAN_2024 - 100, JAN_2024 - 1) == []
        assert chunks(JAN_2024 - 100, JAN_2024 + 100) == [0, 1, 2, 3, 4, 5]
        assert backend.read_chunks(store.schema.key(key(n=3))) == []
        _put(backend, [_tombstone(k, JAN_2024 + 2)])
        assert chunks(JAN_2024 + 1, JAN_2024 + 3) == [1, 3]

    def _populate(self, store: curvestore.Store) -> list[SeriesKey]:
        order = [("b", "x", 1), ("a", "y", 10), ("a", "x", 10), ("a", "x", 2), ("c", "x", 2),
                 ("a", "x", 1), ("ab", "x", 1)]
        backend = store.backend
        for i, t in enumerate(order):
            k = store.schema.key(dict(zip(KEYS, t, strict=True)))
            _put(backend, [_record(k, JAN_2024 + (i % 3), [float(i)]),
                           _record(k, JAN_2024 + 5, [float(i), 1.0])])
        return sorted(order)

    def test_backend_scan_order_and_filter(self, store: curvestore.Store, backend: Any) -> None:
        everything = self._populate(store)
        stream = backend.scan({})
        assert isinstance(stream, Iterator) and not isinstance(stream, (list, tuple))
        first_key, first_records = next(stream)
        assert first_key == everything[0]
        rest = list(stream)
        assert [first_key] + [k for k, _ in rest] == everything
        for k, records in [(first_key, first_records), *rest]:
            chunks = [r.chunk for r in records]
            assert chunks == sorted(chunks) and len(chunks) == 2
            assert all(r.key == k for r in records)
            for r in records:
                _chunks.decode(r, get_codec)

        def keys(where: dict[str, Any], lo: int | None = None, hi: int | None = None
                 ) -> list[SeriesKey]:
            return [k for k, _ in backend.scan(where, lo, hi)]

        assert keys({"site": "a"}) == [t for t in everything if t[0] == "a"]
        assert keys({"n": 10}) == [("a", "x", 10), ("a", "y", 10)]
        assert keys({"n": 2}) == [("a", "x", 2), ("c", "x", 2)]
        assert keys({"site": "a", "kind": "x"}) == [("a", "x", 1), ("a", "x", 2), ("a", "x", 10)]
        assert keys({"site": "zz"}) == []
        # a chunk range drops the chunks outside it and the series with none inside
        in_range = list(backend.scan({}, JAN_2024, JAN_2024))
        assert all([r.chunk for r in rs] == [JAN_2024] for _, rs in in_range)
        assert len(in_range) == 3
        assert len(keys({}, JAN_2024 + 5, None)) == len(everything)
        assert keys({}, JAN_2024 + 6, None) == []

    def test_backend_list_series_excludes_tombstoned(self, store: curvestore.Store,
                                                     backend: Any) -> None:
        everything = self._populate(store)
        assert list(backend.list_series({})) == everything
        assert isinstance(backend.list_series({}), Iterator)
        gone, partly = everything[0], everything[1]
        _put(backend, [_tombstone(gone, r.chunk) for r in backend.read_chunks(gone)])
        _put(backend, [_tombstone(partly, JAN_2024 + 5)])
        assert list(backend.list_series({})) == everything[1:]
        assert [k for k, _ in backend.list_metas({})] == everything[1:]
        assert [k for k, _ in backend.scan({})] == everything[1:]
        metas = dict(backend.list_metas({"site": partly[0]}))
        assert [m.chunk for m in metas[partly]] == [r.chunk for r in backend.read_chunks(partly)]
        assert all(not m.deleted for ms in metas.values() for m in ms)
        assert list(backend.list_series({"site": partly[0], "n": partly[2]})) == [
            k for k in everything[1:] if k[0] == partly[0] and k[2] == partly[2]]

    # -- transactions ----------------------------------------------------------------------------
    def test_backend_rollback_on_exception(self, store: curvestore.Store, backend: Any) -> None:
        k1, k2 = store.schema.key(key(n=1)), store.schema.key(key(n=2))
        original = _record(k1, JAN_2024, [1.0, 2.0])
        _put(backend, [original])
        cursor = store.changes().cursor
        with pytest.raises(RuntimeError, match="boom"), transaction(backend, [k1, k2]) as tx:
            assert [m.chunk for m in tx.live_metas(k1)] == [JAN_2024]
            tx.put([_record(k1, JAN_2024, [5.0]), _record(k1, JAN_2024 + 1, [6.0])])
            tx.put([_record(k2, JAN_2024, [7.0]), _tombstone(k1, JAN_2024)])
            raise RuntimeError("boom")
        (kept,) = backend.read_chunks(k1)
        assert kept.payload == original.payload
        assert backend.read_chunks(k2) == []
        assert list(backend.list_series({})) == [k1]
        assert store.changes(cursor).items == []
        # and the series are not left locked
        _put(backend, [_record(k2, JAN_2024, [8.0])])
        assert list(backend.list_series({})) == [k1, k2]

    def test_backend_transaction_reads_its_own_series(self, store: curvestore.Store,
                                                      backend: Any) -> None:
        k = store.schema.key(key())
        _put(backend, [_record(k, JAN_2024 + i, [float(i)]) for i in range(3)])
        with transaction(backend, [k]) as tx:
            assert [m.chunk for m in tx.live_metas(k)] == [JAN_2024 + i for i in range(3)]
            assert [r.chunk for r in tx.read(k, JAN_2024 + 1, None)] == [JAN_2024 + 1,
                                                                          JAN_2024 + 2]
            assert tx.read(k, JAN_2024 + 1, JAN_2024)[:1] == []
        assert tx.committed == []
        assert len(store.changes(limit=100).items) == 3

    def test_backend_put_outside_transaction_keys_raises(self, store: curvestore.Store,
                                                         backend: Any) -> None:
        k1, k2 = store.schema.key(key(n=1)), store.schema.key(key(n=2))
        with pytest.raises(InvalidKeyError), transaction(backend, [k1]) as tx:
            tx.put([_record(k1, JAN_2024, [1.0])])
            tx.put([_record(k2, JAN_2024, [2.0])])
        assert backend.read_chunks(k2) == []
        assert backend.read_chunks(k1) == []
        assert store.changes().items == []

    def test_backend_damaged_payload_is_an_integrity_error(self, store: curvestore.Store,
                                                           backend: Any) -> None:
        """A payload that no longer matches its checksum (as after a flipped bit on disk) is
        refused as IntegrityError by every read path, never returned as data; the backend
        may refuse it at the put already."""
        k = store.schema.key(key())
        good = _record(k, JAN_2024, [1.0, 2.0, 3.0], codec="none")
        damaged = good.with_meta(checksum=good.meta.checksum ^ 0x1)
        try:
            _put(backend, [damaged])
        except IntegrityError:
            return
        reads = {"read": lambda: store.read(key()),
                 "read_many": lambda: list(store.read_many()),
                 "verify": lambda: self._verify_fails(store)}
        for name, read in reads.items():
            with pytest.raises(IntegrityError):
                read()
                pytest.fail(f"{name} returned damaged data")

    @staticmethod
    def _verify_fails(store: curvestore.Store) -> None:
        from curvestore.core.verify import verify_store

        report = verify_store(store)
        if not report.ok:
            raise IntegrityError("; ".join(f.message for f in report.failures))

    def test_backend_read_only(self, store: curvestore.Store, backend_url: str) -> None:
        k = store.schema.key(key())
        _put(store.backend, [_record(k, JAN_2024, [1.0])])
        with self.reopen(backend_url, read_only=True) as ro:
            with pytest.raises(ReadOnlyError):
                ro.transact([k], lambda tx: tx.put([_record(k, JAN_2024, [2.0])]))
            assert [r.payload for r in ro.backend.read_chunks(k)] == [
                r.payload for r in store.backend.read_chunks(k)]

    # -- lifecycle -------------------------------------------------------------------------------
    def test_backend_close_is_idempotent(self, store: curvestore.Store, backend_url: str
                                         ) -> None:
        store.write(key(), curve("2024-01-01", periods=5))
        other = self.reopen(backend_url)
        other.backend.close()
        other.backend.close()
        other.close()
        store.close()
        store.close()
        with self.reopen(backend_url) as again:
            assert again.keys() == [key()]
            again.close()

    def test_backend_repr_hides_secrets(self, secret_url: str | None) -> None:
        if secret_url is None:
            pytest.skip("no secret_url fixture: this backend takes no password in its URL")
        password = parse_url(secret_url).password
        assert password, "secret_url must carry a password"
        with curvestore.create_store(secret_url, keys=KEYS, freq=FREQ, tz=TZ) as store:
            shown = [repr(store), str(store), repr(store.backend), str(store.info()),
                     store.url]
            try:
                curvestore.create_store(secret_url, keys=KEYS, freq=FREQ, tz=TZ)
            except StoreExistsError as exc:
                shown.append(str(exc))
            with pytest.raises(CurvestoreError) as info:
                curvestore.open_store(secret_url, freq="1h")
            shown.append(str(info.value))
            # the same URL nested in another (a tiered store's hot tier) is redacted alike
            cold_name = f"secret-cold-{uuid.uuid4().hex}"
            try:
                with curvestore.create_store(f"memory://{cold_name}", keys=KEYS, freq=FREQ,
                                             tz=TZ), \
                        curvestore.open_store(tiered_url(secret_url,
                                                         f"memory://{cold_name}")) as tiered:
                    shown += [tiered.url, str(tiered.info()), repr(tiered),
                              repr(tiered.backend)]
            finally:
                MemoryBackend.forget(cold_name)
        for text in shown:
            assert password not in text, f"the password shows in {text!r}"
