"""The copy of a piece's valid points into long columns, both ways (stretch by stretch for
a few holes, masked for many), against a plain boolean selection."""

from __future__ import annotations

import numpy as np
import pytest

from curvestore.core.long_read import _FEW_HOLES, _copy_valid


@pytest.mark.parametrize("holes", [[0], [9], [0, 1, 2], [3, 4, 8], list(range(1, 40, 2)),
                                   list(range(0, 100, 3))])
def test_copy_valid_equals_a_boolean_selection(holes: list[int]) -> None:
    n = 100
    array = np.arange(n, dtype=np.float64) * 1.5
    array[[h for h in holes if h < n]] = np.nan
    missing = np.isnan(array)
    kept = int((~missing).sum())
    values, positions = np.full(kept, -1.0), np.full(kept, -1, dtype=np.int64)
    _copy_valid(array, missing, np.arange(n + 7), 1000, values, positions)
    np.testing.assert_array_equal(values, array[~missing])
    np.testing.assert_array_equal(positions, 1000 + np.flatnonzero(~missing))
    assert (len(holes) > _FEW_HOLES) == (holes == list(range(0, 100, 3)))
