"""Work the object-store conformance tests (:mod:`curvestore.testing.objects`) run in other
threads or processes, at module level so ``spawn``-ed children import it; and the
self-describing payloads that tell a torn read from a whole one."""

from __future__ import annotations

import struct
from typing import Any

from curvestore.errors import ConflictError
from curvestore.objects.base import ObjectStore

__all__ = ["HEADER", "check_payload", "increment", "payload", "race_create", "replace_loop",
           "torn_size"]

HEADER = struct.Struct("<QQ")


def payload(index: int, size: int) -> bytes:
    """A self-describing object: its index and size, then ``size`` copies of one byte."""
    return HEADER.pack(index, size) + bytes([index % 251]) * size


def check_payload(data: bytes) -> int:
    """The index of a :func:`payload`; AssertionError if ``data`` is not a whole one."""
    assert len(data) >= HEADER.size, f"torn read: {len(data)} bytes"
    index, size = HEADER.unpack_from(data)
    assert len(data) == HEADER.size + size, f"torn read: {len(data)} bytes, header says {size}"
    assert data[HEADER.size:] == bytes([index % 251]) * size, "torn read: mixed content"
    return int(index)


def torn_size(index: int) -> int:
    return (64 << 10) + (index * 7919 % 16) * (48 << 10)  # 64 KiB .. ~800 KiB


def race_create(store: ObjectStore, keys: list[str], worker: int, barrier: Any,
                results: Any) -> None:
    """Try to create each key; report ``(key, worker, version or None)`` for each."""
    barrier.wait(timeout=120)
    for key in keys:
        try:
            version: str | None = store.put_if_absent(key, f"{worker}".encode())
        except ConflictError:
            version = None
        results.put((key, worker, version))


def increment(store: ObjectStore, key: str, times: int, barrier: Any, results: Any) -> None:
    """Add 1 to the counter object ``times`` times with compare-and-swap retry loops;
    report the number of conflicts met."""
    barrier.wait(timeout=120)
    conflicts = 0
    for _ in range(times):
        while True:
            got = store.get(key)
            assert got is not None
            data, version = got
            try:
                store.put_if_match(key, str(int(data) + 1).encode(), version)
                break
            except ConflictError:
                conflicts += 1
    results.put(conflicts)


def replace_loop(store: ObjectStore, key: str, rounds: int, barrier: Any, results: Any) -> None:
    """Replace ``key`` with payloads 1 .. rounds, one after the other."""
    barrier.wait(timeout=120)
    for index in range(1, rounds + 1):
        store.put(key, payload(index, torn_size(index)))
    results.put(rounds)
