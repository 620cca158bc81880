"""A pane table's add against a dict of counts: every event lands in its (key, pane) slot, missing panes
are created once, and the distinct slots come back in the order events first touch them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.aggregates import parse_aggregate
from windows.aggregation import Aggregation
from windows.events import EventBatch
from windows.pane_table import PaneTable

_EVENTS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), max_size=40)  # (key id, pane start)


@settings(max_examples=200, deadline=None)
@given(st.lists(_EVENTS, min_size=1, max_size=6), st.sets(st.integers(0, 5)))
def test_adds_count_each_pane_and_report_slots_in_order_of_first_touch(batches, released_keys) -> None:
    table = PaneTable(Aggregation((parse_aggregate("n", "count"),)), pane_size=1)
    (count,) = table.aggregation.columns.values()
    counts: dict[tuple[int, int], int] = {}
    for number, events in enumerate(batches, start=1):
        keys = np.asarray([k for k, _ in events], dtype=np.int64)
        panes = np.asarray([p for _, p in events], dtype=np.int64)
        batch = EventBatch(ts=panes, key_ids=keys, seq=np.arange(len(events), dtype=np.int64))
        touched, inverse = table.add(batch, panes)
        for pair in events:
            counts[pair] = counts.get(pair, 0) + 1
        slot_of = {pair: int(touched[i]) for pair, i in zip(events, inverse.tolist())}
        assert len(set(slot_of.values())) == len(slot_of) == len(touched)  # one slot per distinct pane
        assert [slot_of[pair] for pair in dict.fromkeys(events)] == touched.tolist()
        assert (table.touched[touched] == table._adds).all()
        live = table.live_slots()
        held = dict(zip(zip(table.key_ids[live].tolist(), table.panes[live].tolist()), live.tolist()))
        assert {pair: int(count.n[slot]) for pair, slot in held.items()} == counts  # type: ignore[attr-defined]
        if number == 2:  # free some slots: later panes reuse them
            gone = [slot for pair, slot in held.items() if pair[0] in released_keys]
            table.release(gone)
            counts = {pair: n for pair, n in counts.items() if pair[0] not in released_keys}


def test_an_add_that_runs_out_of_slots_midway_grows_the_table_and_goes_on() -> None:
    # the first add makes 1,000 panes in a table of 1,024 slots; the second, old panes and 2,500 new ones
    # among them, runs out after 24 new ones, grows, and goes on from there
    table = PaneTable(Aggregation((parse_aggregate("n", "count"),)), pane_size=1)
    (count,) = table.aggregation.columns.values()
    rng = np.random.default_rng(3)
    first = [(k, 0) for k in range(1_000)]
    second = [(int(k), 0) for k in rng.integers(0, 1_000, 500)] + [(k, 1) for k in range(2_500)]
    second = [second[i] for i in rng.permutation(len(second)).tolist()]
    counts: dict[tuple[int, int], int] = {}
    for events in (first, second):
        keys = np.asarray([k for k, _ in events], dtype=np.int64)
        panes = np.asarray([p for _, p in events], dtype=np.int64)
        capacity = table.capacity
        touched, inverse = table.add(EventBatch(ts=panes, key_ids=keys, seq=np.arange(len(events))), panes)
        for pair in events:
            counts[pair] = counts.get(pair, 0) + 1
        assert [int(touched[i]) for i in inverse.tolist()] == table.index.lookup(keys, panes).tolist()
        assert len(set(touched.tolist())) == len(touched) == len(dict.fromkeys(events))
        assert sorted(table.last_created.tolist()) == sorted(set(table.last_created.tolist()))
    assert capacity == 1_024 and table.capacity >= 3_500  # the second add grew the table on its way
    live = table.live_slots()
    held = dict(zip(zip(table.key_ids[live].tolist(), table.panes[live].tolist()), live.tolist()))
    assert {pair: int(count.n[slot]) for pair, slot in held.items()} == counts  # type: ignore[attr-defined]
    assert table.last_created.shape[0] == 2_500 and set(table.panes[table.last_created].tolist()) == {1}
    assert table.changed[live].all() and (table.touched[live[table.panes[live] == 1]] == table._adds).all()


def test_an_add_stopped_by_a_failed_growth_leaves_the_table_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    table = PaneTable(Aggregation((parse_aggregate("n", "count"),)), pane_size=1)
    first = np.arange(1_000, dtype=np.int64)
    table.add(EventBatch(ts=first * 0, key_ids=first, seq=first), first * 0)
    table.release(np.arange(0, 1_000, 2, dtype=np.int64))  # 500 slots back on the free stack

    def no_memory(needed: int) -> None:
        raise MemoryError("no memory for the test")

    monkeypatch.setattr(table, "_grow", no_memory)
    more = np.arange(2_000, dtype=np.int64)
    with pytest.raises(MemoryError):
        table.add(EventBatch(ts=more * 0 + 1, key_ids=more, seq=more), more * 0 + 1)
    # the panes the index took before the failure (the free slots, then the 24 above the high water
    # mark) are the table's: alive, named in their slots, none of their slots still free
    live = table.live_slots()
    assert table.index.lookup(table.key_ids[live], table.panes[live]).tolist() == live.tolist()
    assert len(table.index) == live.shape[0] == 500 + 524
    assert table.last_created.shape[0] == 524 and table._high_water == 1_024
    free, free_count = table._free.stack()
    assert free_count == 0 and not set(free[:free_count].tolist()) & set(live.tolist())


def test_slots_given_up_are_taken_again_lowest_first_the_last_release_first() -> None:
    table = PaneTable(Aggregation((parse_aggregate("n", "count"),)), pane_size=1)
    keys = np.arange(20, dtype=np.int64)
    table.add(EventBatch(ts=keys * 0, key_ids=keys, seq=keys), keys * 0)  # slots 0-19
    table.release(np.asarray([3, 17, 1], dtype=np.int64))
    table.release(np.asarray([12, 5, 9], dtype=np.int64))
    new = np.arange(100, 106, dtype=np.int64)
    table.add(EventBatch(ts=new * 0 + 1, key_ids=new, seq=new), new * 0 + 1)
    # the last release's slots first, each release's in ascending order (new panes fill neighbouring slots)
    assert table.last_created.tolist() == [5, 9, 12, 1, 3, 17]
    assert table.index.lookup(new, new * 0 + 1).tolist() == [5, 9, 12, 1, 3, 17]
