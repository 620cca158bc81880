"""Traces through windows: each result carries the traces of the newest events that made it; the C loops that
keep them (``trace_links.pyx``) agree with sorting every entry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.windows.engine_runner import run_traced as run
from tests.windows.reference_model import Event, _windows_pane, _windows_sliding, stream_time_before
from tests.windows.test_engine_vs_reference import event_logs, window_specs
from windows import trace_links
from windows.definitions import SlidingWindows, WindowSpec
from windows.pane_state import NO_SEQ


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=window_specs(),
    events=event_logs(),
    links=st.integers(1, 4),
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=3),
)
def test_final_results_carry_the_traces_of_their_newest_events(specs, events, links, sizes) -> None:  # type: ignore[no-untyped-def]
    specs = [replace(spec, trace_links=links) for spec in specs]
    arrived = stream_time_before(events)
    expected: dict[tuple[str, int, int, int], list[int]] = {}
    for spec in specs:
        if isinstance(spec.definition, SlidingWindows):
            windows = _windows_sliding(spec, events, arrived)
            members = {(spec.name, k, s, e): m for (k, s, e), m in windows.items()}
        else:
            size = spec.definition.size  # type: ignore[attr-defined]
            members = {(spec.name, k, s, s + size): m for (k, s), m in _windows_pane(spec, events, arrived).items()}
        for ident, window_events in members.items():
            newest = sorted(window_events, key=lambda e: (e.ts, e.seq), reverse=True)[:links]
            expected[ident] = [e.seq for e in newest]
    seen = 0
    for chunk in run(specs, events, sizes):
        if not chunk.final:
            continue
        entries = chunk.trace_entries()
        assert entries is not None
        for i in range(len(chunk)):
            ident = (chunk.window, int(chunk.key_ids[i]), int(chunk.starts[i]), int(chunk.ends[i]))
            row = [entry for entry in entries[i].tolist() if entry[1] != np.iinfo(np.int64).min]
            assert [entry[1] for entry in row] == expected[ident], ident
            assert all(entry[2:] == [seq * 10, seq * 7919 + 3, -seq - 11] for entry in row for seq in [entry[1]])
            seen += 1
    assert seen == len(expected)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(), sizes=st.lists(st.integers(1, 25), min_size=1, max_size=3))
def test_windows_picked_for_their_traces_carry_the_same_entries_and_the_others_none(specs, events, sizes) -> None:  # type: ignore[no-untyped-def]
    specs = [replace(spec, trace_links=3) for spec in specs]
    untraced = specs[0].name  # no window of it is picked: as a window no rule reads

    def picked(window: str, values: dict[str, np.ndarray], n: int) -> np.ndarray | None:
        # every other window of a chunk, whatever the chunk: picking may take any subset
        return None if window == untraced else np.arange(n) % 2 == (n % 2)

    every = run(specs, events, sizes)
    some = run(specs, events, sizes, picked)
    assert len(some) == len(every)
    traced = 0
    for full, part in zip(every, some):
        assert (part.window, part.final, part.key_ids.tolist()) == (full.window, full.final, full.key_ids.tolist())
        assert part.trace_rows is not None and part.traces is not None
        entries, expected = part.trace_entries(), full.trace_entries()
        assert entries is not None and expected is not None
        kept = part.trace_rows >= 0
        assert entries[kept].tolist() == expected[kept].tolist()  # a picked window: the entries of every window
        assert len(set(part.trace_rows[kept].tolist())) == int(kept.sum())  # each its own entries
        assert not (part.window == untraced and kept.any())
        traced += int(kept.sum())
    assert traced or not any(len(c) > 1 for c in every if c.window != untraced)


def test_windows_without_trace_links_carry_none() -> None:
    from windows.aggregates import parse_aggregate
    from windows.definitions import TumblingWindows

    spec = WindowSpec("w", TumblingWindows(10, 0), (parse_aggregate("n", "count"),))
    chunks = run([spec], [Event(ts=5, key=1, values={}, seq=1)], [10])
    assert chunks and all(chunk.trace_rows is None and chunk.traces is None for chunk in chunks)


# ---- the C loops ------------------------------------------------------------------------

FIELDS = 5


def newest_entries(entries: list[list[int]], links: int) -> list[list[int]]:
    """Latest time first, ties to the higher seq, equal entries in the order met; padded with empties."""
    ordered = sorted(entries, key=lambda e: (-e[0], -e[1]))[:links]
    return ordered + [[NO_SEQ] * FIELDS] * (links - len(ordered))


def entry(ts: int, seq: int) -> list[int]:
    return [ts, seq, 1000 + seq, seq * 3, -seq]


@st.composite
def rows_and_events(draw: st.DrawFn) -> tuple[int, list[list[list[int]]], list[tuple[int, int, int]]]:
    links = draw(st.integers(1, 4))
    slots = draw(st.integers(1, 5))
    seq = iter(range(1, 1000))
    rows = []
    for _ in range(slots):
        count = draw(st.integers(0, links))
        rows.append(newest_entries([entry(draw(st.integers(0, 5)), next(seq)) for _ in range(count)], links))
    events = [
        (draw(st.integers(0, slots - 1)), draw(st.integers(0, 5)), next(seq)) for _ in range(draw(st.integers(0, 12)))
    ]
    return links, rows, events


def present(row: list[list[int]]) -> list[list[int]]:
    return [e for e in row if e[1] != NO_SEQ]


@settings(max_examples=300, deadline=None)
@given(rows_and_events())
def test_adding_events_keeps_each_slots_newest_entries(case: tuple[int, list, list]) -> None:  # type: ignore[type-arg]
    links, rows, events = case
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), links, FIELDS)
    cols = np.asarray([(slot, *entry(ts, seq)) for slot, ts, seq in events], dtype=np.int64).reshape(-1, 6)
    trace_links.add_events(array, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], cols[:, 4], cols[:, 5])
    for slot, row in enumerate(rows):
        added = [entry(ts, seq) for s, ts, seq in events if s == slot]
        assert array[slot].tolist() == newest_entries(present(row) + added, links)


@settings(max_examples=300, deadline=None)
@given(rows_and_events(), st.data())
def test_merging_pairs_keeps_each_groups_newest_entries(case: tuple[int, list, list], data: st.DataObject) -> None:  # type: ignore[type-arg]
    links, rows, _ = case
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), links, FIELDS)
    n_groups = data.draw(st.integers(1, 3))
    pairs = sorted(data.draw(st.lists(st.tuples(st.integers(0, n_groups - 1), st.integers(0, len(rows) - 1)))))
    groups = np.asarray([g for g, _ in pairs], dtype=np.int64)
    slots = np.asarray([s for _, s in pairs], dtype=np.int64)
    merged = trace_links.merge_pairs(array, groups, slots, n_groups)
    for g in range(n_groups):
        assert merged[g].tolist() == newest_entries([e for gg, s in pairs if gg == g for e in present(rows[s])], links)


@settings(max_examples=300, deadline=None)
@given(rows_and_events(), st.data())
def test_merging_rows_into_merged_ones_keeps_each_groups_newest_entries(
    case: tuple[int, list, list], data: st.DataObject
) -> None:  # type: ignore[type-arg]
    links, rows, _ = case
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), links, FIELDS)
    n_groups = data.draw(st.integers(1, 3))
    first = data.draw(st.lists(st.tuples(st.integers(0, n_groups - 1), st.integers(0, len(rows) - 1))))
    then = data.draw(st.lists(st.tuples(st.integers(0, n_groups - 1), st.integers(0, len(rows) - 1))))
    merged = trace_links.merge_pairs(
        array,
        np.asarray([g for g, _ in first], dtype=np.int64),
        np.asarray([s for _, s in first], dtype=np.int64),
        n_groups,
    )
    trace_links.merge_into(
        merged,
        array,
        np.asarray([g for g, _ in then], dtype=np.int64),
        np.asarray([s for _, s in then], dtype=np.int64),
    )
    for g in range(n_groups):
        held = [e for gg, s in first + then if gg == g for e in present(rows[s])]
        assert merged[g].tolist() == newest_entries(held, links)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(0, 4), min_size=1, max_size=8), st.data())
def test_merging_ranges_of_time_ordered_panes_keeps_each_windows_newest_entries(
    links: int, counts: list[int], data: st.DataObject
) -> None:
    # panes in time order, each holding entries of its own time
    seq = iter(range(1, 1000))
    rows = [newest_entries([entry(p, next(seq)) for _ in range(min(c, links))], links) for p, c in enumerate(counts)]
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), links, FIELDS)
    order = np.asarray(data.draw(st.permutations(range(len(rows)))), dtype=np.int64)  # slot of each pane
    slotted = np.empty_like(array)
    slotted[order] = array
    bounds = data.draw(st.lists(st.tuples(st.integers(0, len(rows)), st.integers(0, len(rows))), min_size=1))
    lo = np.asarray([min(a, b) for a, b in bounds], dtype=np.int64)
    hi = np.asarray([max(a, b) for a, b in bounds], dtype=np.int64)
    merged = trace_links.merge_ranges(slotted, order, lo, hi)
    for g in range(len(bounds)):
        assert merged[g].tolist() == newest_entries([e for p in range(lo[g], hi[g]) for e in present(rows[p])], links)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(0, 3), min_size=1, max_size=8), st.data())
def test_merging_held_late_points_from_their_ranges_keeps_each_picked_windows_newest_entries(
    links: int, times: list[int], data: st.DataObject
) -> None:
    # late point j: one event at time times[j] (sorted), in slot j, arrived at some stream time; each window
    # holds the late points of a range that arrived before its bound, on top of entries it already has
    times = sorted(times)
    seq = iter(range(1, 1000))
    n = data.draw(st.integers(1, 4))
    # what the windows hold already, made first: a late point of equal time is newer (a higher seq)
    before = [newest_entries([entry(data.draw(st.integers(0, 3)), next(seq))], links) for _ in range(n)]
    rows = [newest_entries([entry(t, next(seq))], links) for t in times]
    array = np.asarray(rows, dtype=np.int64).reshape(len(rows), links, FIELDS)
    arrivals = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=len(times), max_size=len(times))))
    bounds_ = [data.draw(st.tuples(st.integers(0, len(times)), st.integers(0, len(times)))) for _ in range(n)]
    lo = np.asarray([min(a, b) for a, b in bounds_], dtype=np.int64)
    hi = np.asarray([max(a, b) for a, b in bounds_], dtype=np.int64)
    bounds = np.asarray(data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=np.int64)
    number = np.full(n, -1, dtype=np.int64)
    picked = sorted(data.draw(st.sets(st.integers(0, n - 1))))
    number[picked] = np.arange(len(picked))
    slots, times_ = np.arange(len(times), dtype=np.int64), np.asarray(times, dtype=np.int64)
    held = np.asarray([before[g] for g in picked], dtype=np.int64).reshape(len(picked), links, FIELDS)
    trace_links.merge_held_late(held, array, lo, hi, bounds, times_, arrivals, slots, number)
    for row, g in enumerate(picked):  # each picked window: the newest of what it holds
        entries = present(before[g]) + [
            e for j in range(lo[g], hi[g]) if arrivals[j] < bounds[g] for e in present(rows[j])
        ]
        assert held[row].tolist() == newest_entries(entries, links)


def test_late_points_out_of_time_order_are_an_error() -> None:
    rows = np.full((2, 1, FIELDS), NO_SEQ, dtype=np.int64)
    out = np.full((1, 1, FIELDS), NO_SEQ, dtype=np.int64)
    one, two = np.asarray([0]), np.asarray([2])
    with pytest.raises(ValueError, match="the late points of window 0 are not in time order"):
        trace_links.merge_held_late(
            out, rows, one, two, two * 9, np.asarray([5, 4]), np.zeros(2, np.int64), np.asarray([0, 1])
        )


def test_a_slot_outside_the_rows_is_an_error_not_a_crash() -> None:
    rows = np.full((2, 1, FIELDS), NO_SEQ, dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    with pytest.raises(IndexError, match="slot 2 is outside the 2 trace rows"):
        trace_links.add_events(rows, one * 2, one, one, one, one, one)
