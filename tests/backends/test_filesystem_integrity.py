"""Damage the shared suites cannot make: bytes of the manifest and the change log, stray and
misplaced files, a full disk during a log append, and a second PID namespace sharing the
store. Each is detected as IntegrityError naming the file (or reported by ``verify``), or
cannot corrupt the store at all."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import curvestore
from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.cli import main
from curvestore.core.transact import transaction
from curvestore.errors import ConfigMismatchError, IntegrityError
from curvestore.registry import get_codec

KEYS = {"site": str, "kind": str, "n": int}
A = {"site": "a", "kind": "k", "n": 1}
B = {"site": "b", "kind": "k", "n": 2}


def _series(start: str, periods: int, value: float = 1.0) -> pd.Series:
    index = pd.date_range(start, periods=periods, freq="1h", tz="UTC")
    return pd.Series(np.full(periods, value), index=index)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "s"


@pytest.fixture
def store(root: Path) -> Iterator[curvestore.Store]:
    s = curvestore.create_store(f"file-shards://{root}", keys=KEYS, freq="1h", tz="UTC")
    s.write(A, _series("2024-01-01", 240, 2.5))
    s.write(B, _series("2024-03-01", 48, 1.5))
    yield s
    s.close()


def _verify(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["verify", f"file-shards://{root}?read_only=true"])
    return code, capsys.readouterr().out


def _segment(root: Path) -> Path:
    (path,) = sorted((root / "log").glob("*.log"))
    return path


def _shard(root: Path, key: dict) -> Path:
    return root / "series" / f"site={key['site']}" / f"kind={key['kind']}" / f"n={key['n']}" \
        / "2024.cvs"


# -- manifest ------------------------------------------------------------------------------

def test_flipped_manifest_byte_is_refused_at_open_and_by_verify(store, root: Path, capsys
                                                                ) -> None:
    store.close()
    manifest = root / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"1h"', b'"3h"'))
    for read_only in (False, True):
        with pytest.raises(IntegrityError, match=r"manifest\.json.*checksum"):
            curvestore.open_store(f"file-shards://{root}", read_only=read_only)
    code, out = _verify(root, capsys)
    assert code == 1 and "FAILED store" in out and "checksum" in out


def _unseal(root: Path) -> dict:
    """Make the store look written by a version without manifest checksums."""
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["checksum"]
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def test_manifest_without_checksum_still_opens_and_is_sealed_by_a_read_write_open(
        store, root: Path, capsys) -> None:
    store.close()
    _unseal(root)
    with curvestore.open_store(f"file-shards://{root}", read_only=True) as ro:
        assert ro.read(A).tolist() == [2.5] * 240
    assert "checksum" not in json.loads((root / "manifest.json").read_text())
    assert _verify(root, capsys)[0] == 0
    with curvestore.open_store(f"file-shards://{root}") as rw:
        rw.write(A, _series("2024-01-02", 2, 9.0), mode="update")
    sealed = json.loads((root / "manifest.json").read_text())
    assert len(sealed["checksum"]) == 8
    with curvestore.open_store(f"file-shards://{root}") as again:
        assert again.read(A).tolist().count(9.0) == 2


def test_hand_edited_freq_without_checksum_is_caught_by_the_shards_grid(store, root: Path,
                                                                        capsys) -> None:
    store.close()
    manifest = _unseal(root)
    manifest["freq"] = "3h"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with curvestore.open_store(f"file-shards://{root}", read_only=True) as ro, \
            pytest.raises(IntegrityError, match=r"2024\.cvs.*another store or grid"):
        ro.read(A)
    code, out = _verify(root, capsys)
    assert code == 1 and "another store or grid" in out


def test_shards_without_grid_fingerprint_are_accepted(store, root: Path) -> None:
    """Shards written before the fingerprint existed keep reading."""
    path = _shard(root, A)
    data = path.read_bytes()
    index, records = file_shards.decode_records(data, str(path))
    rows = json.loads(data[index.offsets[-1] + index.metas[-1].size:-file_shards.TRAILER_SIZE])
    assert rows.pop("grid")
    raw = json.dumps(rows, separators=(",", ":")).encode()
    import struct
    import zlib
    trailer = struct.pack("<II4s", len(raw), zlib.crc32(raw), b"CVF1")
    path.write_bytes(b"".join(r.payload for r in records) + raw + trailer)
    assert file_shards.decode_index(path.read_bytes(), path.stat().st_size, "x").grid is None
    assert store.read(A).tolist() == [2.5] * 240


def test_store_recreated_under_an_open_handle_refuses_its_writes(store, root: Path) -> None:
    shutil.rmtree(root)
    with curvestore.create_store(f"file-shards://{root}", keys=KEYS, freq="3h", tz="UTC") as other:
        other.write(A, _series("2024-01-01", 4, 7.0).asfreq("3h"))
    with pytest.raises(ConfigMismatchError, match="freq"):
        store.write(B, _series("2024-05-01", 4, 1.0), mode="update")
    with pytest.raises(IntegrityError, match="another store or grid"):
        store.read(A)
    with curvestore.open_store(f"file-shards://{root}") as other:
        assert other.keys() == [A]  # nothing of the old handle landed in the new store


# -- change log ------------------------------------------------------------------------------

def test_flipped_log_byte_is_reported(store, root: Path, capsys) -> None:
    segment = _segment(root)
    data = bytearray(segment.read_bytes())
    at = data.index(b'"v":1')
    data[at + 4] = ord("7")  # still valid JSON: only the line's checksum tells
    segment.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"{segment.name} at byte"):
        store.changes()
    code, out = _verify(root, capsys)
    assert code == 1 and "fails its checksum" in out and segment.name in out


def test_garbage_line_at_the_log_tail_is_an_integrity_error(store, root: Path, capsys) -> None:
    store.close()
    with open(_segment(root), "ab") as f:
        f.write(b"this is not json\n")
    with pytest.raises(IntegrityError, match="log"):
        curvestore.open_store(f"file-shards://{root}")
    with curvestore.open_store(f"file-shards://{root}", read_only=True) as ro, \
            pytest.raises(IntegrityError, match="log"):
        ro.read(A)
    code, out = _verify(root, capsys)
    assert code == 1 and "unreadable log line" in out


def test_deleted_log_is_reported(store, root: Path, capsys) -> None:
    store.close()
    shutil.rmtree(root / "log")
    code, out = _verify(root, capsys)
    assert code == 1 and "change log is missing" in out


def test_verify_compares_shards_with_the_log(store, root: Path, capsys) -> None:
    """A shard put back from an older copy is older than what the feed announced."""
    path = _shard(root, A)
    older = path.read_bytes()
    store.write(A, _series("2024-01-03", 5, 8.0), mode="update")
    path.write_bytes(older)
    code, out = _verify(root, capsys)
    assert code == 1 and "its shard holds version 1" in out and "log says 2" in out


def test_torn_log_tail_is_cut_by_the_next_writer(store, root: Path) -> None:
    """A killed append leaves a line without its newline: the next commit removes it instead
    of appending after it, so the feed keeps parsing."""
    cursor = store.changes().cursor
    with open(_segment(root), "ab") as f:
        f.write(b'{"b": 2, "x": "1')
    store.write(B, _series("2024-03-05", 3, 4.0), mode="update")
    assert _segment(root).read_bytes().endswith(b"\n")
    assert [c.key for c in store.changes(cursor).items] == [B]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(path)], capture_output=True)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def _fill(directory: Path) -> Path:
    """Write a file until the file system has not a byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def _full_disk_during_log_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                 ) -> Iterator[tuple[Path, object]]:
    """A store on a small tmpfs whose disk fills up between staging and logging (real ENOSPC).
    Without the privilege to mount, the failure is injected at the OS call instead: the log
    append's ``os.write`` writes the first bytes and then fails with ENOSPC."""
    mount = tmp_path / "mnt"
    real = _mount_tmpfs(mount, "2m")
    root = mount / "s"
    try:
        def fill() -> None:
            if real:
                _fill(mount)
                return
            original = os.write
            calls = [0]

            def write(fd: int, data: bytes) -> int:
                if os.readlink(f"/proc/self/fd/{fd}").endswith(".log"):
                    calls[0] += 1
                    if calls[0] == 1:
                        return original(fd, bytes(data)[:17])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return original(fd, data)

            monkeypatch.setattr(os, "write", write)

        yield root, fill
    finally:
        monkeypatch.undo()
        if real:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_during_log_append_leaves_the_log_whole(tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    with _full_disk_during_log_append(tmp_path, monkeypatch) as (root, fill):
        url = f"file-shards://{root}"
        s = curvestore.create_store(url, keys=KEYS, freq="1h", tz="UTC")
        s.write(A, _series("2024-01-01", 30, 1.0))
        cursor = s.changes().cursor
        size_before = _segment(root).stat().st_size
        # 40 series: ~8 kB of log lines, more than the log's last page has room for, so
        # the append writes its first bytes into that page and then finds the disk full
        keys = [s.schema.key({"site": f"w{i}", "kind": "k", "n": i}) for i in range(40)]
        records = [curvestore.core.chunks.encode(
            k, curvestore.core.chunks.Piece(2024 * 12, 0, np.full(24, 1.0)), get_codec("none"),
            "float64")
            for k in keys]
        with pytest.raises(OSError) as failed, transaction(s.backend, keys) as tx:
            tx.put(records)
            fill()
        assert failed.value.errno == errno.ENOSPC
        assert failed.traceback[-1].name == "append", "the failure was not the log append"
        monkeypatch.undo()
        segment = _segment(root)
        assert segment.stat().st_size == size_before, "the failed append left bytes behind"
        assert s.changes(cursor).items == []
        assert not [p for p in (root / "tmp").iterdir() if p.name.endswith(".tmp")]
        for filler in root.parent.glob("filler"):
            filler.unlink()
        s.write(A, _series("2024-01-02", 2, 5.0), mode="update")
        assert [c.key for c in s.changes(cursor).items] == [A]
        s.close()
        assert _verify(root, capsys)[0] == 0


def test_full_disk_at_the_end_line_keeps_the_batch(store, root: Path, monkeypatch) -> None:
    """The end line is written after the renames: if it fails, the batch is still committed
    and readers see it; the next writer writes the end line, and the feed shows it."""
    cursor = store.changes().cursor
    original = fslog.append
    calls = [0]

    def append(path: Path, text: str, *, sync: bool) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, text, sync=sync)

    monkeypatch.setattr(fslog, "append", append)
    store.write(B, _series("2024-03-01", 3, 6.0), mode="update")
    monkeypatch.undo()
    with curvestore.open_store(f"file-shards://{root}", read_only=True) as ro:
        assert ro.read(B).tolist()[:3] == [6.0] * 3
        assert ro.changes(cursor).items == []  # shown once a writer writes its end line
    store.write(A, _series("2024-01-01", 1, 3.0), mode="update")
    assert len(store.changes(cursor).items) == 2
    assert fslog.Log(root / "log").tail().pending == []


