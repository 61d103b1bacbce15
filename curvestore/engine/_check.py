"""``curvestore verify`` for the engine: the log, the checkpoints and the segments.

Every problem is reported (one per damaged object), never only the first. Chunk payloads are
verified by the core, series by series, through the normal read path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from curvestore.core.backend import IntegrityProblem
from curvestore.core.records import SeriesKey
from curvestore.engine._checkpoint import checkpoints
from curvestore.engine._format import catalog_key, decode_container, log_key, seq_of
from curvestore.errors import IntegrityError

if TYPE_CHECKING:
    from curvestore.engine.backend import EngineBackend

__all__ = ["check"]


def check(backend: EngineBackend, where: Mapping[str, Any]
          ) -> tuple[list[SeriesKey] | None, list[IntegrityProblem]]:
    objects = backend.objects
    problems: list[IntegrityProblem] = []
    entries = {info.key: info.size for info in objects.list("log/")}
    seqs = sorted(s for s in map(seq_of, entries) if s is not None)
    missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs)) if seqs else []
    problems += [(None, None, f"log entry {log_key(s)} is missing") for s in missing]
    for seq in seqs:
        found = objects.get(log_key(seq))
        if found is None:
            continue
        try:
            decode_container(found[0], log_key(seq))
        except IntegrityError as exc:
            problems.append((None, None, str(exc)))
    for seq in checkpoints(objects):
        found = objects.get(catalog_key(seq))
        if found is None:
            continue
        try:
            decode_container(found[0], catalog_key(seq))
        except IntegrityError as exc:
            problems.append((None, None, f"{exc} (checkpoints are optional: removing it is "
                                         "safe)"))
    if problems:
        return None, problems
    catalog = backend.current()
    # payloads sit in segments, and small commits' in their entries
    sizes = {**entries, **{info.key: info.size for info in objects.list("data/")}}
    rows = catalog.rows
    if len(rows):
        ends = np.zeros(len(catalog.objects), dtype=np.int64)
        np.maximum.at(ends, rows["obj"], rows["offset"] + rows["size"])
        for obj in np.unique(rows["obj"]).tolist():
            name = catalog.objects[obj]
            size = sizes.get(name)
            if size is None:
                problems.append((None, None, f"object {name!r} is missing"))
            elif size < ends[obj]:
                problems.append((None, None, f"object {name!r} is truncated ({size} bytes, "
                                             f"the catalog needs {int(ends[obj])})"))
    return None, problems
