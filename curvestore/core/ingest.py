"""``Store.ingest``: long-format rows (key columns, a time column, a value column) written as
series, streamed in bounded memory.

The input is read in batches of rows (a DataFrame is sliced; other sources are opened by the
reader the store was handed, :data:`TableReader`, which yields DataFrames of a bounded number
of rows). Each batch is validated and converted without a pandas object per series
(:mod:`curvestore.core.longform`) and scattered into a dense block of grid points x series
(:mod:`curvestore.core.pivot`). The block is then cut into groups of series, each encoded as a
frame is (:func:`~curvestore.core.frames_write.encode_block`) and committed as one
transaction (:func:`~curvestore.core.frames_write.commit_encoded`).

Atomicity. While the block fits ``buffer_bytes`` (the common case: a day of a million meters
at 15 minutes is 0.9 GB), the whole input is read and validated before anything is written:
bad input anywhere (types, keys, off-grid or duplicate points) writes nothing, and with
``insert`` the store is checked for existing series before the first commit. Each group is
then one all-or-nothing commit; an error while committing (a lost race with another writer,
a backend failure) leaves the groups committed before it, and the error says how many.

Input larger than ``buffer_bytes`` streams: when the block would outgrow the budget, the
groups of series that are complete are committed and dropped. That needs the rows of each
series to be contiguous (input ordered or grouped by key, as exports usually are): a series
whose rows come back after it was written, or input that is not grouped by series when the
budget is reached, raises (:class:`~curvestore.errors.InvalidDataError`), and groups
committed before stay committed. Each series is written exactly once, whole, so ``insert``
and ``replace`` mean what they mean for :meth:`Store.write_frame`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from curvestore.core.capabilities import Summarises
from curvestore.core.frames_write import commit_encoded, encode_block
from curvestore.core.longform import IngestColumns, LongBatch, convert
from curvestore.core.pivot import CELL_BYTES, KeyMap, Pivot, Slab
from curvestore.errors import (
    ConfigurationError,
    CurvestoreError,
    DuplicatePointError,
    InvalidDataError,
    SeriesExistsError,
)

if TYPE_CHECKING:
    from curvestore.core.codec import Codec
    from curvestore.core.config import KeySchema
    from curvestore.core.records import SeriesKey
    from curvestore.core.store import Store

__all__ = ["BUFFER_BYTES", "BATCH_ROWS", "POINTS_PER_COMMIT", "IngestProgress", "IngestReport",
           "LongTable", "TableReader", "ingest"]

BUFFER_BYTES = 2 << 30
BATCH_ROWS = 1 << 20
POINTS_PER_COMMIT = 10_000_000


@dataclass(frozen=True, slots=True)
class LongTable:
    """A long-format source opened for reading: its batches (DataFrames holding at least the
    ingest columns, a bounded number of rows each) and its number of rows when known."""

    batches: Iterable[pd.DataFrame]
    rows: int | None = None


TableReader = Callable[[Any, IngestColumns, int, "KeySchema"], "LongTable | None"]
"""``reader(source, columns, batch_rows, schema)``: a source the core cannot read itself
(Arrow tables and streams, Parquet and CSV paths) as a :class:`LongTable` of batches of at
most ``batch_rows`` rows, reading only ``columns`` (key columns as ``schema``'s types); None
when it does not know the source. Handed to the store, like codecs."""


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where an ingest stands, told after each batch read (``phase="read"``) and each commit
    (``phase="write"``)."""

    phase: str
    rows: int
    rows_total: int | None
    series: int
    series_written: int
    commits: int
    seconds: float
    #: the whole input was read (``series`` is then the number of series to write)
    read_all: bool = False


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest did: rows read, distinct series in them, points (values) written,
    chunks written (tombstones included), commits, and where the time went (reading,
    validating and pivoting; encoding; committing, the store's own checks included)."""

    rows: int
    series: int
    points: int
    chunks: int
    commits: int
    seconds: float
    read_seconds: float
    encode_seconds: float
    commit_seconds: float


def ingest(store: Store, source: Any, columns: IngestColumns, mode: str, codec: Codec, *,
           tz: str | None = None, buffer_bytes: int = BUFFER_BYTES,
           points_per_commit: int = POINTS_PER_COMMIT, batch_rows: int = BATCH_ROWS,
           progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
    """:meth:`Store.ingest` (mode and writability checked by the store)."""
    for name, value in (("buffer_bytes", buffer_bytes), ("points_per_commit", points_per_commit),
                        ("batch_rows", batch_rows)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    table = open_source(store, source, columns, batch_rows)
    run = _Run(store, columns, mode, codec, tz, buffer_bytes, points_per_commit, progress,
               table.rows)
    try:
        for frame in table.batches:
            run.add(frame)
        run.read_all = True
        run.flush(run.pivot.slabs)
    except CurvestoreError as exc:
        if run.commits:
            exc.add_note(f"{run.series_written:,} series were written in {run.commits:,} "
                         "commits before this error (each commit is all-or-nothing)")
        raise
    return run.report()


def open_source(store: Store, source: Any, columns: IngestColumns, batch_rows: int
                ) -> LongTable:
    """The source as batches of DataFrames (see :data:`TableReader`)."""
    if isinstance(source, pd.DataFrame):
        return LongTable(_slices(source, batch_rows), len(source))
    if store.tables is not None:
        table = store.tables(source, columns, batch_rows, store.schema)
        if table is not None:
            return table
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, os.PathLike)):
        return LongTable(_frames(source))
    readable = ("a pandas DataFrame or an iterable of DataFrames" if store.tables is None else
                "a pandas DataFrame, an iterable of DataFrames, a pyarrow Table, RecordBatch "
                "or RecordBatchReader, an Arrow stream (__arrow_c_stream__: Polars, DuckDB), "
                "or the path of a .parquet or .csv file")
    raise InvalidDataError(f"cannot ingest {type(source).__name__} {str(source)[:80]!r}: "
                           f"expected {readable}")


def _slices(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), rows):
        yield frame.iloc[start:start + rows]


def _frames(source: Iterable[Any]) -> Iterator[pd.DataFrame]:
    for item in source:
        if not isinstance(item, pd.DataFrame):
            raise InvalidDataError(f"an iterable source must yield pandas DataFrames, got "
                                   f"{type(item).__name__}")
        yield item


@dataclass
class _Run:
    """One ingest in progress: the keys and block seen so far, counters and timings."""

    store: Store
    columns: IngestColumns
    mode: str
    codec: Codec
    tz: str | None
    buffer_bytes: int
    points_per_commit: int
    progress: Callable[[IngestProgress], None] | None
    rows_total: int | None
    keymap: KeyMap = field(default_factory=KeyMap)
    pivot: Pivot = field(init=False)
    rows: int = 0
    points: int = 0
    chunks: int = 0
    commits: int = 0
    series_written: int = 0
    clustered: bool = True  # each series' rows contiguous so far
    read_all: bool = False
    last_id: int = -1  # the series of the last row read
    existing: set[SeriesKey] | None = None  # with insert: series with data, once looked up
    began: float = field(default_factory=time.perf_counter)
    read_seconds: float = 0.0
    encode_seconds: float = 0.0
    commit_seconds: float = 0.0

    def __post_init__(self) -> None:
        # a slab small enough that several fit the budget, so complete ones can be written
        self.pivot = Pivot(slab_bytes=max(CELL_BYTES, self.buffer_bytes // 8))

    # -- reading ---------------------------------------------------------------------------
    def add(self, frame: pd.DataFrame) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise InvalidDataError(f"a table reader must yield DataFrames, got "
                                   f"{type(frame).__name__}")
        if not len(frame):
            return
        t0 = time.perf_counter()
        store = self.store
        known = len(self.keymap)
        batch = convert(frame, self.columns, store.schema, store.grid, self.keymap, self.tz,
                        self.rows)
        pivot = self.pivot
        if int(batch.ids.min()) < pivot.released:
            row = int(np.argmax(batch.ids < pivot.released))
            raise InvalidDataError(
                f"row {self.rows + row} is for series {self._shown(int(batch.ids[row]))}, "
                "which was written already: input larger than buffer_bytes must give each "
                "series' rows together (sort it by key, or raise buffer_bytes)")
        self._follow_order(batch, known)
        lo, hi = int(batch.positions.min()), int(batch.positions.max())
        top = len(self.keymap)
        if pivot.bytes_after(top, lo, hi) > self.buffer_bytes:
            t1 = time.perf_counter()
            self._make_room(batch, top)
            t0 += time.perf_counter() - t1  # writing is counted as encoding and committing
        duplicate = pivot.add(batch.ids, batch.positions, batch.values)
        if duplicate is not None:
            ns = int(store.grid.ns_of_positions(int(batch.positions[duplicate])))
            raise DuplicatePointError(
                store.schema.as_dict(self.keymap.keys[int(batch.ids[duplicate])]),
                store.grid.timestamp(ns, store.time_unit),
                f" (row {self.rows + duplicate} gives it again)")
        self.rows += len(frame)
        self.last_id = int(batch.ids[-1])
        self.read_seconds += time.perf_counter() - t0
        self._tell("read")

    def _follow_order(self, batch: LongBatch, known: int) -> None:
        """Keep :attr:`clustered` true while every series' rows came together."""
        if not self.clustered:
            return
        ids = batch.ids
        changes = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        runs = ids[np.concatenate(([0], changes))]
        # each run a new series, except that the first may go on from the previous batch
        first_old = runs[0] < known and runs[0] != self.last_id
        self.clustered = (not first_old and not (runs[1:] < known).any()
                          and len(np.unique(runs)) == len(runs))

    def _make_room(self, batch: LongBatch, top: int) -> None:
        """Write the complete groups of series so that the block fits the budget again."""
        pivot = self.pivot
        if not self.clustered:
            done = ("the series of the groups written before stay written" if self.commits
                    else "nothing was written")
            raise InvalidDataError(
                f"the input does not fit buffer_bytes={self.buffer_bytes:,} (its block of "
                f"{len(self.keymap):,} series on the grid) and its rows are not grouped by "
                "series, so it cannot be written group by group: sort it by key, split it, "
                f"or raise buffer_bytes; {done}")
        # complete: every id of the slab is below the first series of this batch and the
        # series of the last row before it (which may go on)
        open_from = min(int(batch.ids[0]), self.last_id if self.last_id >= 0 else top)
        complete = [s for s in pivot.slabs if s.first + s.size <= open_from]
        if complete:
            self.flush(complete)
            pivot.release(len(complete))

    # -- writing ---------------------------------------------------------------------------
    def flush(self, slabs: list[Slab]) -> None:
        """Encode and commit the series of ``slabs``, in groups of about
        :attr:`points_per_commit` grid points; with insert, every group is checked against
        the store before the first is committed."""
        store = self.store
        t0 = time.perf_counter()
        blocks = self._joined(self.pivot.blocks(slabs, len(self.keymap)))
        for _slab, first, _positions, block in blocks:
            valid = ~np.isnan(block)
            self.points += int(np.count_nonzero(valid))
            if self.mode == "insert":
                self._refuse_existing(first, valid.any(axis=0))
            del valid
        self.read_seconds += time.perf_counter() - t0
        for _slab, first, positions, block in blocks:
            width = max(1, self.points_per_commit // max(len(positions), 1))
            for a in range(0, block.shape[1], width):
                b = min(a + width, block.shape[1])
                t1 = time.perf_counter()
                encoded = encode_block(self.keymap.keys[first + a:first + b], store.grid,
                                       positions, block[:, a:b], self.mode, self.codec,
                                       store.config.dtype)
                t2 = time.perf_counter()
                self.encode_seconds += t2 - t1
                if encoded is not None:
                    self.chunks += commit_encoded(store, encoded, self.mode, self.codec)
                    self.commits += 1
                    self.commit_seconds += time.perf_counter() - t2
                self.series_written += b - a
                self._tell("write")

    def _joined(self, blocks: list[tuple[Slab, int, np.ndarray, np.ndarray]]
                ) -> list[tuple[Slab, int, np.ndarray, np.ndarray]]:
        """The slabs' blocks as one when they fit one commit (they share their positions and
        hold consecutive series): the pivot grows its slabs geometrically, so without this
        an input that fits ``points_per_commit`` would still take a commit per slab."""
        if len(blocks) < 2:
            return blocks
        positions = blocks[0][2]
        series = sum(block.shape[1] for *_, block in blocks)
        consecutive = all(b[1] == a[1] + a[3].shape[1] for a, b in pairwise(blocks))
        if not consecutive or len(positions) * series > self.points_per_commit:
            return blocks
        return [(blocks[0][0], blocks[0][1], positions, np.hstack([b[3] for b in blocks]))]

    def _refuse_existing(self, first: int, has_value: np.ndarray) -> None:
        """With insert: refuse (before the first commit) series of the input holding a
        value that have data in the store; the transactions check it again."""
        t0 = time.perf_counter()
        if self.existing is None:
            backend = self.store.backend
            if self.store.capabilities.summaries and isinstance(backend, Summarises):
                self.existing = set(backend.summarise({}).keys)
            else:
                self.existing = set(backend.list_series({}))
        if self.existing:
            keys = self.keymap.keys
            clash = [keys[first + j] for j in np.flatnonzero(has_value).tolist()
                     if keys[first + j] in self.existing]
            if clash:
                raise SeriesExistsError(self.store.schema.as_dict(k) for k in clash)
        spent = time.perf_counter() - t0
        self.commit_seconds += spent
        self.read_seconds -= spent  # inside flush's pivot time: counted once, as a commit's

    # -- reporting -------------------------------------------------------------------------
    def _shown(self, series: int) -> str:
        key = self.store.schema.as_dict(self.keymap.keys[series])
        return ", ".join(f"{k}={v!r}" for k, v in key.items())

    def _tell(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(IngestProgress(phase, self.rows, self.rows_total, len(self.keymap),
                                         self.series_written, self.commits,
                                         time.perf_counter() - self.began, self.read_all))

    def report(self) -> IngestReport:
        return IngestReport(self.rows, len(self.keymap), self.points, self.chunks,
                            self.commits, time.perf_counter() - self.began, self.read_seconds,
                            self.encode_seconds, self.commit_seconds)