# -- layout ----------------------------------------------------------------------------------

def test_shard_copied_from_another_series_is_refused(store, root: Path, capsys) -> None:
    b_dir = _shard(root, B).parent
    shutil.copy(_shard(root, A), b_dir / "2024.cvs")
    with pytest.raises(IntegrityError, match=r"holds series .*'a'.* path is that of .*'b'"):
        store.read(B)
    code, out = _verify(root, capsys)
    assert code == 1 and "holds series" in out


def test_shard_moved_to_another_year_is_refused(store, root: Path) -> None:
    path = _shard(root, A)
    path.rename(path.with_name("2023.cvs"))
    with pytest.raises(IntegrityError, match="does not belong in shard 2023"):
        store.read(A)


def test_stray_files_give_integrity_errors_and_verify_goes_on(store, root: Path, capsys
                                                              ) -> None:
    series_dir = _shard(root, A).parent
    (series_dir / "junk.cvs").write_bytes(b"junk")
    (_shard(root, B).parent / "notes.txt").write_text("hello")
    for call in (lambda: store.read(A), store.keys, store.info, lambda: list(store.read_many())):
        with pytest.raises(IntegrityError, match=r"junk\.cvs"):
            call()
    assert store.read(B) is not None  # other series read on
    code, out = _verify(root, capsys)
    lines = out.splitlines()
    assert code == 1
    assert any("junk.cvs" in line and "site=a" in line for line in lines)
    assert any("notes.txt" in line for line in lines)


