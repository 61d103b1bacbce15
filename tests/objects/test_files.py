"""The local-file object store: the shipped conformance suite plus what only files must prove
(temp-file sweeping, directory handling, the on-disk layout)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curvestore.errors import ConflictError
from curvestore.objects import FileObjectStore, ObjectStore
from curvestore.objects._posix import write_all
from curvestore.testing.objects import ObjectStoreConformance, check_payload


class TestFileObjects(ObjectStoreConformance):
    nested_keys = False
    @pytest.fixture
    def object_store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        with FileObjectStore(tmp_path / "objects") as store:
            yield store


class TestFileObjectsNoFsync(ObjectStoreConformance):
    """``fsync=False`` changes durability only: every concurrency guarantee holds."""

    nested_keys = False

    @pytest.fixture
    def object_store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        with FileObjectStore(tmp_path / "objects", fsync=False) as store:
            yield store


_DEAD_WRITER = """
import os, sys
from curvestore.objects import FileObjectStore
store = FileObjectStore(sys.argv[1])
store._write_temp(b"half written")
os._exit(0)  # dies holding a temp file, as a killed writer would
"""

_LOOPING_WRITER = """
import sys
from pathlib import Path
from curvestore.objects import FileObjectStore
from curvestore.testing.objects import payload
store = FileObjectStore(sys.argv[1])
index = 1
store.put("hot", payload(index, 4 << 20))
Path(sys.argv[2]).touch()
while True:
    index += 1
    store.put("hot", payload(index, (4 << 20) + index))
"""


def _temps(root: Path) -> list[Path]:
    return sorted((root / ".curvestore" / "tmp").iterdir())


def test_sweep_removes_only_dead_writers_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = FileObjectStore(root)
    subprocess.run([sys.executable, "-c", _DEAD_WRITER, str(root)], check=True)
    (dead,) = _temps(root)
    fd, live = store._write_temp(b"a live writer's")  # locked by this process
    try:
        assert store.sweep_temporaries(older_than=3600) == 0  # both are young
        assert store.sweep_temporaries(older_than=0) == 1
        assert _temps(root) == [Path(live)]
        assert not dead.exists()
    finally:
        os.close(fd)
        os.unlink(live)


def test_layout_is_plain_files(tmp_path: Path) -> None:
    """An object is a file with exactly its bytes (so a root can be synced to a bucket);
    directories a delete empties are removed; the store's own directory is not listed."""
    store = FileObjectStore(tmp_path)
    store.put("a/b/c.bin", b"\x00payload")
    store.put_if_absent("a/d", b"d")
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"\x00payload"
    store.delete("a/b/c.bin")
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "d").exists()
    store.delete("a/d")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".curvestore"]
    assert list(store.list()) == []
    assert _temps(tmp_path) == []


def test_foreign_entries_are_not_objects(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    store.put("x/real", b"1")
    (tmp_path / "x" / "dir").mkdir()
    os.symlink(tmp_path / "x" / "real", tmp_path / "x" / "link")
    assert [i.key for i in store.list()] == ["x/real"]
    assert store.get("x/dir") is None and store.get_range("x/dir", 0, 1) is None
    assert store.get_suffix("x/dir", 1) is None
    with pytest.raises(ConflictError):
        store.put_if_match("x/dir", b"1", "0.0.0")


def test_reopened_store_and_pickle(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path, fsync=False)
    version = store.put("k", b"v")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.fsync is False and clone.get("k") == (b"v", version)
    assert FileObjectStore(tmp_path).get("k") == (b"v", version)


@pytest.mark.slow
def test_killed_writer_leaves_a_whole_object(tmp_path: Path) -> None:
    """SIGKILL in the middle of replacing a 4 MiB object: the object is one whole version,
    and the dead writer's temp file (if it had one) is swept."""
    root, ready = tmp_path / "objects", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _LOOPING_WRITER, str(root), str(ready)])
    try:
        while not ready.exists():
            assert child.poll() is None, "the writer died on its own"
            time.sleep(0.01)
        time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    store = FileObjectStore(root)
    got = store.get("hot")
    assert got is not None and check_payload(got[0]) >= 1
    store.sweep_temporaries(older_than=0)
    assert _temps(root) == []


def test_write_all_writes_many_parts_in_order(tmp_path: Path) -> None:
    """More parts than one writev takes, empty ones and views among them."""
    parts: list[Any] = [bytes([i % 251]) * (i % 7) for i in range(2500)]
    parts[10] = memoryview(b"view")
    parts[11] = bytearray(b"array")
    parts[12] = np.arange(3, dtype="<i8")
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, iter(parts))
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(bytes(memoryview(p).cast("B")) for p in parts)


def test_write_all_writes_big_parts_as_they_come(tmp_path: Path) -> None:
    """A part of several MiB is on the file before the next one is asked for."""
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    seen: list[int] = []

    def parts() -> Iterator[bytes]:
        for i in range(3):
            yield bytes([i]) * (5 << 20)
            seen.append(os.fstat(fd).st_size)

    try:
        write_all(fd, parts(), sync_every=8 << 20)
    finally:
        os.close(fd)
    assert seen == [5 << 20, 10 << 20, 15 << 20]
    assert path.read_bytes() == b"".join(bytes([i]) * (5 << 20) for i in range(3))
