"""Sketch bucket counts in C against plain Python dicts and ``sketch.quantile``."""

from __future__ import annotations

import copy
import math

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from windows import sketch, sketch_counts

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, 1e-12, -1e-12, 250.0])
panes = st.lists(st.dictionaries(st.integers(-3000, 3000), st.integers(1, 5), max_size=8), min_size=1, max_size=6)


@given(events=st.lists(st.tuples(st.integers(0, 4), values), max_size=60))
def test_adding_codes_counts_each_event_in_its_pane(events: list[tuple[int, float]]) -> None:
    buckets: list[dict[int, int] | None] = [{} for _ in range(5)]
    slots = np.asarray([slot for slot, _ in events], dtype=np.int64)
    codes = sketch.bucket_codes(np.asarray([value for _, value in events], dtype=np.float64))
    sketch_counts.add_codes(buckets, slots, codes)
    expected: list[dict[int, int]] = [{} for _ in range(5)]
    for slot, code in zip(slots.tolist(), codes.tolist()):
        expected[slot][code] = expected[slot].get(code, 0) + 1
    assert buckets == expected


@given(panes=panes, pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), max_size=20))
def test_merging_sums_counts_per_group_and_leaves_panes_alone(
    panes: list[dict[int, int]], pairs: list[tuple[int, int]]
) -> None:
    pairs = [(group, slot % len(panes)) for group, slot in sorted(pairs)]
    before = copy.deepcopy(panes)
    groups = np.asarray([g for g, _ in pairs], dtype=np.int64)
    slots = np.asarray([s for _, s in pairs], dtype=np.int64)
    merged = sketch_counts.merge_counts(list(panes), groups, slots, 5)
    expected: list[dict[int, int]] = [{} for _ in range(5)]
    for group, slot in pairs:
        for code, count in panes[slot].items():
            expected[group][code] = expected[group].get(code, 0) + count
    assert merged == expected
    assert panes == before


@given(
    merged=st.lists(st.dictionaries(st.integers(-3000, 3000), st.integers(1, 10**6), max_size=40), max_size=10),
    q=st.sampled_from([0.01, 0.5, 0.9, 0.99, 0.999, 1.0]) | st.floats(0.001, 1.0),
)
def test_quantiles_are_those_of_the_python_sketch_to_the_bit(merged: list[dict[int, int]], q: float) -> None:
    got = sketch_counts.quantiles(merged, q)
    for value, buckets in zip(got.tolist(), merged):
        expected = sketch.quantile(buckets, q)
        if expected is None:
            assert math.isnan(value)
        else:
            assert value == expected and math.copysign(1.0, value) == math.copysign(1.0, expected)


def test_a_quantile_is_within_the_relative_accuracy_of_the_order_statistic() -> None:
    rng = np.random.default_rng(3)
    data = rng.lognormal(4.0, 1.5, size=20_000)
    buckets: list[dict[int, int] | None] = [{}]
    sketch_counts.add_codes(buckets, np.zeros(data.shape[0], dtype=np.int64), sketch.bucket_codes(data))
    for q in (0.5, 0.9, 0.99):
        exact = np.sort(data)[max(math.ceil(q * data.shape[0]) - 1, 0)]
        (value,) = sketch_counts.quantiles([buckets[0] or {}], q).tolist()
        assert abs(value - exact) <= sketch.RELATIVE_ACCURACY * exact


@given(
    panes=st.lists(
        st.none() | st.dictionaries(st.integers(-(2**62), 2**62), st.integers(1, 2**62), max_size=12), max_size=8
    ),
    data=st.data(),
)
def test_encoded_states_are_orjson_of_the_sorted_pairs(panes: list[dict[int, int] | None], data: st.DataObject) -> None:
    slots = data.draw(st.lists(st.integers(0, max(len(panes) - 1, 0)), max_size=10)) if panes else []
    got = sketch_counts.encoded_states(panes, np.asarray(slots, dtype=np.int64))
    assert got == [orjson.dumps(sorted((panes[slot] or {}).items())) for slot in slots]
