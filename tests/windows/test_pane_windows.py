"""The windows a tumbling or hopping close emits, against their definition: every window containing a
slot's pane whose close point ``start + size + grace`` lies after what the slot's key has emitted and at
or before the slot's ``upto``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.aggregates import parse_aggregate
from windows.definitions import HoppingWindows, TumblingWindows, WindowSpec
from windows.pane_windows import PaneWindowOperator
from windows.stream_time import END_OF_TIME, NO_TIME

_DEFINITIONS = st.one_of(
    st.builds(TumblingWindows, st.integers(1, 50), st.integers(0, 20)),
    st.integers(1, 12).flatmap(
        lambda step: st.builds(HoppingWindows, st.integers(step, 60), st.just(step), st.integers(0, 20))
    ),
)
_TIMES = st.one_of(st.integers(-300, 300), st.sampled_from([NO_TIME, END_OF_TIME]))
# a job's key ids are dense, from 0; ids far from the others (or below 0) are kept apart (``record_closed``)
_KEY_IDS = st.integers(0, 4) | st.sampled_from([-3, 1 << 40])


def _expected(
    operator: PaneWindowOperator, closed_keys: dict[int, int], slots: list[int], uptos: list[int]
) -> list[tuple[int, int]]:
    """(position in ``slots``, window start) pairs by the definition, window by window (``closed_keys``: the
    close point each key's windows were emitted up to within the segment)."""
    size, step, reach = operator.size, operator.step, operator.size + operator.grace
    pairs = []
    for position, (slot, upto) in enumerate(zip(slots, uptos)):
        pane, key = int(operator.table.panes[slot]), int(operator.table.key_ids[slot])
        lower = max(operator.closed_upto, closed_keys.get(key, NO_TIME))
        start = pane - pane % step
        while start + size > pane:  # every epoch-aligned window [start, start + size) holding the pane
            if lower < start + reach <= upto:
                pairs.append((position, start))
            start -= step
    return sorted(pairs)


def _closing(operator: PaneWindowOperator, slots: list[int], uptos: list[int]) -> list[tuple[int, int]]:
    """The (position in ``slots``, window start) pairs the operator finds, each slot's in start order."""
    pair_slots, starts = operator._closing_windows_of(
        np.asarray(slots, dtype=np.int64), np.asarray(uptos, dtype=np.int64)
    )
    position = {slot: i for i, slot in enumerate(slots)}
    pairs = [(position[slot], start) for slot, start in zip(pair_slots.tolist(), starts.tolist())]
    assert [p for p, _ in pairs] == sorted(p for p, _ in pairs), "pairs come in the order of their slots"
    assert pairs == sorted(pairs), "a slot's windows come in start order"
    return sorted(pairs)


@settings(max_examples=300, deadline=None)
@given(
    _DEFINITIONS,
    st.lists(st.tuples(_KEY_IDS, st.integers(-40, 40)), min_size=1, max_size=30),  # (key, pane number)
    st.data(),
)
def test_closing_windows_are_those_closing_after_the_keys_last_close_and_by_upto(definition, panes, data) -> None:
    operator = PaneWindowOperator(WindowSpec("w", definition, (parse_aggregate("n", "count"),)), 0)
    table = operator.table
    table._grow(len(panes))
    table.key_ids[: len(panes)] = [key for key, _ in panes]
    table.panes[: len(panes)] = [number * table.pane_size for _, number in panes]
    operator.closed_upto = data.draw(_TIMES)
    closed_keys = data.draw(st.dictionaries(_KEY_IDS, st.integers(-300, 300), max_size=3))
    for key, upto in closed_keys.items():  # one close of some keys after another, as a segment's rounds
        operator.record_closed(np.asarray([key], dtype=np.int64), np.asarray([upto], dtype=np.int64))
    slots = data.draw(st.permutations(range(len(panes))))
    uptos = data.draw(st.lists(_TIMES, min_size=len(slots), max_size=len(slots)))

    assert _closing(operator, slots, uptos) == _expected(operator, closed_keys, slots, uptos)
    # the segment's end forgets what its rounds closed: only ``closed_upto`` bounds the next close
    operator._segment_closed()
    assert _closing(operator, slots, uptos) == _expected(operator, {}, slots, uptos)
