"""What every benchmarked store implements (``System``) and the workload's shape.

numpy-free, so that scripts can subclass the systems at import time, before bench/.venv is set
up; the data and the measuring live in ``workload``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

KEYS = ("site", "kind")
FREQ = "15min"
TZ = "Europe/Paris"
KINDS = ("consumption", "production")
#: The reference systems; ratios are computed against them.
PEERS = ("arcticdb", "holcstore")


class BenchError(AssertionError):
    """A system did not read back what it was given."""


@dataclass
class Dataset:
    name: str
    description: str
    keys: list[tuple[str, str]]
    series: list[Any]  # pd.Series, tz-aware, named "value"
    month_starts: Any  # pd.DatetimeIndex of local month starts, the end included

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)


@dataclass
class Bytes:
    measured: int  # the number behind B/point
    how: str
    extra: dict[str, int] = field(default_factory=dict)


def disk_usage(path: Path, skip: Callable[[Path], bool] = lambda p: False) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the files under ``path``."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if skip(p):
                continue
            st = p.lstat()
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


class System(ABC):
    """One store under test. Every method but ``setup`` and ``bytes`` is timed by the harness."""

    name = "?"  # short id used by --systems
    label = "?"  # column title in the results
    peer = True  # a reference system (ratios are computed against peers)
    calls: ClassVar[dict[str, str]] = {}  # operation -> the public API it uses

    @abstractmethod
    def setup(self, dataset: Dataset) -> None:
        """Start from a fresh, empty store for ``dataset``."""

    def after_write(self) -> dict[str, Any]:
        """Untimed housekeeping right after write_many; returns facts worth reporting."""
        return {}

    @abstractmethod
    def write_many(self, mapping: dict[tuple[str, str], Any]) -> None:
        """Insert every series of ``mapping`` in one bulk call."""

    @abstractmethod
    def read(self, key: tuple[str, str]) -> Any:
        """The whole series ``key``."""

    @abstractmethod
    def read_many(self) -> Iterator[tuple[tuple[str, str], Any]]:
        """Every series, through the system's bulk read."""

    @abstractmethod
    def read_window(self, key: tuple[str, str], start: Any, end: Any) -> Any:
        """The points in ``[start, end]``, both inclusive."""

    @abstractmethod
    def update(self, key: tuple[str, str], series: Any) -> None:
        """Overwrite the points of ``series`` and keep the others."""

    @abstractmethod
    def bytes(self) -> Bytes:
        """What the stored data costs on disk."""

    def teardown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what ``setup`` acquired (servers, files) once the run is over."""

    def versions(self) -> dict[str, str]:
        return {}
