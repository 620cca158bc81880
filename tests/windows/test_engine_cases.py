"""Hand-computed engine cases and the properties the README promises."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.windows.engine_runner import flatten, run_engine, to_batch
from tests.windows.reference_model import Event
from windows.aggregates import parse_aggregate
from windows.definitions import EmitMode, HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec
from windows.engine import PartitionEngine

COUNT = (parse_aggregate("n", "count"), parse_aggregate("total", "sum(v)"))


def ev(ts: int, key: int = 0, v: float = 1.0, seq: int = 0) -> Event:
    return Event(ts=ts, key=key, values={"v": v}, seq=seq)


def events(times: list[int], key: int = 0) -> list[Event]:
    return [ev(t, key, float(i), i) for i, t in enumerate(times)]


def test_tumbling_window_closes_at_end_plus_grace_and_late_events_are_reported() -> None:
    spec = WindowSpec("t", TumblingWindows(10, 2), COUNT)
    chunks, late = run_engine([spec], events([1, 3, 11, 12, 4]), close_all=False)
    # stream time 12 reaches the close point 10 + 2 of [0, 10): it is emitted, and the
    # event at 4 arriving afterwards is late for it (its only window).
    assert flatten(chunks) == [("t", 0, 0, 10, 12, {"n": 2.0, "total": 1.0})]
    assert late == [4]


def test_sliding_windows_follow_kafka_streams() -> None:
    spec = WindowSpec("s", SlidingWindows(5, 1), (parse_aggregate("n", "count"),))
    # records at 1, 3 in order, 12, then 7 out of order (late for windows ending before 11)
    chunks, late = run_engine([spec], events([1, 3, 12, 7]))
    got = [(s, e, v["n"]) for _, _, s, e, _, v in flatten(chunks)]
    assert got == [
        (-4, 1, 1.0),  # left window of 1
        (-2, 3, 2.0),  # left window of 3
        (2, 7, 1.0),  # right window of 1 holds 3; 7 arrived after it closed
        (7, 12, 2.0),  # left window of 12 gained 7
        (8, 13, 1.0),  # right window of 7: 12
    ]
    assert late == []


def test_late_events_of_one_batch_reach_exactly_the_windows_that_closed_after_they_came() -> None:
    """Two partly-late events of one key in one batch: the first (at 105, arriving at stream time 112)
    belongs to the left window of 112, which closes at 113, before the second arrives (at 115), and not to
    the right window of 100, which closed at 112. Batched, the first sits in a late point beside the point
    of 105 while that window is emitted; its decayed rate must still be that of one pane, as one by one."""
    aggregates = (parse_aggregate("n", "count"), parse_aggregate("rate", "decay(v, 3ms)"))
    spec = WindowSpec("s", SlidingWindows(20, 0), aggregates)
    log = [ev(100, v=0.3, seq=0), ev(105, v=0.424, seq=1), ev(112, v=2.9, seq=2), ev(105, v=8.678, seq=3)]
    log += [ev(115, v=5.3, seq=4), ev(110, v=0.7, seq=5)]
    batched, late = run_engine([spec], log)
    one_by_one, _ = run_engine([spec], log, [1])
    assert late == []
    assert flatten(batched) == flatten(one_by_one)
    counts = {(start, end): values["n"] for _, _, start, end, _, values in flatten(batched)}
    assert counts[(92, 112)] == 4.0  # 100, 105, 112 and the late 105
    assert counts[(101, 121)] == 5.0  # right window of 100, closed at 122: every event but 100
    assert counts[(80, 100)] == 1.0


def test_update_windows_emit_at_each_tick_and_once_when_closed() -> None:
    spec = WindowSpec("t", TumblingWindows(10, 0), COUNT, EmitMode.UPDATE, update_interval=4)
    chunks, _ = run_engine([spec], events([1, 2, 5, 6, 9, 10]), close_all=False)
    rows = [(r[2], r[4], r[5]["n"], chunk.final) for chunk in chunks for r in flatten([chunk], final=None)]
    assert rows == [
        (0, 2, 2.0, False),  # tick at stream time 4 crossed by the event at 5: state up to 2
        (0, 6, 4.0, False),  # tick at 8 crossed by 9
        (0, 10, 5.0, True),  # closed when stream time reached 10
    ]


def test_ticks_whose_keys_do_not_meet_emit_their_updates_together_at_their_own_times() -> None:
    # one event per key and per millisecond, a 1 ms update interval: every event crosses a tick
    spec = WindowSpec("t", TumblingWindows(100, 0), COUNT, EmitMode.UPDATE, update_interval=1)
    changes = [ev(10 + i, key=i, seq=i) for i in range(6)] + [ev(16, key=0, seq=6), ev(17, key=7, seq=7)]
    engine = PartitionEngine([spec])
    table = engine.operators[0].table
    adds = []
    add = table.add
    table.add = lambda batch, panes: adds.append(len(batch)) or add(batch, panes)  # type: ignore[method-assign]
    updates = [
        (r[1], r[4], r[5]["n"])
        for chunk in engine.process(to_batch(changes, ["v"])).results
        for r in flatten([chunk], final=False)
    ]
    # each key's update is stamped with the tick its event crossed into, as one event per batch gives
    assert updates == [(0, 10, 1.0), (1, 11, 1.0), (2, 12, 1.0), (3, 13, 1.0), (4, 14, 1.0), (5, 15, 1.0), (0, 16, 2.0)]
    # key 0 comes back at 16, so the batch is cut there once: two bulk applications, not eight
    assert adds == [6, 2]
    one_by_one, _ = run_engine([spec], changes, [1], close_all=False)
    assert updates == [(r[1], r[4], r[5]["n"]) for r in flatten(one_by_one, final=False)]


def test_an_update_interval_of_zero_emits_after_every_event_without_waiting_for_the_next() -> None:
    spec = WindowSpec("t", TumblingWindows(10, 0), COUNT, EmitMode.UPDATE, update_interval=0)
    engine = PartitionEngine([spec])
    first = engine.process(to_batch([ev(1, key=0, seq=0), ev(1, key=1, seq=1), ev(2, key=0, seq=2)], ["v"]))
    assert [(r[1], r[4], r[5]["n"]) for r in flatten(first.results, final=False)] == [
        (0, 1, 1.0),
        (1, 1, 1.0),
        (0, 2, 2.0),  # the batch's last event has its update in the same batch
    ]
    second = engine.process(to_batch([ev(12, key=1, seq=3)], ["v"]))
    assert [
        (r[1], r[4], r[5]["n"], r in flatten(second.results, final=True)) for r in flatten(second.results, final=None)
    ] == [
        (0, 10, 2.0, True),
        (1, 10, 1.0, True),
        (1, 12, 1.0, False),
    ]


def test_a_sliding_windows_updates_in_one_batch_see_only_the_events_before_their_tick() -> None:
    """Each event's update is its key's newest window as of that event, though the batch is applied at once:
    events at or before the key's newest time (a second one at 100, one out of order at 98) join the
    windows of the ticks after them only."""
    spec = WindowSpec("s", SlidingWindows(10, 5), COUNT, EmitMode.UPDATE, update_interval=0)
    log = [ev(100, seq=0), ev(100, seq=1), ev(101, key=1, seq=2), ev(98, seq=3), ev(103, seq=4), ev(100, seq=5)]
    batched, _ = run_engine([spec], log, close_all=False)
    updates = [(r[1], r[2], r[3], r[5]["n"]) for r in flatten(batched, final=None)]
    assert updates == [
        (0, 90, 100, 1.0),
        (0, 90, 100, 2.0),
        (1, 91, 101, 1.0),
        (0, 90, 100, 3.0),
        (0, 93, 103, 4.0),
        (0, 93, 103, 5.0),
    ]
    one_by_one, _ = run_engine([spec], log, [1], close_all=False)
    assert flatten(batched, final=None) == flatten(one_by_one, final=None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(st.integers(0, 40), min_size=1, max_size=60),
    steps=st.lists(st.integers(0, 3), min_size=60, max_size=60),
    kind=st.sampled_from(["tumbling", "hopping", "sliding"]),
    interval=st.integers(0, 4),
    batches=st.lists(st.integers(2, 30), min_size=1, max_size=3),
)
def test_updates_are_the_same_whether_ticks_are_cut_or_wait(keys, steps, kind, interval, batches) -> None:  # type: ignore[no-untyped-def]
    definition: object = {
        "tumbling": TumblingWindows(20, 3),
        "hopping": HoppingWindows(20, 5, 3),
        "sliding": SlidingWindows(10, 3),
    }[kind]
    spec = WindowSpec("w", definition, COUNT, EmitMode.UPDATE, interval)  # type: ignore[arg-type]
    clock, changes = 1_000, []
    for seq, key in enumerate(keys):
        clock += steps[seq]
        changes.append(ev(clock, key=key, v=float(seq % 5), seq=seq))
    one_by_one, _ = run_engine([spec], changes, [1])
    batched, _ = run_engine([spec], changes, batches)
    assert flatten(batched, final=None) == flatten(one_by_one, final=None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 50),
    grace=st.integers(0, 20),
    times=st.lists(st.integers(0, 400), max_size=60),
    seed=st.integers(0, 1000),
)
def test_shuffling_within_the_grace_period_does_not_change_final_results(size, grace, times, seed) -> None:  # type: ignore[no-untyped-def]
    specs = [
        WindowSpec("t", TumblingWindows(size, grace), COUNT),
        WindowSpec("h", HoppingWindows(size, max(1, size // 3), grace), COUNT),
        WindowSpec("s", SlidingWindows(size, grace), COUNT),
    ]
    ordered = sorted(times)
    base = [ev(1_000 + t, key=t % 3, v=float(t % 7), seq=i) for i, t in enumerate(ordered)]
    rng = random.Random(seed)
    # delay each event by at most `grace`: no event can become late for any window
    shuffled = sorted(base, key=lambda e: (e.ts + rng.randint(0, grace), e.seq))
    in_order, late_a = run_engine(specs, base)
    disordered, late_b = run_engine(specs, shuffled)
    assert late_a == late_b == []
    strip = lambda rows: sorted((w, k, s, e, t, v["n"], v["total"]) for w, k, s, e, t, v in rows)  # noqa: E731
    assert strip(flatten(disordered)) == strip(flatten(in_order))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(1, 60), grace=st.integers(0, 20), times=st.lists(st.integers(0, 500), max_size=50))
def test_hopping_with_step_equal_to_size_is_tumbling(size: int, grace: int, times: list[int]) -> None:
    log = [ev(10_000 + t, key=t % 2, v=float(t), seq=i) for i, t in enumerate(times)]
    tumbling, late_t = run_engine([WindowSpec("w", TumblingWindows(size, grace), COUNT)], log)
    hopping, late_h = run_engine([WindowSpec("w", HoppingWindows(size, size, grace), COUNT)], log)
    assert flatten(tumbling) == flatten(hopping)
    assert late_t == late_h
