"""The filesystem backend's change log: the change feed and the journal of batch commits.

The log is append-only text in segments, ``log/<first sequence>.log`` (a new one once the last
passes 4 MB). A line is a JSON object, a tab and the CRC-32 of the JSON text in 8 hex digits::

    {"b":3,"x":"<txid>"}<TAB>1c291ca3            begin: the number of lines that follow
    {"s":7,"k":["a","load"],"c":24288,"v":2,"d":false}<TAB>...   a change (sequence 7)
    {"t":"<txid>-0.tmp","p":"series/site=a/kind=load/2024.cvs"}<TAB>...   a rename to do
    {"e":7}<TAB>...                               end: the batch is applied, head is now 7
    {"r":8}<TAB>...                               the log goes on in segment 8

Lines written before checksums existed have no tab and are read without one. A batch is
*committed* once its begin line and all the lines it announces are in the log (they are
written with one append and fsynced before any rename); its end line says the renames are
done. An append that fails (a full disk) or is killed leaves at most one incomplete last line,
without a newline: the next writer cuts it off (:meth:`Tail.torn`). A complete line that fails
its checksum or does not parse is damage, reported as :class:`IntegrityError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curvestore.core.cursor import unknown_position
from curvestore.core.records import Change, FeedBatch, Position
from curvestore.errors import IntegrityError

__all__ = ["SEGMENT_BYTES", "Batch", "Log", "Tail", "append", "decode_line", "encode_line",
           "feed", "truncate"]

_TAIL = 4096
SEGMENT_BYTES = 4 << 20  # a commit starts a new segment once the last one is past this size


def encode_line(entry: dict[str, Any]) -> str:
    text = json.dumps(entry, separators=(",", ":"))
    return f"{text}\t{zlib.crc32(text.encode()):08x}\n"


def decode_line(raw: bytes, where: str) -> dict[str, Any]:
    """Parse one complete line (without its newline), checking its CRC-32 when it has one."""
    body, tab, crc = raw.rpartition(b"\t")
    if tab:
        try:
            ok = len(crc) == 8 and int(crc, 16) == zlib.crc32(body)
        except ValueError:
            ok = False
        if not ok:
            raise IntegrityError(f"{where}: log line fails its checksum")
    else:
        body = raw
    try:
        entry = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{where}: unreadable log line ({exc})") from exc
    if not isinstance(entry, dict):
        raise IntegrityError(f"{where}: log line is not an object")
    return entry


@dataclass(frozen=True)
class Batch:
    """The lines of a batch after its begin line: changes, renames, replication states."""

    txid: str
    expected: int
    lines: list[dict[str, Any]]

    @property
    def complete(self) -> bool:
        return len(self.lines) == self.expected

    @property
    def moves(self) -> list[tuple[str, str]]:
        """(temp file name in tmp/, final path relative to the store root) of each rename."""
        return [(e["t"], e["p"]) for e in self.lines if "t" in e]

    @property
    def last_seq(self) -> int | None:
        return max((e["s"] for e in self.lines if "s" in e), default=None)


@dataclass(frozen=True)
class Tail:
    """The end of the log: what a writer must finish and a reader must take into account.

    ``head`` is the last sequence of a finished batch; ``size`` the segment's size when read;
    ``pending_at`` the offset where lines after the last end line start; ``pending`` those
    lines (a batch cut short, a committed batch whose renames may not all be done, or a
    segment switch); ``complete`` the offset after the last complete line: less than
    ``size`` when the file ends inside a line (``torn``).
    """

    head: int
    segment: Path | None
    size: int = 0
    pending_at: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    complete: int = 0

    @property
    def torn(self) -> bool:
        return self.complete < self.size

    @property
    def batch(self) -> Batch | None:
        """The unfinished batch at the tail, if its begin line is there."""
        if not self.pending or "b" not in self.pending[0]:
            return None
        begin = self.pending[0]
        batch = Batch(str(begin.get("x", "")), int(begin["b"]), self.pending[1:])
        if len(batch.lines) > batch.expected or any("b" in e or "e" in e for e in batch.lines):
            raise IntegrityError(f"{self.segment}: the last batch in the log has more lines "
                                 f"than its begin line announces ({batch.expected})")
        return batch

    @property
    def committed(self) -> Batch | None:
        """The committed (fully logged) batch whose end line is missing, if there is one."""
        batch = self.batch
        return batch if batch is not None and batch.complete else None


class Log:
    """Reads and appends the segments under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def segments(self) -> list[tuple[int, Path]]:
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.dir) as entries:
            for entry in entries:
                if entry.name.endswith(".log"):
                    try:
                        found.append((int(entry.name[:-4]), Path(entry.path)))
                    except ValueError:
                        raise IntegrityError(
                            f"{entry.path}: unexpected file in the log directory") from None
        return sorted(found)

    @staticmethod
    def segment_name(first_seq: int) -> str:
        return f"{first_seq:016d}.log"

    def tail(self) -> Tail:
        """Read the last segment backwards until the last end line; parse what follows it.

        A clean log costs one short read. Raises IntegrityError when a complete line from the
        last end line on is damaged (damage further back is found by :meth:`lines`)."""
        segments = self.segments()
        if not segments:
            return Tail(0, None)
        first, path = segments[-1]
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            window = _TAIL
            while True:
                pos = max(0, size - window)
                f.seek(pos)
                data = f.read(size - pos)
                begin = 0 if pos == 0 else data.find(b"\n") + 1  # drop a partial first line
                complete = data.rfind(b"\n") + 1
                found = self._last_end(data, begin, complete) if begin or pos == 0 else -1
                if found >= 0 or pos == 0:
                    break
                window *= 4
        head, pending_from = first - 1, begin
        if found >= 0:
            line_end = data.index(b"\n", found)
            head = int(decode_line(data[found:line_end], f"{path} at byte {pos + found}")["e"])
            pending_from = line_end + 1
        pending = []
        offset = pending_from
        for raw in data[pending_from:complete].split(b"\n")[:-1]:
            pending.append(decode_line(raw, f"{path} at byte {pos + offset}"))
            offset += len(raw) + 1
        return Tail(head, path, size, pos + pending_from, pending, pos + complete)

    @staticmethod
    def _last_end(data: bytes, begin: int, complete: int) -> int:
        """Offset of the last complete end line in ``data[begin:complete]``, or -1."""
        at = complete
        while True:
            at = data.rfind(b'{"e"', begin, at)
            if at < 0 or at == begin or data[at - 1] == 0x0A:
                return at

    def lines(self, path: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """(offset after the line, entry) of each complete line of a segment from ``start``."""
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
        pos = start
        for raw in data.split(b"\n")[:-1]:
            line_at = pos
            pos += len(raw) + 1
            yield pos, decode_line(raw, f"{path} at byte {line_at}")


def feed(log: Log, after: Position | None) -> Iterator[FeedBatch]:
    """The batches logged after ``after`` (None: from the start), each with the position
    ``(seq, segment, offset)`` right after its end line: the last sequence it logged (or the
    head before it, for a batch of replication states only), the first sequence of the
    segment holding the end line, and the offset after it, so resuming is a seek.

    A batch shows once its end line is written: a committed batch whose writer died before
    its end line shows once the next writer or read-write open writes it (readers already
    see its data). A position this log never issued raises InvalidCursorError
    (:func:`~curvestore.core.cursor.unknown_position`) before anything is yielded."""
    seq, seg_first, offset = (0, 0, 0) if after is None else after
    segments = log.segments()
    if after is not None:
        _check_feed_position((seq, seg_first, offset), segments)
    for first, path in segments:
        if first < seg_first:
            continue
        changes: list[Change] = []
        for pos, line in log.lines(path, offset if first == seg_first else 0):
            if "s" in line:
                if line["s"] > seq:
                    changes.append(Change(tuple(line["k"]), line["c"], line["v"], line["d"]))
            elif "b" in line:
                changes = []
            elif "e" in line:
                seq = max(seq, int(line["e"]))
                yield FeedBatch((seq, first, pos), tuple(changes))
                changes = []


_END_LINE_MAX = 48  # bytes of the longest end line, {"e":<seq>}<TAB><crc>


def _check_feed_position(position: tuple[int, int, int], segments: list[tuple[int, Path]]
                         ) -> None:
    """InvalidCursorError unless ``position`` (seq, segment, offset) stands right after the
    end line of ``seq`` in that segment, where every position this log issues stands.
    Costs one short read."""
    seq, seg_first, offset = position
    path = dict(segments).get(seg_first)
    if path is None:
        beyond = seg_first > max((f for f, _ in segments), default=0)
        raise unknown_position("beyond the end of" if beyond else "between two entries of")
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if offset > size:
            raise unknown_position("beyond the end of")
        start = max(0, offset - _END_LINE_MAX)
        f.seek(start)
        before = f.read(offset - start)
    line = before[:-1].rpartition(b"\n")[2] if before.endswith(b"\n") else b""
    marker: object = None
    if line.startswith(b'{"e":'):
        with contextlib.suppress(IntegrityError, KeyError):
            marker = decode_line(line, str(path))["e"]
    if type(marker) is not int or marker != seq:
        raise unknown_position("between two entries of")


def append(path: Path, text: str, *, sync: bool) -> None:
    """Append ``text`` whole or not at all: a failed write (ENOSPC, EIO...) is cut off again
    before the error is raised, so no torn line stays behind (a killed process can still
    leave one; the next writer cuts it, see :attr:`Tail.torn`)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        data = text.encode()
        try:
            while data:
                written = os.write(fd, data)
                data = data[written:]
            if sync:
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)


def truncate(path: Path, size: int, *, sync: bool) -> None:
    with open(path, "rb+") as f:
        f.truncate(size)
        if sync:
            os.fsync(f.fileno())
