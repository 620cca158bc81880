"""Sketch bucket counts in C (``SketchTable``, ``MergedSketches``) against plain Python dicts and
``sketch.quantile``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from windows import sketch
from windows.sketch_counts import SketchTable

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, 1e-12, -1e-12, 250.0])
pane_states = st.dictionaries(st.integers(-3000, 3000), st.integers(1, 5), max_size=8)


def table_of(states: list[dict[int, int]]) -> SketchTable:
    """A table whose slot i holds ``states[i]``."""
    table = SketchTable()
    table.grow(len(states))
    table.restore(np.arange(len(states), dtype=np.int64), [list(state.items()) for state in states])
    return table


def contents(table: SketchTable, slots: int) -> list[dict[int, int]]:
    return [dict(pairs) for pairs in table.snapshot(np.arange(slots, dtype=np.int64))]


@given(events=st.lists(st.tuples(st.integers(0, 4), values), max_size=60), chunks=st.integers(1, 4))
def test_adding_codes_counts_each_event_in_its_pane(events: list[tuple[int, float]], chunks: int) -> None:
    table = SketchTable()
    table.grow(5)
    slots = np.asarray([slot for slot, _ in events], dtype=np.int64)
    codes = sketch.bucket_codes(np.asarray([value for _, value in events], dtype=np.float64))
    for part in range(chunks):  # in several calls, as batches come
        table.add(np.ascontiguousarray(slots[part::chunks]), np.ascontiguousarray(codes[part::chunks]))
    expected: list[dict[int, int]] = [{} for _ in range(5)]
    for slot, code in zip(slots.tolist(), codes.tolist()):
        expected[slot][code] = expected[slot].get(code, 0) + 1
    assert contents(table, 5) == expected
    for pairs in table.snapshot(np.arange(5, dtype=np.int64)):
        assert [code for code, _ in pairs] == sorted({code for code, _ in pairs})  # in code order, each once


def test_many_codes_in_one_pane_stay_sorted_and_counted() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(-500, 500, size=20_000)
    table = SketchTable()
    table.grow(3)
    table.add(np.full(codes.shape[0], 1, dtype=np.int64), codes)
    (pairs,) = table.snapshot(np.asarray([1], dtype=np.int64))
    distinct, counts = np.unique(codes, return_counts=True)
    assert pairs == list(zip(distinct.tolist(), counts.tolist()))


def test_reset_empties_only_the_slots_named() -> None:
    table = table_of([{1: 2}, {3: 4, 5: 6}, {7: 8}])
    table.reset(np.asarray([0, 2], dtype=np.int64))
    assert contents(table, 3) == [{}, {3: 4, 5: 6}, {}]
    table.add(np.asarray([0], dtype=np.int64), np.asarray([9], dtype=np.int64))
    assert contents(table, 3) == [{9: 1}, {3: 4, 5: 6}, {}]


def test_growing_keeps_the_sketches_and_adds_empty_ones() -> None:
    table = table_of([{1: 2}, {3: 4}])
    table.grow(6)
    assert len(table) == 6
    assert contents(table, 6) == [{1: 2}, {3: 4}, {}, {}, {}, {}]


def test_slots_outside_the_table_are_refused() -> None:
    table = SketchTable()
    table.grow(2)
    with pytest.raises(IndexError, match="outside the 2 sketch slots"):
        table.add(np.asarray([2], dtype=np.int64), np.asarray([1], dtype=np.int64))
    with pytest.raises(IndexError, match="outside the 2 sketch slots"):
        table.reset(np.asarray([-1], dtype=np.int64))
    with pytest.raises(ValueError, match="one code per slot"):
        table.add(np.asarray([0, 1], dtype=np.int64), np.asarray([1], dtype=np.int64))


@given(
    panes=st.lists(pane_states, min_size=1, max_size=6),
    pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), max_size=20),
)
def test_merging_sums_counts_per_group_and_leaves_panes_alone(
    panes: list[dict[int, int]], pairs: list[tuple[int, int]]
) -> None:
    pairs = [(group, slot % len(panes)) for group, slot in pairs]
    table = table_of(panes)
    groups = np.asarray([g for g, _ in pairs], dtype=np.int64)
    slots = np.asarray([s for _, s in pairs], dtype=np.int64)
    merged = table.merge(groups, slots, 5)
    expected: list[dict[int, int]] = [{} for _ in range(5)]
    for group, slot in pairs:
        for code, count in panes[slot].items():
            expected[group][code] = expected[group].get(code, 0) + count
    assert len(merged) == 5
    assert [merged.buckets(g) for g in range(5)] == expected
    assert contents(table, len(panes)) == panes


@given(
    windows=st.lists(st.dictionaries(st.integers(-3000, 3000), st.integers(1, 10**6), max_size=40), max_size=10),
    q=st.sampled_from([0.01, 0.5, 0.9, 0.99, 0.999, 1.0]) | st.floats(0.001, 1.0),
)
def test_quantiles_are_those_of_the_python_sketch_to_the_bit(windows: list[dict[int, int]], q: float) -> None:
    table = table_of(windows)
    n = len(windows)
    got = table.merge(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64), n).quantiles(q)
    for value, buckets in zip(got.tolist(), windows):
        expected = sketch.quantile(buckets, q)
        if expected is None:
            assert math.isnan(value)
        else:
            assert value == expected and math.copysign(1.0, value) == math.copysign(1.0, expected)


def test_a_quantile_is_within_the_relative_accuracy_of_the_order_statistic() -> None:
    rng = np.random.default_rng(3)
    data = rng.lognormal(4.0, 1.5, size=20_000)
    table = SketchTable()
    table.grow(4)
    # four panes of one window, merged
    table.add(np.arange(data.shape[0], dtype=np.int64) % 4, sketch.bucket_codes(data))
    merged = table.merge(np.zeros(4, dtype=np.int64), np.arange(4, dtype=np.int64), 1)
    for q in (0.5, 0.9, 0.99):
        exact = np.sort(data)[max(math.ceil(q * data.shape[0]) - 1, 0)]
        (value,) = merged.quantiles(q).tolist()
        assert abs(value - exact) <= sketch.RELATIVE_ACCURACY * exact


@given(
    panes=st.lists(
        st.dictionaries(st.integers(-(2**62), 2**62), st.integers(1, 2**62), max_size=12), min_size=1, max_size=8
    ),
    data=st.data(),
)
def test_encoded_states_are_orjson_of_the_sorted_pairs(panes: list[dict[int, int]], data: st.DataObject) -> None:
    slots = data.draw(st.lists(st.integers(0, len(panes) - 1), max_size=10))
    got = table_of(panes).encoded(np.asarray(slots, dtype=np.int64))
    assert got == [orjson.dumps(sorted(panes[slot].items())) for slot in slots]


def test_restore_keeps_the_last_count_of_a_code_given_twice() -> None:
    table = SketchTable()
    table.grow(1)
    table.restore(np.zeros(1, dtype=np.int64), [[(5, 1), (2, 7), (5, 3)]])
    assert table.snapshot(np.zeros(1, dtype=np.int64)) == [[(2, 7), (5, 3)]]


def test_a_state_that_grows_the_table_while_it_is_read_is_restored_whole() -> None:
    # reading a state runs Python code; a table moved meanwhile must not be written where it was
    table = SketchTable()
    table.grow(1)

    def state() -> Iterator[tuple[int, int]]:
        yield (1, 1)
        table.grow(1 << 16)
        yield from ((code, 1) for code in range(2, 200))

    table.restore(np.zeros(1, dtype=np.int64), [state()])
    assert table.snapshot(np.zeros(1, dtype=np.int64)) == [[(code, 1) for code in range(1, 200)]]
    assert len(table) == 1 << 16
