"""``curvestore verify`` for the filesystem backend: the manifest, the change log, the layout
and every shard index, checked against each other. Every problem is reported on its own and
the walk goes on; chunk payloads are verified afterwards by the core.

Cross-checks: each shard index must name the series and year of its path and the store's grid
fingerprint; each chunk in a shard (tombstones included) must have its version as the latest
logged for it, and every logged chunk must be in its shard. The layout is read before the log
and a commit logs before it renames, so a commit racing the check can only leave the log
ahead of the shards: chunks logged after the check started are not compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curvestore.backends import _file_shard_format as file_shards
from curvestore.backends import _fslog as fslog
from curvestore.backends import _layout as layout
from curvestore.backends._fsread import NO_VIEW, ReadView
from curvestore.core.backend import bound_schema
from curvestore.core.records import SeriesKey
from curvestore.errors import CurvestoreError, IntegrityError

if TYPE_CHECKING:
    from curvestore.backends.filesystem import FileBackend
    from curvestore.core.backend import IntegrityProblem

__all__ = ["check_store"]

_Chunks = dict[tuple[SeriesKey, int], tuple[int, bool]]


def check_store(backend: FileBackend, where: Mapping[str, Any]
                ) -> tuple[list[SeriesKey], list[IntegrityProblem]]:
    problems: list[IntegrityProblem] = []
    _check_manifest(backend, problems)
    before = _log_position(backend)
    keys, stored = _check_layout(backend, where, problems)
    logged, late = _check_log(backend, before, problems)
    if not logged and stored:
        problems.append((None, None, f"{backend.log.dir}: the change log is missing or empty, "
                                     f"but shards hold {len(stored)} chunks"))
        return keys, problems
    schema = bound_schema(backend.schema)
    for (key, chunk), (version, deleted) in sorted(stored.items()):
        if (key, chunk) in late:
            continue
        entry = logged.get((key, chunk))
        if entry is None:
            problems.append((key, chunk, f"version {version} is in its shard but not in the "
                                         "change log"))
        elif entry != (version, deleted):
            problems.append((key, chunk, f"its shard holds version {version}"
                                         f"{' (deleted)' if deleted else ''}, the change log "
                                         f"says {entry[0]}{' (deleted)' if entry[1] else ''}"))
    for (key, chunk), (version, _deleted) in sorted(logged.items()):
        if (key, chunk) not in stored and (key, chunk) not in late \
                and schema.matches(key, where):
            problems.append((key, chunk, f"the change log has version {version}, but no shard "
                                         "holds the chunk"))
    return keys, problems


def _check_manifest(backend: FileBackend, problems: list[IntegrityProblem]) -> None:
    try:
        loaded = backend._load_manifest()
    except IntegrityError as exc:
        problems.append((None, None, str(exc)))
        return
    if loaded is None:
        problems.append((None, None, f"{backend.root / 'manifest.json'} is missing"))
    elif loaded[0] != backend._manifest:
        problems.append((None, None, f"{backend.root / 'manifest.json'} changed since the store "
                                     "was opened"))


def _log_position(backend: FileBackend) -> tuple[int, int]:
    segments = backend.log.segments()
    if not segments:
        return (-1, 0)
    first, path = segments[-1]
    return first, path.stat().st_size


def _check_layout(backend: FileBackend, where: Mapping[str, Any],
                  problems: list[IntegrityProblem]) -> tuple[list[SeriesKey], _Chunks]:
    """Walk ``series/`` (every directory, matching ``where`` or not, for stray entries)."""
    schema = bound_schema(backend.schema)
    names, types = schema.names, schema.types
    keys: list[SeriesKey] = []
    stored: _Chunks = {}
    try:
        view = backend._current_view()
    except IntegrityError:  # a damaged log tail, reported by the log check
        view = NO_VIEW

    def walk(i: int, directory: str, prefix: tuple[Any, ...]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            problems.append((None, None, f"{directory}: cannot list: {exc}"))
            return
        if i == len(names):
            key = prefix
            if schema.matches(key, where) \
                    and _check_series(backend, key, directory, entries, view, stored, problems):
                keys.append(key)
            return
        for entry in entries:
            if not entry.is_dir():
                problems.append((None, None, f"{entry.path}: unexpected file in the key tree"))
                continue
            try:
                value = layout.parse_component(entry.name, names[i], types[i])
            except CurvestoreError as exc:
                problems.append((None, None, f"{entry.path}: {exc}"))
                continue
            walk(i + 1, entry.path, (*prefix, value))

    if backend.series_dir.is_dir():
        walk(0, str(backend.series_dir), ())
    else:
        problems.append((None, None, f"{backend.series_dir} is missing"))
    return keys, stored


def _check_series(backend: FileBackend, key: SeriesKey, directory: str,
                  entries: list[os.DirEntry[str]], view: ReadView, stored: _Chunks,
                  problems: list[IntegrityProblem]) -> bool:
    """Check a series directory's shard indexes; True when the series has live chunks to
    verify (or a file that makes its reads fail, reported by reading it)."""
    found = False
    for entry in entries:
        if not entry.name.endswith(file_shards.SHARD_SUFFIX) or entry.is_dir():
            problems.append((key, None, f"{entry.path}: unexpected entry in a series directory"))
            continue
        try:
            shard = file_shards.parse_shard_name(entry.name, entry.path)
        except IntegrityError:
            found = True  # reported when the series is read (its reads fail on it)
            continue
        try:
            index = backend._read_index(entry.path, view)
            if index is None:
                continue
            file_shards.check_index(index, entry.path, key, shard, backend.per_shard, backend.grid)
        except (CurvestoreError, OSError) as exc:
            problems.append((key, None, str(exc)))
            continue
        for meta in index.metas:
            stored[(key, meta.chunk)] = (meta.version, meta.deleted)
            found = found or not meta.deleted
    return found


def _check_log(backend: FileBackend, before: tuple[int, int], problems: list[IntegrityProblem]
               ) -> tuple[_Chunks, set[tuple[SeriesKey, int]]]:
    """Parse every segment: line checksums, batch framing, sequence order. Returns the latest
    (version, deleted) logged per chunk, and the chunks logged after ``before``."""
    logged: _Chunks = {}
    late: set[tuple[SeriesKey, int]] = set()
    try:
        segments = backend.log.segments()
    except IntegrityError as exc:
        problems.append((None, None, str(exc)))
        return logged, late
    last_seq = 0
    for n, (first, path) in enumerate(segments):
        if n and first != last_seq + 1:
            problems.append((None, None, f"{path}: segment starts at sequence {first}, the "
                                         f"previous one ended at {last_seq}"))
        last_seq = _check_segment(path, first, before, last_seq, n + 1 == len(segments),
                                  logged, late, problems)
    return logged, late


def _check_segment(path: Path, first: int, before: tuple[int, int], last_seq: int,
                   is_last: bool, logged: _Chunks, late: set[tuple[SeriesKey, int]],
                   problems: list[IntegrityProblem]) -> int:
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    batch: list[dict[str, Any]] | None = None
    expected = 0
    damaged = False  # after a damaged line, the rest of its batch is not framed
    for raw in data.split(b"\n")[:-1]:
        at, pos = pos, pos + len(raw) + 1
        where = f"{path} at byte {at}"
        try:
            line = fslog.decode_line(raw, where)
        except IntegrityError as exc:
            problems.append((None, None, str(exc)))
            batch, damaged = None, True
            continue
        if "b" in line:
            if batch is not None:
                problems.append((None, None, f"{where}: a batch begins before the previous one "
                                             "ended"))
            batch, expected, damaged = [], int(line["b"]), False
        elif "e" in line:
            if batch is not None and len(batch) != expected:
                problems.append((None, None, f"{where}: batch has {len(batch)} lines, its begin "
                                             f"line announced {expected}"))
            if line["e"] < last_seq:
                problems.append((None, None, f"{where}: end line {line['e']} goes back before "
                                             f"sequence {last_seq}"))
            batch, damaged = None, False
        elif "r" in line:
            if batch is not None:
                problems.append((None, None, f"{where}: segment switch inside a batch"))
        else:
            if batch is not None:
                batch.append(line)
            elif not damaged:
                problems.append((None, None, f"{where}: log line outside any batch"))
            if "s" in line:
                key, seq = tuple(line["k"]), int(line["s"])
                if seq != last_seq + 1:
                    problems.append((None, None, f"{where}: sequence {seq} follows {last_seq}"))
                last_seq = seq
                logged[(key, line["c"])] = (line["v"], line["d"])
                if (first, at) >= before:
                    late.add((key, line["c"]))
    if batch is not None and not is_last:
        problems.append((None, None, f"{path}: the segment ends inside a batch"))
    return last_seq
