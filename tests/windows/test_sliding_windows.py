"""The sliding-window operator's own bookkeeping, against plain Python (its windows are checked against the
reference model in test_engine_vs_reference.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.aggregates import parse_aggregate
from windows.definitions import SlidingWindows, WindowSpec
from windows.sliding_windows import SlidingWindowOperator
from windows.stream_time import NO_TIME

# dense key ids (found by key id) and far-apart ones (found by a search in the point index)
_KEYS = st.integers(0, 6) | st.integers(0, 2**40)


@settings(max_examples=300, deadline=None)
@given(
    points=st.lists(st.tuples(_KEYS, st.integers(-50, 50)), unique=True, max_size=40),
    asked=st.lists(_KEYS, max_size=20),
)
def test_each_keys_newest_time_is_its_latest_point(points: list[tuple[int, int]], asked: list[int]) -> None:
    operator = SlidingWindowOperator(WindowSpec("w", SlidingWindows(10, 2), (parse_aggregate("n", "count"),)), 0)
    keys = np.asarray([key for key, _ in points], dtype=np.int64)
    times = np.asarray([time for _, time in points], dtype=np.int64)
    operator.table.slots_for(keys, times)  # the points, in the table the index is built from
    asked_keys = [*asked, *(key for key, _ in points)]
    got = operator._newest_times(np.asarray(asked_keys, dtype=np.int64)).tolist()
    assert got == [max((t for k, t in points if k == key), default=NO_TIME) for key in asked_keys]
