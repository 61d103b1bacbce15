"""Checking runs of back-to-back payloads with one CRC pass (curvestore.engine._crc)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from curvestore.engine._catalog import among
from curvestore.engine._crc import combined_crcs, failing


@pytest.mark.parametrize(("nbytes", "pieces"), [(768, 1), (768, 2), (768, 3), (800, 1025),
                                                (1, 33), (8, 64)])
def test_combined_crc_is_the_crc_of_the_whole_run(nbytes: int, pieces: int) -> None:
    rng = np.random.default_rng(nbytes + pieces)
    runs = [rng.bytes(nbytes * pieces), rng.bytes(nbytes * max(pieces - 1, 1))]
    table = np.zeros((2, pieces), dtype=np.int64)
    for r, run in enumerate(runs):
        crcs = [zlib.crc32(run[i:i + nbytes]) for i in range(0, len(run), nbytes)]
        table[r, pieces - len(crcs):] = crcs  # a shorter run, padded at the front
    assert combined_crcs(table, nbytes).tolist() == [zlib.crc32(run) for run in runs]


def test_failing_names_exactly_the_damaged_payloads() -> None:
    rng = np.random.default_rng(7)
    for _trial in range(100):
        blobs, block, rel, size = [], [], [], []
        for g in range(int(rng.integers(1, 4))):
            parts, at = [], 0
            for _ in range(int(rng.integers(1, 30))):
                n, gap = int(rng.choice([8, 16, 16, 24])), int(rng.choice([0, 0, 0, 4]))
                parts += [rng.bytes(gap), rng.bytes(n)]
                at += gap
                block.append(g), rel.append(at), size.append(n)
                at += n
            blobs.append(b"".join(parts))
        b, r, n = (np.array(x, dtype=np.int64) for x in (block, rel, size))
        stored = np.array([zlib.crc32(blobs[g][s:s + k]) for g, s, k in
                           zip(b.tolist(), r.tolist(), n.tolist(), strict=True)],
                          dtype=np.int64)
        shuffle = rng.permutation(len(b))
        b, r, n, stored = b[shuffle], r[shuffle], n[shuffle], stored[shuffle]
        assert failing(blobs, b, r, n, stored).tolist() == []
        bad = sorted(set(rng.integers(0, len(b), int(rng.integers(1, 3))).tolist()))
        stored[bad] ^= 1
        assert failing(blobs, b, r, n, stored).tolist() == bad


def test_among_is_isin() -> None:
    rng = np.random.default_rng(3)
    for size, count, top in ((0, 5, 10), (7, 0, 10), (1000, 50, 200), (5000, 3000, 1 << 40)):
        values = rng.integers(-top, top, size)
        members = rng.integers(-top, top, count)
        assert among(values, members).tolist() == np.isin(values, members).tolist()
