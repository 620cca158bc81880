"""The engine's event batch: taking rows of it, and the columns each window reads."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from windows.aggregates import AggregateKind, AggregateSpec
from windows.aggregation import Aggregation
from windows.events import EventBatch
from windows.pane_state import TRACE_HI, TRACE_LO, TRACE_ORIGIN


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


def test_only_keeps_the_named_columns_as_they_are_and_is_the_batch_itself_when_it_names_them_all() -> None:
    batch = _batch(5)
    batch = EventBatch(
        ts=batch.ts,
        key_ids=batch.key_ids,
        seq=batch.seq,
        numbers={**batch.numbers, "y": np.ones(5)},
        hashes=batch.hashes,
    )
    trimmed = batch.only({"y", "absent"}, set())
    assert list(trimmed.numbers) == ["y"] and trimmed.numbers["y"] is batch.numbers["y"]
    assert trimmed.hashes == {} and trimmed.ts is batch.ts and trimmed.seq is batch.seq
    assert batch.only({"x", "y"}, {"h"}) is batch
    assert list(trimmed.take(np.array([4, 1])).numbers) == ["y"]


def test_a_windows_aggregates_name_the_batch_columns_they_read() -> None:
    specs = [
        AggregateSpec("n", AggregateKind.COUNT),
        AggregateSpec("total", AggregateKind.SUM, "bytes"),
        AggregateSpec("p99", AggregateKind.PERCENTILE, "latency", quantile=0.99),
        AggregateSpec("users", AggregateKind.DISTINCT, "user"),
        AggregateSpec("rate", AggregateKind.DECAY, None, half_life=1_000),
    ]
    assert Aggregation(specs).batch_fields() == ({"bytes", "latency"}, {"user"})
    assert Aggregation(specs[:1], trace_links=3).batch_fields() == (set(), {TRACE_HI, TRACE_LO, TRACE_ORIGIN})
