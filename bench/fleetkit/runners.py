"""The systems the fleet workload runs on: curvestore on a store URL, ArcticDB on LMDB and a
Parquet lake. Each is driven through its public API; the harness times the calls and checks
every read with :func:`fleetkit.data.check_wide` / :func:`fleetkit.data.check_long`.

A runner's timed methods return what the system natively returns; ``check_*`` turn that into
the checker's form, untimed.
"""

from __future__ import annotations

import datetime as dt
import gc
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from benchkit.env import package_version
from benchkit.system import disk_usage

from .data import FREQ, TZ, Block, FleetMismatch, check_long, check_wide, day_index, index_ns


def day_bounds(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last quarter-hour of a local day (both inclusive)."""
    index = day_index(day)
    return index[0], index[-1]


# -- curvestore's write and read paths -----------------------------------------------------------
def _cs_write(store: Any, frame: pd.DataFrame, mode: str) -> None:
    """Write a wide frame (timestamps x meter ids) to a curvestore store."""
    store.write_frame(frame, mode=mode)


def _cs_read_day(store: Any, start: Any, end: Any) -> pd.DataFrame:
    """Every series over ``[start, end]`` as one wide frame (timestamps x meter ids)."""
    return store.read_frame(start=start, end=end)


class Runner(ABC):
    """One system under the fleet workload, on a fresh store from :meth:`open` on."""

    name = "?"
    label = "?"
    calls: ClassVar[dict[str, str]] = {}
    #: Whether this process does the system's disk writes (not a server: PostgreSQL, S3).
    local_writes = True

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @abstractmethod
    def open(self, scenario: str) -> None:
        """Start from a fresh, empty store (``scenario`` names it)."""

    @abstractmethod
    def backfill(self, block: Block) -> None:
        """Write the history, all meters in one bulk call."""

    @abstractmethod
    def append(self, block: Block) -> None:
        """Append one new day of every meter."""

    @abstractmethod
    def read_day(self, day: dt.date) -> Any:
        """Every meter's values of one local day."""

    @abstractmethod
    def check_day(self, got: Any, expected: Block, what: str) -> None:
        """Fail unless ``got`` (from :meth:`read_day`) holds exactly ``expected``."""

    @abstractmethod
    def read_history(self, meter: int) -> Any:
        """One meter's whole history."""

    def check_history(self, got: Any, meter: int, expected: Block, what: str) -> None:
        if got is None:
            raise FleetMismatch(f"{what}: nothing read")
        check_wide(what, index_ns(got.index), np.array([meter]),
                   np.asarray(got, dtype=np.float64).reshape(-1, 1), expected,
                   np.array([meter]))

    @abstractmethod
    def metadata(self) -> dict[str, Callable[[], Any]]:
        """The metadata calls to time, by name; each returns something checkable."""

    def check_metadata(self, name: str, got: Any, meters: int,  # noqa: B027 - optional
                       last: pd.Timestamp, what: str) -> None:
        """``meters``: how many meters hold a value; ``last``: the latest valid timestamp."""

    def stored_bytes(self) -> int | None:
        """What the store occupies on disk now (None when it is not local files)."""
        return None

    def requests(self) -> dict[str, list[float]] | None:
        """The S3 server's request counters, when the system talks to one."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store."""

    def versions(self) -> dict[str, str]:
        return {}


class CurvestoreRunner(Runner):
    """curvestore on ``url`` (``{scenario}`` in it is replaced, so each scenario is fresh)."""

    calls: ClassVar[dict[str, str]] = {
        "backfill": "_cs_write(store, frame, 'insert')",
        "append": "_cs_write(store, frame, 'update')",
        "read_day": "_cs_read_day(store, start, end)",
        "history": "read({'meter': id})",
        "metadata": "keys(), info(), max_timestamp()",
    }

    def __init__(self, workdir: Path, url: str, label: str, moto: Any = None) -> None:
        super().__init__(workdir)
        import curvestore

        self.cs = curvestore
        self.url_template, self.moto = url, moto
        self.scheme = url.split("://", 1)[0]
        self.local_writes = self.scheme == "file"
        self.name = f"curvestore-{self.scheme}"
        self.label = label
        self.store: Any = None
        self.path: Path | None = None
        self.calls = dict(self.calls)
        self.calls["backfill"] = "write_frame(frame, mode='insert')"
        self.calls["append"] = "write_frame(frame, mode='update')"
        self.calls["read_day"] = "read_frame(start=..., end=...)"

    def open(self, scenario: str) -> None:
        url = self.url_template.format(scenario=scenario)
        if url.startswith("file://"):
            self.path = Path(url.split("://", 1)[1].split("?", 1)[0])
            shutil.rmtree(self.path, ignore_errors=True)
        self.store = self.cs.create_store(url, keys={"meter": int}, freq=FREQ, tz=TZ,
                                          chunking="month", codec="lz4")

    def backfill(self, block: Block) -> None:
        _cs_write(self.store, block.frame(), "insert")

    def append(self, block: Block) -> None:
        _cs_write(self.store, block.frame(), "update")

    def read_day(self, day: dt.date) -> Any:
        return _cs_read_day(self.store, *day_bounds(day))

    def check_day(self, got: Any, expected: Block, what: str) -> None:
        check_wide(what, index_ns(got.index), np.asarray(got.columns, dtype=np.int64),
                   got.to_numpy(dtype=np.float64), expected)

    def read_history(self, meter: int) -> Any:
        return self.store.read({"meter": meter})

    def metadata(self) -> dict[str, Callable[[], Any]]:
        return {"keys": self.store.keys, "info": self.store.info,
                "max_timestamp": self.store.max_timestamp}

    def check_metadata(self, name: str, got: Any, meters: int, last: pd.Timestamp,
                       what: str) -> None:
        count = {"keys": lambda: len(got), "info": lambda: got["series"]}.get(name)
        if count is not None and count() != meters:
            raise FleetMismatch(f"{what}: {count()} series, {meters} expected")
        if name == "max_timestamp" and got != last:
            raise FleetMismatch(f"{what}: {got}, {last} expected")

    def stored_bytes(self) -> int | None:
        return disk_usage(self.path)[0] if self.path is not None else None

    def requests(self) -> dict[str, list[float]] | None:
        return self.moto.stats() if self.moto is not None else None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = None

    def versions(self) -> dict[str, str]:
        return {"curvestore": self.cs.__version__}


class ArcticDBRunner(Runner):
    """ArcticDB on LMDB, one symbol per meter (its column ``kw``)."""

    name = "arcticdb"
    calls: ClassVar[dict[str, str]] = {
        "backfill": "write_batch([WritePayload(symbol, df)])",
        "append": "append_batch([WritePayload(symbol, df)])",
        "read_day": "read_batch([ReadRequest(symbol, date_range=(start, end))])",
        "history": "read(symbol)",
        "metadata": "list_symbols()",
    }

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        import arcticdb

        self.adb = arcticdb
        self.label = f"ArcticDB {arcticdb.__version__} (LMDB)"
        self.lib: Any = None
        self.ac: Any = None
        self.path = workdir / "arcticdb"
        self.meters: list[str] = []  # the symbols, from the backfill

    def open(self, scenario: str) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self.ac = self.adb.Arctic(f"lmdb://{self.path}")
        self.lib = self.ac.get_library(f"fleet_{scenario}", create_if_missing=True)

    def _payloads(self, block: Block) -> list[Any]:
        index = block.index
        return [self.adb.WritePayload(str(m), pd.DataFrame({"kw": v}, index=index, copy=False))
                for m, v in zip(block.meters.tolist(), block.values, strict=True)]

    def _checked(self, results: list[Any], what: str) -> list[Any]:
        errors = [r for r in results if isinstance(r, self.adb.version_store.library.DataError)]
        if errors:
            raise FleetMismatch(f"ArcticDB {what}: {errors[:3]}")
        return results

    def backfill(self, block: Block) -> None:
        self.meters = [str(m) for m in block.meters.tolist()]
        self._checked(self.lib.write_batch(self._payloads(block)), "write_batch")

    def append(self, block: Block) -> None:
        self._checked(self.lib.append_batch(self._payloads(block)), "append_batch")

    def read_day(self, day: dt.date) -> Any:
        start, end = day_bounds(day)
        requests = [self.adb.ReadRequest(m, date_range=(start, end)) for m in self.meters]
        return self._checked(self.lib.read_batch(requests), "read_batch")

    def check_day(self, got: Any, expected: Block, what: str) -> None:
        meters = np.concatenate([np.full(len(item.data), int(item.symbol)) for item in got])
        ts = np.concatenate([index_ns(item.data.index) for item in got])
        values = np.concatenate([item.data["kw"].to_numpy() for item in got])
        check_long(what, meters, ts, values, expected)

    def read_history(self, meter: int) -> Any:
        return self.lib.read(str(meter)).data["kw"]

    def metadata(self) -> dict[str, Callable[[], Any]]:
        return {"list_symbols": self.lib.list_symbols}

    def check_metadata(self, name: str, got: Any, meters: int, last: pd.Timestamp,
                       what: str) -> None:
        if len(got) != len(self.meters):  # every symbol written, NaN-only ones included
            raise FleetMismatch(f"{what}: {len(got)} symbols, {len(self.meters)} expected")

    def stored_bytes(self) -> int | None:
        return disk_usage(self.path, skip=lambda p: p.name == "lock.mdb")[0]

    def close(self) -> None:
        self.lib = None
        self.ac = None
        gc.collect()

    def versions(self) -> dict[str, str]:
        return {"arcticdb": self.adb.__version__}


class ParquetRunner(Runner):
    """A Parquet lake: long format (meter, ts, kw), one Hive partition ``day=YYYY-MM-DD`` per
    local day holding one file, rows ordered by meter then time; missing readings have no
    row. An append writes one file; yesterday is one partition; a meter's history scans the
    dataset with a filter on ``meter``."""

    name = "parquet"
    calls: ClassVar[dict[str, str]] = {
        "backfill": "pq.write_table(day's table, day=D/part-0.parquet) per day",
        "append": "pq.write_table(day's table, day=D/part-0.parquet)",
        "read_day": "pq.read_table(day=D/part-0.parquet)",
        "history": "ds.dataset(root, partitioning='hive').to_table(filter=meter == id)",
        "metadata": "unique(meter column of every file); max(ts) of the last partition",
    }

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as pads
        import pyarrow.parquet as pq

        self.pa, self.pc, self.pads, self.pq = pa, pc, pads, pq
        self.label = f"Parquet lake (pyarrow {pa.__version__})"
        self.root = workdir / "parquet"
        self.dataset: Any = None
        self.schema = pa.schema([("meter", pa.int64()), ("ts", pa.timestamp("ns", tz=TZ)),
                                 ("kw", pa.float64())])

    def open(self, scenario: str) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.dataset = None

    def _file(self, day: dt.date) -> Path:
        return self.root / f"day={day.isoformat()}" / "part-0.parquet"

    def _write_day(self, block: Block, day: dt.date, cols: slice) -> None:
        values = block.values[:, cols]
        keep = ~np.isnan(values)
        per_meter = keep.sum(axis=1)
        table = self.pa.table({
            "meter": np.repeat(block.meters, per_meter),
            "ts": self.pa.array(np.broadcast_to(index_ns(block.index[cols]), values.shape)[keep],
                                type=self.pa.timestamp("ns", tz=TZ)),
            "kw": values[keep],
        }, schema=self.schema)
        path = self._file(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pq.write_table(table, path)

    def backfill(self, block: Block) -> None:
        for day, cols in block.day_slices():
            self._write_day(block, day, cols)
        self.dataset = None

    def append(self, block: Block) -> None:
        self.backfill(block)

    def read_day(self, day: dt.date) -> Any:
        return self.pq.read_table(self._file(day))

    @staticmethod
    def _check_table(table: Any, expected: Block, what: str,
                     only: np.ndarray | None = None) -> None:
        check_long(what, table["meter"].to_numpy(), table["ts"].cast("int64").to_numpy(),
                   table["kw"].to_numpy(), expected, only)

    def check_day(self, got: Any, expected: Block, what: str) -> None:
        self._check_table(got, expected, what)

    def _lake(self) -> Any:
        if self.dataset is None:  # discovered again after writes, as a reader would
            self.dataset = self.pads.dataset(self.root, format="parquet", partitioning="hive")
        return self.dataset

    def read_history(self, meter: int) -> Any:
        return self._lake().to_table(columns=["meter", "ts", "kw"],
                                     filter=self.pc.field("meter") == meter)

    def check_history(self, got: Any, meter: int, expected: Block, what: str) -> None:
        self._check_table(got, expected, what, np.array([meter]))

    def metadata(self) -> dict[str, Callable[[], Any]]:
        def keys() -> Any:
            return self.pc.unique(self._lake().to_table(columns=["meter"])["meter"])

        def max_timestamp() -> Any:
            last = max(p.name for p in self.root.iterdir())
            table = self.pq.read_table(self.root / last, columns=["ts"])
            return self.pc.max(table["ts"]).as_py()

        return {"keys": keys, "max_timestamp": max_timestamp}

    def check_metadata(self, name: str, got: Any, meters: int, last: pd.Timestamp,
                       what: str) -> None:
        if name == "keys" and len(got) != meters:
            raise FleetMismatch(f"{what}: {len(got)} meters, {meters} expected")
        if name == "max_timestamp" and pd.Timestamp(got) != last:
            raise FleetMismatch(f"{what}: {got}, {last} expected")

    def stored_bytes(self) -> int | None:
        return disk_usage(self.root)[0]

    def versions(self) -> dict[str, str]:
        return {"pyarrow": self.pa.__version__}


def optional_versions() -> dict[str, str]:
    """Versions of the optional clients, for the report."""
    return {name: package_version(name) for name in ("boto3", "moto", "psycopg")}
