"""The panes a tumbling or hopping close visits and releases, against the definitions: a pane starting at
``p`` belongs to the windows starting every ``step`` from ``first_start(p)`` to ``last_start(p)``, and a
window starting at ``s`` closes at ``s + size + grace``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.pane_spans import closing_pairs, closing_panes
from windows.stream_time import END_OF_TIME, NO_TIME

_GEOMETRY = st.integers(1, 12).flatmap(lambda step: st.tuples(st.integers(step, 60), st.just(step), st.integers(0, 20)))
_TIMES = st.one_of(st.integers(-300, 300), st.sampled_from([NO_TIME, END_OF_TIME]))


def _window_starts(pane: int, size: int, step: int) -> list[int]:
    """Every epoch-aligned window start ``s`` with ``s <= pane < s + size``."""
    start = pane - pane % step
    starts = []
    while start + size > pane:
        starts.append(start)
        start -= step
    return starts


@settings(max_examples=300, deadline=None)
@given(
    _GEOMETRY,
    st.lists(st.tuples(st.booleans(), st.integers(-40, 40)), max_size=30),  # (alive, pane number)
    st.integers(0, 30),
    _TIMES,
    _TIMES,
)
def test_a_close_visits_panes_whose_windows_close_around_it_and_releases_those_whose_last_window_closed(
    geometry, slots, unused, closed_upto, upto
) -> None:
    size, step, grace = geometry
    alive = np.asarray([a for a, _ in slots] + [True] * unused, dtype=np.uint8)
    panes = np.asarray([number * step for _, number in slots] + [0] * unused, dtype=np.int64)
    high_water = len(slots)  # the slots above it were never used, whatever their flags say

    near, dead = closing_panes(alive, panes, high_water, upto, closed_upto, size, step, grace)

    expected_near, expected_dead = [], []
    for slot in range(high_water):
        if not alive[slot]:
            continue
        closes = [start + size + grace for start in _window_starts(int(panes[slot]), size, step)]
        if min(closes) <= upto and max(closes) > closed_upto:  # its windows closing in the range are among them
            expected_near.append(slot)
        if max(closes) <= upto:
            expected_dead.append(slot)
    assert near.tolist() == expected_near
    assert dead.tolist() == expected_dead


def test_one_close_point_stands_for_every_slot() -> None:
    panes = np.asarray([0, 10, 20], dtype=np.int64)
    keys = np.zeros(3, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    slots = np.asarray([2, 0, 1], dtype=np.int64)
    one = closing_pairs(slots, panes, keys, np.asarray([25], dtype=np.int64), NO_TIME, empty, empty, empty, 20, 10, 5)
    each = closing_pairs(slots, panes, keys, np.full(3, 25, dtype=np.int64), NO_TIME, empty, empty, empty, 20, 10, 5)
    assert [a.tolist() for a in one] == [a.tolist() for a in each]
    # windows [-10, 10) and [0, 20) close at 15 and 25, [10, 30) at 35: slot 0's two, slot 1's one
    assert one[0].tolist() == [0, 0, 1] and one[1].tolist() == [-10, 0, 0]


def test_bad_arguments_are_refused_before_any_pane_is_read() -> None:
    panes = np.zeros(2, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    one = np.asarray([5], dtype=np.int64)
    with pytest.raises(ValueError, match="every 0 ms"):
        closing_pairs(empty, panes, panes, one, NO_TIME, empty, empty, empty, 10, 0, 0)
    with pytest.raises(ValueError, match="windows of 5 ms every 10 ms"):
        closing_panes(np.ones(2, dtype=np.uint8), panes, 2, 5, NO_TIME, 5, 10, 0)
    with pytest.raises(IndexError, match="slot 2 is not among the 2 slots"):
        closing_pairs(np.asarray([2], dtype=np.int64), panes, panes, one, NO_TIME, empty, empty, empty, 10, 10, 0)
    with pytest.raises(ValueError, match="one close point or one per slot: 1 slots, 2 points"):
        closing_pairs(np.asarray([0], dtype=np.int64), panes, panes, panes, NO_TIME, empty, empty, empty, 10, 10, 0)
    with pytest.raises(ValueError, match="3 slots in use do not fit"):
        closing_panes(np.ones(2, dtype=np.uint8), panes, 3, 5, NO_TIME, 10, 10, 0)
