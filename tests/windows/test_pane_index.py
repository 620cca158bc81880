"""The C pane index against a dict, through inserts, removals (tombstones) and growth; the distinct
missing panes and distinct slots of a batch against plain Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.pane_index import PaneIndex, first_seen

_I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# small ranges make repeats and probe collisions likely; wide ones reach the hash's full input
_PAIRS = st.lists(st.tuples(st.integers(0, 6), st.integers(-3, 3)) | st.tuples(_I64, _I64), max_size=60)


def _columns(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray([k for k, _ in pairs], dtype=np.int64), np.asarray([p for _, p in pairs], dtype=np.int64)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), _PAIRS), max_size=25), probe=_PAIRS)
def test_matches_a_dict_through_inserts_and_removals(steps: list[tuple[bool, list[tuple[int, int]]]], probe) -> None:
    index, model = PaneIndex(), {}
    next_slot = 0
    for adding, pairs in steps:
        if adding:
            new = list(dict.fromkeys(p for p in pairs if p not in model))
            slots = np.arange(next_slot, next_slot + len(new), dtype=np.int64)
            next_slot += len(new)
            index.insert(*_columns(new), slots)
            model.update(zip(new, slots.tolist()))
        else:
            gone = list(dict.fromkeys(p for p in pairs if p in model))
            index.remove(*_columns(gone))
            for pair in gone:
                del model[pair]
        assert len(index) == len(model)
    asked = probe + list(model)  # every live pane found with its slot, and as many as the model: no others
    expected = [model.get(pair, -1) for pair in asked]
    assert index.lookup(*_columns(asked)).tolist() == expected


def test_churn_far_beyond_the_initial_size_keeps_every_live_pane() -> None:
    index = PaneIndex()
    rng = np.random.default_rng(5)
    live: dict[tuple[int, int], int] = {}
    for round_ in range(40):
        keys = rng.integers(0, 50, 500)
        panes = np.full(500, round_, dtype=np.int64) * 1000 + np.arange(500)
        slots = np.arange(500, dtype=np.int64) + 500 * round_
        index.insert(keys, panes, slots)
        live.update(zip(zip(keys.tolist(), panes.tolist()), slots.tolist()))
        if round_ >= 2:  # release the panes of two rounds ago: tombstones pile up and force rebuilds
            old = [pair for pair in live if pair[1] // 1000 == round_ - 2]
            index.remove(*_columns(old))
            for pair in old:
                del live[pair]
    assert len(index) == len(live) == 1000
    asked = [*live, (1, 5), (7, 39_000 + 600)]
    assert index.lookup(*_columns(asked)).tolist() == [*live.values(), -1, -1]


def test_inserting_a_present_pane_is_refused_with_the_pane_named() -> None:
    index = PaneIndex()
    index.insert(np.array([3], dtype=np.int64), np.array([60_000], dtype=np.int64), np.array([0], dtype=np.int64))
    with pytest.raises(ValueError, match=r"pane \(3, 60000\) is in the index already"):
        index.insert(np.array([3], dtype=np.int64), np.array([60_000], dtype=np.int64), np.array([1], dtype=np.int64))
    assert index.lookup(np.array([3], dtype=np.int64), np.array([60_000], dtype=np.int64)).tolist() == [0]


def test_removing_an_absent_pane_is_refused_with_the_pane_named() -> None:
    index = PaneIndex()
    with pytest.raises(KeyError, match=r"pane \(4, -7\) is not in the index"):
        index.remove(np.array([4], dtype=np.int64), np.array([-7], dtype=np.int64))


def test_negative_slots_and_ragged_columns_are_refused() -> None:
    index = PaneIndex()
    one = np.array([1], dtype=np.int64)
    with pytest.raises(ValueError, match="slots are not negative"):
        index.insert(one, one, np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError, match="columns of equal length, got 1 and 2"):
        index.lookup(one, np.array([1, 2], dtype=np.int64))
    assert len(index) == 0


class _Columns:
    """A pane table's per-slot arrays, as ``PaneTable`` hands them to ``create`` and ``release``."""

    def __init__(self, capacity: int) -> None:
        self.key_ids = np.full(capacity, -5, dtype=np.int64)
        self.panes = np.full(capacity, -5, dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=np.uint8)
        self.stored = np.ones(capacity, dtype=np.uint8)
        self.changed = np.ones(capacity, dtype=np.uint8)
        self.touched = np.zeros(capacity, dtype=np.int64)

    def create(self, index: PaneIndex, pairs: list[tuple[int, int]], slots: list[int], stamp: int) -> None:
        index.create(
            *_columns(pairs),
            np.asarray(slots, dtype=np.int64),
            self.key_ids,
            self.panes,
            self.alive,
            self.stored,
            self.touched,
            stamp,
        )

    def release(self, index: PaneIndex, slots: list[int]) -> tuple[list[int], list[int]]:
        keys, panes = index.release(
            np.asarray(slots, dtype=np.int64), self.key_ids, self.panes, self.alive, self.changed, self.stored
        )
        return keys.tolist(), panes.tolist()


