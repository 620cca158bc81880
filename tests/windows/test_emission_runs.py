"""An emission order cut into runs, against plain Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.emission_runs import emission_runs


def _expected(order: list[int], bounds: list[int]) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Each chunk's rows in the order's order, and the runs, one row at a time."""
    chunk_of = [next(c for c in range(len(bounds) - 1) if bounds[c] <= row < bounds[c + 1]) for row in order]
    per_chunk: list[list[int]] = [[] for _ in range(len(bounds) - 1)]
    runs: list[tuple[int, int, int]] = []
    for row, chunk in zip(order, chunk_of):
        if runs and runs[-1][0] == chunk:
            runs[-1] = (chunk, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((chunk, len(per_chunk[chunk]), len(per_chunk[chunk]) + 1))
        per_chunk[chunk].append(row - bounds[chunk])
    return [position for rows in per_chunk for position in rows], runs


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 6), max_size=6).flatmap(
        lambda sizes: st.tuples(st.just(sizes), st.permutations(range(sum(sizes))))
    )
)
def test_runs_and_positions_match_a_row_by_row_reading(case: tuple[list[int], list[int]]) -> None:
    sizes, order = case
    bounds = np.cumsum([0, *sizes]).astype(np.int64)
    positions, runs = emission_runs(np.asarray(order, dtype=np.int64), bounds)
    assert (positions.tolist(), runs) == _expected(order, bounds.tolist())


def test_an_order_that_is_not_a_permutation_of_the_rows_is_refused() -> None:
    bounds = np.asarray([0, 2, 3], dtype=np.int64)
    with pytest.raises(IndexError, match="row 3 of the emission order is not among the 3 rows"):
        emission_runs(np.asarray([0, 3, 1], dtype=np.int64), bounds)
    with pytest.raises(ValueError, match="lists row 1 twice"):
        emission_runs(np.asarray([0, 1, 1], dtype=np.int64), bounds)
    with pytest.raises(ValueError, match="lists row 0 twice"):
        emission_runs(np.asarray([0, 0, 2], dtype=np.int64), bounds)
    with pytest.raises(ValueError, match="must run from 0 to the 3 rows ordered"):
        emission_runs(np.asarray([0, 1, 2], dtype=np.int64), np.asarray([0, 2], dtype=np.int64))
