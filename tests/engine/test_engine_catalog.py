"""The catalog's fold of many entries at once (how a store opens) equals folding them one by
one (how a handle follows commits)."""

from __future__ import annotations

import numpy as np
import pytest

from curvestore.engine._catalog import Catalog
from curvestore.engine._format import APPEND, DELETED, ROW, Container


def _entry(seq: int, rng: np.random.Generator, series: int, new: int) -> Container:
    """An entry writing random chunks of ``series`` known series and ``new`` new ones: base
    rows, fragments and tombstones, one row per chunk, in its own object and codec tables."""
    count = int(rng.integers(1, 12))
    sids = rng.integers(0, series + new, count)
    chunks = rng.integers(-2, 4, count)
    pairs = np.unique(np.stack([sids, chunks], axis=1), axis=0)
    rows = np.zeros(len(pairs), dtype=ROW)
    rows["sid"], rows["chunk"] = pairs[:, 0], pairs[:, 1]
    rows["version"] = seq
    rows["flags"] = rng.choice([0, APPEND, DELETED], len(pairs), p=[0.4, 0.45, 0.15])
    rows["offset"] = rng.integers(0, 1 << 20, len(pairs))
    rows["size"] = rng.integers(1, 100, len(pairs))
    rows["codec"] = rng.integers(0, 2, len(pairs))
    header = {"kind": "commit", "seq": seq, "objects": [f"data/{seq}.seg"],
              "codecs": ["lz4", "none"][::1 if seq % 2 else -1], "dtypes": ["<f8"]}
    if new:
        header["new_series"] = {"first": series, "columns": [list(range(series, series + new))]}
    return Container(header, rows)


@pytest.mark.parametrize("seed", range(20))
def test_fold_all_equals_folding_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    entries, series = [], 0
    for seq in range(1, 25):
        new = int(rng.integers(0 if series else 1, 3))
        entries.append(_entry(seq, rng, series, new))
        series += new
    start = Catalog.empty(["int"])
    one_by_one = start
    for entry in entries:
        one_by_one = one_by_one.fold(entry)
    at_once = start.fold_all(entries[:7]).fold_all(entries[7:])
    assert at_once.seq == one_by_one.seq == len(entries)
    assert at_once.pending == one_by_one.pending
    assert (at_once.objects, at_once.codecs) == (one_by_one.objects, one_by_one.codecs)
    assert at_once.rows.tobytes() == one_by_one.rows.tobytes()
    assert (at_once.keys == one_by_one.keys).all()
    assert (np.diff(at_once.keys) >= 0).all()  # sorted, as every read needs
    assert len(at_once.names) == series