def test_bad_key_directory_is_an_integrity_error(store, root: Path) -> None:
    (root / "series" / "site=a" / "kind=k" / "n=xyz").mkdir()
    with pytest.raises(IntegrityError, match="n=xyz"):
        store.keys()


# -- another PID namespace ---------------------------------------------------------------------

_STAGED_WRITER = r"""
import sys, time, pathlib
import numpy as np, pandas as pd
import curvestore
from curvestore.core import chunks
from curvestore.core.transact import transaction
from curvestore.registry import get_codec
url, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
store = curvestore.open_store(url)
keys = [store.schema.key({"site": f"w{i}", "kind": "k", "n": i}) for i in range(20)]
with transaction(store.backend, keys) as tx:
    tx.put([chunks.encode(k, chunks.Piece(2024 * 12, 0, np.full(24, 1.0)), get_codec("lz4"),
                          "float64")
            for k in keys])
    ready.write_text("staged")
    while not go.exists():
        time.sleep(0.01)
print(len(tx.committed))
"""

_OPENER = "import sys, curvestore; curvestore.open_store(sys.argv[1]).close()"


def _in_other_pid_namespace(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new PID namespace (``unshare --pid --fork``, as a second container
    sharing the volume would), or in a plain process where that is not permitted."""
    command = [sys.executable, "-c", code, *args]
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
        if probe.returncode == 0:
            command = ["unshare", "--pid", "--fork", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_cleanup_in_another_pid_namespace_spares_a_live_writer(store, root: Path,
                                                               tmp_path: Path) -> None:
    url = f"file-shards://{root}"
    cursor = store.changes().cursor
    ready, go = tmp_path / "ready", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", _STAGED_WRITER, url, str(ready), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < deadline, "the writer never staged its files"
            time.sleep(0.01)
        staged = sorted(p.name for p in (root / "tmp").iterdir() if p.name.endswith(".tmp"))
        assert len(staged) == 20
        opener = _in_other_pid_namespace(_OPENER, url)  # its open sweeps stale temp files
        assert opener.returncode == 0, opener.stderr
        assert sorted(p.name for p in (root / "tmp").iterdir()
                      if p.name.endswith(".tmp")) == staged
        go.write_text("go")
        out, err = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err
    assert out.split() == ["20"]
    assert len(store.changes(cursor, limit=1000).items) == 20
    assert len(store.keys({"kind": "k"})) == 22


def test_cleanup_removes_a_dead_writers_temp_files(store, root: Path, tmp_path: Path) -> None:
    url = f"file-shards://{root}"
    ready, go = tmp_path / "ready", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", _STAGED_WRITER, url, str(ready), str(go)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    writer.kill()
    writer.wait()
    assert len(list((root / "tmp").glob("*.tmp"))) == 20
    opener = _in_other_pid_namespace(_OPENER, url)
    assert opener.returncode == 0, opener.stderr
    assert list((root / "tmp").glob("*.tmp")) == []
    # only the lock of the store fixture's own handle (alive) is left
    assert len(list((root / "locks").glob("writer-*.lock"))) == 1
