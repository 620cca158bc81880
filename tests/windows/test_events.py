"""The engine's event batch: taking rows of it."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from windows.events import EventBatch


def _batch(n: int) -> EventBatch:
    return EventBatch(
        ts=np.arange(n, dtype=np.int64) * 10,
        key_ids=np.arange(n, dtype=np.int64) % 3,
        seq=np.arange(n, dtype=np.int64) + 100,
        numbers={"x": np.arange(n, dtype=np.float64) / 2},
        hashes={"h": np.arange(n, dtype=np.int64) * 7},
    )


@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, max(n - 1, 0)), max_size=n).map(sorted) | st.permutations(range(n)),
        )
    )
)
def test_rows_are_the_rows_taken_and_all_rows_in_order_are_the_batch_itself(case: tuple[int, list[int]]) -> None:
    n, chosen = case
    batch = _batch(n)
    positions = np.asarray([p for p in chosen if p < n], dtype=np.int64)  # ascending with repeats, or any order
    rows, taken = batch.rows(positions), batch.take(positions)
    for column in ("ts", "key_ids", "seq"):
        assert getattr(rows, column).tolist() == getattr(taken, column).tolist()
    assert rows.numbers["x"].tolist() == taken.numbers["x"].tolist()
    assert rows.hashes["h"].tolist() == taken.hashes["h"].tolist()
    assert (rows is batch) == (positions.tolist() == list(range(n)))
