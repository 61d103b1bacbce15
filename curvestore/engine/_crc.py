"""Checking many payloads' CRC-32s with one pass over their bytes.

A segment keeps one commit's fragments back to back, each with its own CRC-32 in the catalog.
Compaction reads hundreds of thousands of them; one ``crc32`` call each costs far more in call
overhead than in hashing. CRC-32 is affine in its input, so the CRC of pieces laid end to end
follows from theirs: ``crc(A + B) = L_len(B)(crc(A)) ^ crc(B)``, where ``L_m`` is a fixed
linear map of 32-bit words (the register advanced over ``m`` zero bytes). Combining the
stored CRCs of a run of equal-length pieces in a balanced tree (numpy, across runs and pairs
at once) and comparing with one ``crc32`` of the run's bytes checks every piece of the run: a
mismatch means at least one piece is damaged, and the caller then checks piece by piece to
name it.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from curvestore.core.records import checksum as _crc
from curvestore.engine._format import sort_key

__all__ = ["combined_crcs", "failing"]

def _tables(columns: np.ndarray) -> np.ndarray:
    """Byte lookup tables (4 x 256) of the linear map whose images of the 32 unit words are
    ``columns``: applying it is four lookups and three XORs per word."""
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for bit in range(8):
            size = 1 << bit
            tables[k, size:2 * size] = tables[k, :size] ^ columns[8 * k + bit]
    return tables


def _apply(tables: np.ndarray, words: np.ndarray) -> np.ndarray:
    return (tables[0][words & 0xFF] ^ tables[1][(words >> 8) & 0xFF]
            ^ tables[2][(words >> 16) & 0xFF] ^ tables[3][words >> 24])


def _shift_over(nbytes: int) -> np.ndarray:
    """The images of the 32 unit words under ``L_nbytes``."""
    zeros = bytes(nbytes)
    base = zlib.crc32(zeros)
    return np.array([zlib.crc32(zeros, 1 << b) ^ base for b in range(32)], dtype=np.uint32)


@functools.lru_cache(maxsize=64)
def _ladder(nbytes: int, levels: int) -> tuple[np.ndarray, ...]:
    """Lookup tables of ``L_m`` for ``m = nbytes * 2**k``, ``k < levels`` (each the square of
    the one before); they depend on the sizes only, so a compaction's many runs share them."""
    columns = _shift_over(nbytes)
    ladder = []
    for _ in range(levels):
        tables = _tables(columns)
        ladder.append(tables)
        columns = _apply(tables, columns)
    return tuple(ladder)


def combined_crcs(crcs: np.ndarray, nbytes: int) -> np.ndarray:
    """For each row of ``crcs`` (runs x pieces, CRC-32s of pieces of ``nbytes`` bytes each,
    laid end to end), the CRC-32 of the whole run. Runs shorter than the row are padded at
    the front with zeros (the CRC of nothing), which leaves the result unchanged."""
    runs, pieces = crcs.shape
    levels = max(int(pieces - 1).bit_length(), 0)
    level = np.zeros((runs, 1 << levels), dtype=np.uint32)
    level[:, (1 << levels) - pieces:] = crcs.astype(np.uint32)
    for tables in _ladder(nbytes, levels):
        level = _apply(tables, level[:, 0::2]) ^ level[:, 1::2]
    return level[:, 0].astype(np.int64)


def failing(blobs: list[bytes], block: np.ndarray, rel: np.ndarray, size: np.ndarray,
            stored: np.ndarray) -> np.ndarray:
    """Indices of the payloads whose CRC-32 is not ``stored``; payload ``i`` is
    ``blobs[block[i]][rel[i]:rel[i] + size[i]]``.

    Payloads of one blob and one size that sit back to back are checked as runs (see the
    module docstring), the rest one by one; a run that fails is checked piece by piece."""
    count = len(block)
    if not count:
        return np.empty(0, dtype=np.int64)
    views = [memoryview(x) for x in blobs]
    order = np.argsort(sort_key(block, rel))
    b, r, n = block[order], rel[order], size[order]
    follows = np.zeros(count, dtype=bool)
    follows[1:] = (b[1:] == b[:-1]) & (n[1:] == n[:-1]) & (r[1:] == r[:-1] + n[:-1])
    heads = np.flatnonzero(~follows)
    lengths = np.diff(np.r_[heads, count])
    single = np.zeros(count, dtype=bool)
    single[heads[lengths == 1]] = True
    suspects = [order[single]]
    long_runs = np.flatnonzero(lengths > 1)
    for nbytes in np.unique(n[heads[long_runs]]).tolist():
        runs = long_runs[n[heads[long_runs]] == nbytes]
        first, many = heads[runs], lengths[runs]
        width = int(many.max())
        table = np.zeros((len(runs), width), dtype=np.int64)
        owner = np.repeat(np.arange(len(runs)), many)
        within = np.arange(int(many.sum())) - np.repeat(np.cumsum(many) - many, many)
        members = np.repeat(first, many) + within
        table[owner, width - many[owner] + within] = stored[order[members]]
        expected = combined_crcs(table, nbytes)
        actual = np.array([_crc(views[int(b[h])][int(r[h]):int(r[h]) + k * nbytes])
                           for h, k in zip(first.tolist(), many.tolist(), strict=True)],
                          dtype=np.int64)
        for bad in np.flatnonzero(actual != expected).tolist():
            h, k = int(first[bad]), int(many[bad])
            suspects.append(order[h:h + k])
    rows = np.concatenate(suspects)
    crcs = np.fromiter((_crc(views[g][s:s + k]) for g, s, k in zip(
        block[rows].tolist(), rel[rows].tolist(), size[rows].tolist(), strict=True)),
        dtype=np.int64, count=len(rows))
    return np.sort(rows[crcs != stored[rows]])