@settings(max_examples=200, deadline=None)
@given(rounds=st.lists(st.tuples(_PAIRS, st.sets(st.integers(0, 59)), st.sets(st.integers(0, 59))), max_size=12))
def test_create_and_release_keep_the_index_and_the_per_slot_columns_in_step(rounds) -> None:
    capacity = 60 * (len(rounds) + 1)
    index, columns = PaneIndex(), _Columns(capacity)
    live: dict[tuple[int, int], int] = {}
    free = list(range(capacity))
    for stamp, (pairs, stored, gone) in enumerate(rounds, start=1):
        new = list(dict.fromkeys(pair for pair in pairs if pair not in live))
        slots = [free.pop() for _ in new]
        columns.stored[slots] = 1  # whatever the slot held before, a created pane is not stored
        columns.create(index, new, slots, stamp)
        live.update(zip(new, slots))
        for pair, slot in zip(new, slots):
            assert (columns.key_ids[slot], columns.panes[slot]) == pair
            assert (columns.alive[slot], columns.stored[slot], columns.touched[slot]) == (1, 0, stamp)
        # some live panes reach the store; then some are released: those the store holds come back, in order
        ordered = list(live.items())
        for at in stored:
            if at < len(ordered):
                columns.stored[ordered[at][1]] = 1
        released = [ordered[at] for at in sorted(gone) if at < len(ordered)]
        keys, panes = columns.release(index, [slot for _, slot in released])
        held = [pair for pair, slot in released if columns.stored[slot]]
        assert list(zip(keys, panes)) == held
        for pair, slot in released:
            assert (columns.alive[slot], columns.changed[slot]) == (0, 0)
            del live[pair]
            free.append(slot)
        assert len(index) == len(live)
        assert index.lookup(*_columns([*live, *(pair for pair, _ in released)])).tolist() == [
            *live.values(),
            *([-1] * len(released)),
        ]


@settings(max_examples=200, deadline=None)
@given(
    present=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), unique=True, max_size=8),
    gone=st.sets(st.integers(0, 7)),
    free=st.lists(st.integers(0, 9), unique=True, max_size=4),
    asked=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=25),
    room=st.integers(0, 6),
)
def test_add_panes_finds_or_creates_each_pane_and_lists_the_distinct_slots(present, gone, free, asked, room) -> None:
    # a table of ``capacity`` slots: the present panes in slots 10.., some released (tombstones), ``free`` on
    # the free stack (slots 0-9, never in use), and room for ``room`` more above the high water mark
    high_water = 10 + len(present)
    capacity = high_water + room
    index, columns = PaneIndex(), _Columns(capacity)
    columns.position = np.zeros(capacity, dtype=np.int64)
    columns.changed[:] = 0
    slots = list(range(10, high_water))
    columns.create(index, present, slots, 1)
    released = [slots[at] for at in sorted(gone) if at < len(slots)]
    columns.release(index, released)
    live = {pair: slot for pair, slot in zip(present, slots) if slot not in released}
    stack = np.asarray(free, dtype=np.int64)
    out, counts = (
        np.full((4, len(asked)), -9, dtype=np.int64),
        np.asarray([0, 0, len(free), high_water], dtype=np.int64),
    )
    keys, panes = _columns(asked)
    stop = index.add_panes(
        keys,
        panes,
        0,
        out,
        counts,
        stack,
        columns.key_ids,
        columns.panes,
        columns.alive,
        columns.stored,
        columns.changed,
        columns.touched,
        columns.position,
        7,
    )
    # by the definition: missing panes take the free slots from the top, then the high water mark, until
    # none is left; the pass stops at the first pane that needs a slot then
    expected_slots, created, distinct, spare, mark = [], [], [], list(free), high_water
    for pair in asked:
        if pair not in live:
            if spare:
                live[pair] = spare.pop()
            elif mark < capacity:
                live[pair] = mark
                mark += 1
            else:
                break
            created.append(live[pair])
        expected_slots.append(live[pair])
        if live[pair] not in distinct:
            distinct.append(live[pair])
    assert stop == len(expected_slots)
    assert out[0, :stop].tolist() == expected_slots
    assert out[1, :stop].tolist() == [distinct.index(slot) for slot in expected_slots]
    assert out[2, : counts[1]].tolist() == distinct and out[3, : counts[0]].tolist() == created
    assert counts[2:].tolist() == [len(spare), mark]
    for slot in distinct:
        assert (columns.touched[slot], columns.changed[slot]) == (7, 1)
    for slot in created:
        assert (columns.alive[slot], columns.stored[slot]) == (1, 0)
        assert (int(columns.key_ids[slot]), int(columns.panes[slot])) in asked
    assert len(index) == len(live)
    assert index.lookup(*_columns(list(live))).tolist() == list(live.values())


