"""The engine against the declarative reference model, on random inputs and batchings."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.windows.engine_runner import flatten, run_engine
from tests.windows.reference_model import Event, reference_finals, reference_late
from windows.aggregates import AggregateKind, parse_aggregate
from windows.definitions import EmitMode, HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec
from windows.sketch import RELATIVE_ACCURACY

BASE = 1_000_000

AGGREGATES = (
    parse_aggregate("n", "count"),
    parse_aggregate("total", "sum(v)"),
    parse_aggregate("low", "min(v)"),
    parse_aggregate("high", "max(v)"),
    parse_aggregate("avg", "mean(v)"),
    parse_aggregate("head", "first(v)"),
    parse_aggregate("tail", "last(v)"),
    parse_aggregate("kinds", "distinct(v)"),
    parse_aggregate("median", "p50(v)"),
    parse_aggregate("p90", "p90(v)"),
    parse_aggregate("rate", "decay(v, 20ms)"),
)


@st.composite
def window_specs(draw: st.DrawFn) -> list[WindowSpec]:
    specs = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["tumbling", "hopping", "sliding"]))
        size = draw(st.integers(1, 40))
        grace = draw(st.integers(0, 15))
        if kind == "tumbling":
            definition: object = TumblingWindows(size, grace)
        elif kind == "hopping":
            definition = HoppingWindows(size, draw(st.integers(1, size)), grace)
        else:
            definition = SlidingWindows(size, grace)
        emit = draw(st.sampled_from([EmitMode.FINAL, EmitMode.UPDATE]))
        specs.append(WindowSpec(f"w{i}", definition, AGGREGATES, emit, draw(st.integers(0, 30))))  # type: ignore[arg-type]
    return specs


@st.composite
def event_logs(draw: st.DrawFn, keys: int = 4) -> list[Event]:
    n = draw(st.integers(0, 60))
    events = []
    clock = BASE
    for seq in range(n):
        clock += draw(st.integers(0, 8))
        jitter = draw(st.integers(-40, 0)) if draw(st.booleans()) else 0
        value = draw(st.one_of(st.none(), st.integers(-5, 20).map(float), st.sampled_from([0.25, 2.5, 7.75])))
        values = {} if value is None else {"v": value}
        events.append(Event(ts=clock + jitter, key=draw(st.integers(0, keys - 1)), values=values, seq=seq))
    return events


def assert_same(engine_rows: list[tuple[object, ...]], reference: list) -> None:  # type: ignore[type-arg]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in engine_rows] == [
        (r.window, r.key, r.start, r.end, r.close) for r in reference
    ]
    for row, ref in zip(engine_rows, reference):
        got: dict = row[5]  # type: ignore[assignment]
        for aggregate in AGGREGATES:
            expected, actual = ref.values[aggregate.name], got[aggregate.name]
            if expected is None:
                assert actual is None, (aggregate.name, row, ref)
            elif aggregate.kind is AggregateKind.PERCENTILE:
                assert actual is not None
                assert abs(actual - expected) <= RELATIVE_ACCURACY * abs(expected) + 1e-9, (aggregate.name, row, ref)
            else:
                # decay sums each term exactly after quantising it to 2**-32 (times ln2 / half-life)
                tolerance = 1e-6 if aggregate.kind is AggregateKind.DECAY else 1e-9
                assert actual is not None and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=tolerance), (
                    aggregate.name,
                    row,
                    ref,
                )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(), batches=st.lists(st.integers(1, 25), min_size=1, max_size=4))
def test_final_results_match_the_reference_model(specs, events, batches) -> None:  # type: ignore[no-untyped-def]
    chunks, late = run_engine(specs, events, batches)
    assert_same(flatten(chunks), reference_finals(specs, events))
    assert late == reference_late(specs, events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(keys=40), batches=st.lists(st.integers(1, 25), min_size=1, max_size=4))
def test_final_results_match_the_reference_model_over_many_keys(specs, events, batches) -> None:  # type: ignore[no-untyped-def]
    """Many keys with few events each: late events close their few keys' windows among many panes in memory
    (found by looking up their panes, not by going through every pane)."""
    chunks, late = run_engine(specs, events, batches)
    assert_same(flatten(chunks), reference_finals(specs, events))
    assert late == reference_late(specs, events)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(), batches=st.lists(st.integers(1, 25), min_size=1, max_size=4))
def test_without_closing_at_the_end_only_closed_windows_are_emitted(specs, events, batches) -> None:  # type: ignore[no-untyped-def]
    chunks, _ = run_engine(specs, events, batches, close_all=False)
    assert_same(flatten(chunks), reference_finals(specs, events, close_all=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(), batches=st.lists(st.integers(1, 25), min_size=1, max_size=4))
def test_every_emission_including_updates_is_independent_of_batching(specs, events, batches) -> None:  # type: ignore[no-untyped-def]
    whole, _ = run_engine(specs, events)
    split, _ = run_engine(specs, events, batches)
    assert flatten(split, final=None) == flatten(whole, final=None)
