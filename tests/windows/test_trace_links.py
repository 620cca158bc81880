"""Traces through windows: each result carries the traces of the newest events that made it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.windows.engine_runner import run_traced as run
from tests.windows.reference_model import Event, _windows_pane, _windows_sliding, stream_time_before
from tests.windows.test_engine_vs_reference import event_logs, window_specs
from windows.aggregation import LINKS
from windows.definitions import SlidingWindows, WindowSpec


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
        entries = chunk.values[LINKS]
        for i in range(len(chunk)):
            ident = (chunk.window, int(chunk.key_ids[i]), int(chunk.starts[i]), int(chunk.ends[i]))
            row = [entry for entry in entries[i].tolist() if entry[1] != np.iinfo(np.int64).min]
            assert [entry[1] for entry in row] == expected[ident], ident
            assert all(entry[2:] == [seq * 10, seq * 7919 + 3, -seq - 11] for entry in row for seq in [entry[1]])
            seen += 1
    assert seen == len(expected)


def test_windows_without_trace_links_carry_none() -> None:
    from windows.aggregates import parse_aggregate
    from windows.definitions import TumblingWindows

    spec = WindowSpec("w", TumblingWindows(10, 0), (parse_aggregate("n", "count"),))
    chunks = run([spec], [Event(ts=5, key=1, values={}, seq=1)], [10])
    assert chunks and all(LINKS not in chunk.values for chunk in chunks)
