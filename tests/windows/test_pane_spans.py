"""The panes a tumbling or hopping close visits and the windows it emits, against the definitions: a pane
starting at ``p`` (a multiple of ``gcd(size, step)``) belongs to the windows starting at the multiples of
``step`` in ``(p - size, p]``, and a window starting at ``s`` closes at ``s + size + grace``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.pane_spans import closing_pairs, closing_panes
from windows.stream_time import END_OF_TIME, NO_TIME

_GEOMETRY = st.integers(1, 12).flatmap(lambda step: st.tuples(st.integers(step, 60), st.just(step), st.integers(0, 20)))
_EXTREMES = st.sampled_from([NO_TIME, NO_TIME + 1, END_OF_TIME - 1, END_OF_TIME])
_TIMES = st.one_of(st.integers(-300, 300), _EXTREMES)
_EMPTY = np.zeros(0, dtype=np.int64)


def _window_starts(pane: int, size: int, step: int) -> list[int]:
    """Every epoch-aligned window start ``s`` with ``s <= pane < s + size``, ascending."""
    start = pane - pane % step
    starts = []
    while start + size > pane:
        starts.append(start)
        start -= step
    return starts[::-1]


def _ints(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


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
    pane_size = math.gcd(size, step)
    alive = np.asarray([a for a, _ in slots] + [True] * unused, dtype=np.uint8)
    panes = _ints([number * pane_size for _, number in slots] + [0] * unused)
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


@settings(max_examples=400, deadline=None)
@given(_GEOMETRY, st.lists(st.tuples(st.integers(0, 6), st.integers(-40, 40)), min_size=1, max_size=20), st.data())
def test_the_windows_emitted_are_those_closing_after_what_the_key_emitted_and_by_the_slots_close_point(
    geometry, panes, data
) -> None:
    size, step, grace = geometry
    pane_size = math.gcd(size, step)
    key_of = _ints([key for key, _ in panes])
    pane_of = _ints([number * pane_size for _, number in panes])
    slots = data.draw(st.lists(st.integers(0, len(panes) - 1), max_size=30))
    one = data.draw(st.booleans())
    uptos = data.draw(st.lists(_TIMES, min_size=1 if one else len(slots), max_size=1 if one else len(slots)))
    closed_upto = data.draw(_TIMES)
    by_key = data.draw(st.lists(_TIMES, max_size=4))  # keys 4 and up are beyond it
    far = data.draw(st.dictionaries(st.integers(-2, 8), _TIMES, max_size=3))  # beside it, or alone
    far_keys = sorted(far)

    pair_slots, pair_starts = closing_pairs(
        _ints(slots),
        pane_of,
        key_of,
        _ints(uptos),
        closed_upto,
        _ints(by_key),
        _ints(far_keys),
        _ints([far[key] for key in far_keys]),
        size,
        step,
        grace,
    )

    expected = []
    for i, slot in enumerate(slots):
        key, pane, upto = int(key_of[slot]), int(pane_of[slot]), uptos[0 if one else i]
        lower = max(closed_upto, by_key[key] if 0 <= key < len(by_key) else NO_TIME, far.get(key, NO_TIME))
        for start in _window_starts(pane, size, step):
            if lower < start + size + grace <= upto:
                expected.append((slot, start))
    assert list(zip(pair_slots.tolist(), pair_starts.tolist())) == expected


def test_one_close_point_stands_for_every_slot() -> None:
    panes = _ints([0, 10, 20])
    keys = np.zeros(3, dtype=np.int64)
    slots = _ints([2, 0, 1])
    one = closing_pairs(slots, panes, keys, _ints([25]), NO_TIME, _EMPTY, _EMPTY, _EMPTY, 20, 10, 5)
    each = closing_pairs(slots, panes, keys, np.full(3, 25, dtype=np.int64), NO_TIME, _EMPTY, _EMPTY, _EMPTY, 20, 10, 5)
    assert [a.tolist() for a in one] == [a.tolist() for a in each]
    # windows [-10, 10) and [0, 20) close at 15 and 25, [10, 30) at 35: slot 0's two, slot 1's one
    assert one[0].tolist() == [0, 0, 1] and one[1].tolist() == [-10, 0, 0]


def test_a_hopping_pane_whose_windows_would_start_before_the_earliest_time_is_refused() -> None:
    pane = _ints([NO_TIME + 7])  # windows of 10 ms every 9 ms holding it start up to 9 ms below it
    with pytest.raises(ValueError, match=f"the windows of pane {NO_TIME + 7} .10 ms every 9 ms. start before"):
        closing_pairs(_ints([0]), pane, _ints([0]), _ints([END_OF_TIME]), NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 9, 0)


def test_bad_arguments_are_refused_before_any_pane_is_read() -> None:
    panes = np.zeros(2, dtype=np.int64)
    one = _ints([5])
    flags = np.ones(2, dtype=np.uint8)
    with pytest.raises(ValueError, match="every 0 ms"):
        closing_pairs(_EMPTY, panes, panes, one, NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 0, 0)
    with pytest.raises(ValueError, match="windows of 5 ms every 10 ms"):
        closing_panes(flags, panes, 2, 5, NO_TIME, 5, 10, 0)
    with pytest.raises(ValueError, match="with -1 ms of grace"):
        closing_panes(flags, panes, 2, 5, NO_TIME, 10, 10, -1)
    with pytest.raises(IndexError, match="slot 2 is not among the 2 slots"):
        closing_pairs(_ints([2]), panes, panes, one, NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 10, 0)
    with pytest.raises(IndexError, match="slot -1 is not among the 2 slots"):
        closing_pairs(_ints([-1]), panes, panes, one, NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 10, 0)
    with pytest.raises(ValueError, match="one close point, or one for each of the 1 slots, not 2"):
        closing_pairs(_ints([0]), panes, panes, panes, NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 10, 0)
    with pytest.raises(ValueError, match="pane starts and key ids differ in length: 2 and 1"):
        closing_pairs(_ints([0]), panes, one, one, NO_TIME, _EMPTY, _EMPTY, _EMPTY, 10, 10, 0)
    with pytest.raises(ValueError, match="1 far keys need as many close points, not 0"):
        closing_pairs(_ints([0]), panes, panes, one, NO_TIME, _EMPTY, one, _EMPTY, 10, 10, 0)
    for high_water in (3, -1):
        with pytest.raises(ValueError, match=f"{high_water} slots in use do not fit"):
            closing_panes(flags, panes, high_water, 5, NO_TIME, 10, 10, 0)
