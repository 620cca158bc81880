"""A pane table's add against a dict of counts: every event lands in its (key, pane) slot, missing panes
are created once, and the distinct slots come back in the order events first touch them."""

from __future__ import annotations

import numpy as np
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
