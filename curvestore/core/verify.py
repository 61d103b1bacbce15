"""Re-read every chunk of a store and report what is corrupt or unreadable.

First the backend checks what it keeps besides payloads (the optional ``check_integrity`` of
:class:`~curvestore.core.capabilities.ChecksIntegrity`: for the
filesystem, the manifest, the change log, the layout and the shard indexes). Then every live
chunk is read back through its backend (which checks its own framing), its payload checksum is
verified and it is decoded with its codec. A failure does not stop the walk: a
series whose chunks cannot be listed or read is reported as one failure and the walk goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from curvestore.core import chunks as _chunks
from curvestore.core.backend import IntegrityProblem
from curvestore.core.capabilities import ChecksIntegrity
from curvestore.core.records import SeriesKey
from curvestore.errors import CurvestoreError

if TYPE_CHECKING:
    from curvestore.core.store import Store

__all__ = ["Failure", "VerifyReport", "verify_store"]


@dataclass(frozen=True)
class Failure:
    key: dict[str, Any] | None  # None: the store as a whole (manifest, log, layout)
    chunk: int | None
    message: str


@dataclass
class VerifyReport:
    series: int = 0
    chunks: int = 0
    payload_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_store(store: Store, filter: dict[str, Any] | None = None,
                 progress: Callable[[VerifyReport], None] | None = None) -> VerifyReport:
    """Verify every live chunk of the series matching ``filter``."""
    report = VerifyReport()
    where = store.schema.filter(filter)
    backend = store.backend
    keys: list[SeriesKey] | None = None
    problems: list[IntegrityProblem] = []
    if store.capabilities.integrity and isinstance(backend, ChecksIntegrity):
        keys, problems = backend.check_integrity(where)
    for problem_key, chunk, message in problems:
        report.failures.append(Failure(
            None if problem_key is None else store.schema.as_dict(problem_key), chunk, message))
    if keys is None:
        try:
            keys = list(store.backend.list_series(where))
        except (CurvestoreError, OSError) as exc:
            report.failures.append(Failure(None, None, f"cannot list the series: {exc}"))
            keys = []
    for key in keys:
        key_dict = store.schema.as_dict(key)
        report.series += 1
        try:
            records = store.backend.read_chunks(key)
        except (CurvestoreError, OSError, ValueError) as exc:
            report.failures.append(Failure(key_dict, None, str(exc)))
            continue
        for record in records:
            report.chunks += 1
            report.payload_bytes += len(record.payload)
            try:
                piece = _chunks.decode(record, store.codecs)
                if len(piece.values) != record.meta.length:
                    raise CurvestoreError(f"decoded {len(piece.values)} points, "
                                          f"meta says {record.meta.length}")
            except (CurvestoreError, ValueError) as exc:
                report.failures.append(Failure(key_dict, record.chunk, str(exc)))
        if progress is not None:
            progress(report)
    return report