def test_create_and_release_refuse_what_does_not_fit_the_table() -> None:
    index, columns = PaneIndex(), _Columns(4)
    with pytest.raises(IndexError, match=r"pane \(1, 2\) cannot take slot 4: the table has 4"):
        columns.create(index, [(1, 2)], [4], 1)
    columns.create(index, [(1, 2)], [0], 1)
    with pytest.raises(ValueError, match=r"pane \(1, 2\) is in the index already"):
        columns.create(index, [(1, 2)], [1], 1)
    with pytest.raises(IndexError, match="slot -1 is not among the 4 slots"):
        columns.release(index, [-1])
    assert columns.release(index, [0]) == ([], [])
    with pytest.raises(KeyError, match=r"pane \(1, 2\) is not in the index"):
        columns.release(index, [0])
    columns.touched = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="per-slot arrays differ in length: 4, 4, 4, 4, 3"):
        columns.create(index, [(5, 6)], [1], 2)
    assert len(index) == 0


@settings(max_examples=300, deadline=None)
@given(present=_PAIRS, removed=st.sets(st.integers(0, 59)), asked=_PAIRS)
def test_missing_panes_are_told_apart_once_each_in_order_of_first_occurrence(present, removed, asked) -> None:
    index, model = PaneIndex(), dict.fromkeys(present)
    index.insert(*_columns(list(model)), np.arange(len(model), dtype=np.int64))
    slot_of = {pair: slot for slot, pair in enumerate(model)}
    gone = [pair for pair, slot in slot_of.items() if slot in removed]  # their entries become tombstones
    index.remove(*_columns(gone))
    for pair in gone:
        del slot_of[pair]
    asked = asked + gone
    slots, firsts, missing_of = index.lookup_missing(*_columns(asked))
    assert slots.tolist() == [slot_of.get(pair, -1) for pair in asked]
    distinct = list(dict.fromkeys(pair for pair in asked if pair not in slot_of))
    assert [asked[i] for i in firsts.tolist()] == distinct
    assert missing_of.tolist() == [-1 if pair in slot_of else distinct.index(pair) for pair in asked]


@given(st.lists(st.integers(0, 9), max_size=40), st.integers(1, 5))
def test_first_seen_gives_distinct_slots_in_order_and_stamps_their_marks(slots: list[int], stamp: int) -> None:
    mark, position = np.zeros(10, dtype=np.int64), np.full(10, 99, dtype=np.int64)
    unique, inverse = first_seen(np.asarray(slots, dtype=np.int64), mark, position, stamp)
    distinct = list(dict.fromkeys(slots))
    assert unique.tolist() == distinct
    assert inverse.tolist() == [distinct.index(slot) for slot in slots]
    assert mark.tolist() == [stamp if slot in distinct else 0 for slot in range(10)]


def test_first_seen_refuses_a_slot_outside_the_marks() -> None:
    mark = np.zeros(4, dtype=np.int64)
    with pytest.raises(IndexError, match="slot 4 is not among the 4 slots"):
        first_seen(np.array([1, 4], dtype=np.int64), mark, np.zeros(4, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="marks and positions for the same slots, got 4 and 3"):
        first_seen(np.array([1], dtype=np.int64), mark, np.zeros(3, dtype=np.int64), 1)
