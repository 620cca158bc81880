"""The C searches over sliding-window points against plain Python over lists of pairs."""

from __future__ import annotations

import ast
import bisect
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from windows import sliding_points
from windows.stream_time import NO_TIME

_POINTS = st.sets(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=40)


def _columns(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray([k for k, _ in pairs], dtype=np.int64), np.asarray([t for _, t in pairs], dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(points=_POINTS, probes=st.lists(st.tuples(st.integers(-1, 6), st.integers(-5, 45)), max_size=30))
def test_locate_is_a_search_over_the_sorted_pairs(points: set[tuple[int, int]], probes) -> None:
    ordered = sorted(points)
    keys, times = _columns(ordered)
    probe_keys, probe_times = _columns(probes)
    for right, search in ((False, bisect.bisect_left), (True, bisect.bisect_right)):
        found = sliding_points.locate(keys, times, probe_keys, probe_times, right)
        assert found.tolist() == [search(ordered, probe) for probe in probes]


@settings(max_examples=300, deadline=None)
@given(
    points=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 400)), max_size=300),
    probes=st.lists(st.tuples(st.integers(-1, 6), st.integers(-5, 405)), max_size=60),
    descending=st.booleans(),
)
def test_locate_of_many_ordered_probes_finds_the_places_bisect_finds(
    points: set[tuple[int, int]], probes: list[tuple[int, int]], descending: bool
) -> None:
    """Up to 300 points and 60 probes (searched 16 at a time), in ascending or descending order, with
    repeats and probes before and after every point."""
    ordered = sorted(points)
    keys, times = _columns(ordered)
    probes = sorted(probes, reverse=descending)
    probe_keys, probe_times = _columns(probes)
    for right, search in ((False, bisect.bisect_left), (True, bisect.bisect_right)):
        found = sliding_points.locate(keys, times, probe_keys, probe_times, right)
        assert found.tolist() == [search(ordered, probe) for probe in probes]


@settings(max_examples=200, deadline=None)
@given(old=_POINTS, new=_POINTS)
def test_merge_keeps_every_point_with_its_slot_in_order(old: set[tuple[int, int]], new: set[tuple[int, int]]) -> None:
    new -= old
    before, added = sorted(old), sorted(new)
    slot = {pair: i for i, pair in enumerate(before + added)}
    keys, times, slots = sliding_points.merge(
        *_columns(before),
        np.arange(len(before), dtype=np.int64),
        *_columns(added),
        np.arange(len(before), len(before) + len(added), dtype=np.int64),
    )
    merged = sorted(old | new)
    assert list(zip(keys.tolist(), times.tolist())) == merged
    assert slots.tolist() == [slot[pair] for pair in merged]


def _expected_windows(points, keys, uptos, closed_upto, expired, size, grace):
    """The closing windows by their definition, one point and one window at a time."""
    ordered = sorted(points)
    out = []
    for key, upto in zip(keys, uptos):
        low = closed_upto
        mine = [t for k, t in ordered if k == key]
        first = ordered.index((key, mine[0])) if mine else 0
        position = {t: first + i for i, t in enumerate(mine)}
        for t in mine:  # left windows [t - size, t]
            if low < t + 1 + grace <= upto and (key, t) not in expired:
                held = [u for u in mine if t - size <= u <= t]
                out.append((key, t - size, t, position[held[0]], position[held[-1]] + 1))
        for t in mine:  # right windows [t + 1, t + 1 + size]: a later point within size, none at its end
            later = [u for u in mine if t < u <= t + size]
            if low < t + size + 2 + grace <= upto and later and t + 1 + size not in mine:
                out.append((key, t + 1, t + 1 + size, position[later[0]], position[later[-1]] + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(
    points=_POINTS,
    chosen=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 70)), max_size=6, unique_by=lambda p: p[0]),
    every=st.booleans(),
    closed_upto=st.integers(-1, 40) | st.just(NO_TIME),
    some_expired=st.booleans(),
    size=st.integers(0, 12),
    grace=st.integers(0, 5),
)
def test_closing_windows_follow_the_definition(points, chosen, every, closed_upto, some_expired, size, grace) -> None:
    ordered = sorted(points)
    expired = set(ordered[::4]) if some_expired else set()
    if every:
        upto = chosen[0][1] if chosen else 50
        keys = sorted({k for k, _ in ordered})
        uptos = [upto] * len(keys)
        select = None
        upto_arg = np.asarray([upto], dtype=np.int64)
    else:
        pairs = sorted(chosen)
        keys, uptos = [k for k, _ in pairs], [u for _, u in pairs]
        select = np.asarray(keys, dtype=np.int64)
        upto_arg = np.asarray(uptos, dtype=np.int64)
    columns = sliding_points.closing(
        *_columns(ordered),
        select,
        upto_arg,
        closed_upto,
        *_columns(sorted(expired)),
        size,
        grace,
    )
    found = list(zip(*(column.tolist() for column in columns)))
    assert found == _expected_windows(points, keys, uptos, closed_upto, expired, size, grace)


def _late_columns(late: list[tuple[int, int, int]]) -> tuple[list[int], list[np.ndarray]]:
    """The order of the late points by key and time (each one's slot is its index), and their key, time and
    arrival columns in that order."""
    order = sorted(range(len(late)), key=lambda i: late[i][:2])
    return order, [np.asarray([late[i][f] for i in order], dtype=np.int64) for f in range(3)]


def _closing_late(ordered, late, keys, uptos, closed_upto, size, grace, hiding_only=False):  # type: ignore[no-untyped-def]
    """``closing_late`` of the sorted ``(key, time)`` points (slot: position) and late points, with the late
    points each window holds listed as ``(group, slot, pane end)`` pairs (``late_pairs``; slot: index)."""
    order, late_columns = _late_columns(late)
    late_slots = np.asarray(order, dtype=np.int64)
    no = np.zeros(0, dtype=np.int64)
    w_keys, starts, ends, lo, hi, late_lo, late_hi, closes = sliding_points.closing_late(
        *_columns(ordered),
        *late_columns,
        np.asarray(keys, dtype=np.int64),
        np.asarray(uptos, dtype=np.int64),
        closed_upto,
        no,
        no,
        size,
        grace,
        hiding_only,
    )
    assert closes.tolist() == (ends + 1 + grace).tolist()  # a window's close bounds the late points it holds
    pairs = sliding_points.late_pairs(late_lo, late_hi, closes, late_columns[1], late_columns[2], late_slots)
    return (w_keys, starts, ends, lo, hi, *pairs)


def _expected_late_windows(points, late, keys, uptos, closed_upto, size, grace):
    """Windows closing by each key's bound when each late point ``(key, time, arrival)`` exists only for
    windows closing after it came: by the definition, one window at a time."""
    out = []
    for key, upto in zip(keys, uptos):
        mine = sorted(t for k, t in points if k == key)
        mine_late = sorted((t, a, i) for i, (k, t, a) in enumerate(late) if k == key)

        def seen(start: int, end: int, close: int, mine_late=mine_late) -> list[int]:
            return sorted(
                (i for t, a, i in mine_late if start <= t <= end and a < close), key=lambda i: (late[i][1], i)
            )

        candidates = []
        for t in sorted(set(mine) | {t for t, _, _ in mine_late}):  # left windows [t - size, t]
            if t in mine or seen(t, t, t + 1 + grace):
                candidates.append((t - size, t, t + 1 + grace))
        for t in sorted(set(mine) | {t for t, _, _ in mine_late}):  # right windows: a point in (t, t + size]
            close = t + size + 2 + grace
            within = [u for u in mine if t < u <= t + size] or seen(t + 1, t + size, close)
            if within:
                candidates.append((t + 1, t + 1 + size, close))
        for start, end, close in sorted(set(candidates)):  # a window made twice is one window
            if closed_upto < close <= upto:
                held = [u for u in mine if start <= u <= end]
                out.append((key, start, end, held, seen(start, end, close)))
    return out


@settings(max_examples=300, deadline=None)
@given(
    points=_POINTS,
    late=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(0, 60)), max_size=12),
    chosen=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 70)), max_size=6, unique_by=lambda p: p[0]),
    closed_upto=st.integers(-1, 40) | st.just(NO_TIME),
    size=st.integers(0, 12),
    grace=st.integers(0, 5),
)
# the only point in (10, 16] arrived at 19, as the right window [11, 17] of 10 closed: it has no such window
@example(points={(0, 10)}, late=[(0, 15, 19)], chosen=[(0, 30)], closed_upto=-1, size=6, grace=1)
# a late point at 17 came in time to make its left window [11, 17]: the right window of 10, made once
@example(points={(0, 10), (0, 12)}, late=[(0, 30, 40), (0, 17, 5)], chosen=[(0, 30)], closed_upto=-1, size=6, grace=1)
def test_closing_with_late_points_sees_each_only_in_windows_that_closed_after_it_came(
    points, late, chosen, closed_upto, size, grace
) -> None:
    # some late points came after their own left window had closed, some before
    late = [(k, t, a if i % 2 else max(a, t + 1 + grace)) for i, (k, t, a) in enumerate(late)]
    ordered = sorted(points)
    pairs = sorted(chosen)
    keys, uptos = [k for k, _ in pairs], [u for _, u in pairs]
    w_keys, starts, ends, lo, hi, groups, slots, pane_ends = _closing_late(
        ordered, late, keys, uptos, closed_upto, size, grace
    )
    found = []
    for w, (key, start, end, a, b) in enumerate(zip(*(c.tolist() for c in (w_keys, starts, ends, lo, hi)))):
        held = [ordered[p][1] for p in range(a, b)]
        assert all(ordered[p][0] == key for p in range(a, b))
        mine = groups == w
        assert pane_ends[mine].tolist() == [late[i][1] + 1 for i in slots[mine].tolist()]
        found.append((key, start, end, held, sorted(slots[mine].tolist(), key=lambda i: (late[i][1], i))))
    expected = _expected_late_windows(points, late, keys, uptos, closed_upto, size, grace)
    assert sorted(found) == sorted(expected)
    assert groups.tolist() == sorted(groups.tolist())


@settings(max_examples=300, deadline=None)
@given(
    points=_POINTS,
    late=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(0, 60)), max_size=12),
    upto=st.integers(0, 70),
    closed_upto=st.integers(-1, 40) | st.just(NO_TIME),
    size=st.integers(0, 12),
    grace=st.integers(0, 5),
)
def test_windows_hiding_late_points_and_the_close_of_all_points_make_the_windows_as_they_were(
    points, late, upto, closed_upto, size, grace
) -> None:
    """A close over the points with the late points among them, leaving out the windows that closed before
    a late point in them came, and ``closing_late`` of just those windows, give every window as it was."""
    late = [(k, t, a if i % 2 else max(a, t + 1 + grace)) for i, (k, t, a) in enumerate(late)]
    ordered = sorted(points)
    merged = sorted(set(ordered) | {(k, t) for k, t, _ in late})
    keys = sorted({k for k, _ in merged})
    no = np.zeros(0, dtype=np.int64)

    def as_of(hiding_only: bool) -> set[tuple[int, int, int, tuple[int, ...]]]:
        uptos = [upto] * len(keys)
        w_keys, starts, ends, lo, hi, groups, slots, _ = _closing_late(
            ordered, late, keys, uptos, closed_upto, size, grace, hiding_only
        )
        found = set()
        for w, (key, start, end, a, b) in enumerate(zip(*(c.tolist() for c in (w_keys, starts, ends, lo, hi)))):
            times = {ordered[p][1] for p in range(a, b)} | {late[i][1] for i in slots[groups == w].tolist()}
            found.add((key, start, end, tuple(sorted(times))))
        return found

    columns = sliding_points.closing(
        *_columns(merged),
        None,
        np.asarray([upto], dtype=np.int64),
        closed_upto,
        no,
        no,
        size,
        grace,
        *_late_columns(late)[1],
    )
    rest = {
        (key, start, end, tuple(merged[p][1] for p in range(a, b)))
        for key, start, end, a, b in zip(*(c.tolist() for c in columns))
    }
    hiding = as_of(True)
    assert not hiding & rest
    assert hiding | rest == as_of(False)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 4), st.integers(-20, 20)), max_size=30),
    initial=st.dictionaries(st.integers(0, 4), st.integers(-30, 30) | st.just(NO_TIME)),
)
def test_running_max_is_each_keys_largest_so_far(events: list[tuple[int, int]], initial: dict[int, int]) -> None:
    grouped = sorted(events, key=lambda e: e[0])  # stable: each key's values in their order
    keys, values = _columns(grouped)
    starts = np.asarray([initial.get(k, NO_TIME) for k, _ in grouped], dtype=np.int64)
    expected = [
        max([initial.get(k, NO_TIME)] + [v for kk, v in grouped[:i] if kk == k]) for i, (k, _) in enumerate(grouped)
    ]
    assert sliding_points.running_max(keys, values, starts).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 4) | st.integers(-(2**62), 2**62), st.integers(-50, 50), st.booleans()
        ),
        max_size=40,
    )
)
def test_tick_groups_are_the_ticks_keys_with_a_change_kept_and_their_last_newest_time(changes) -> None:  # type: ignore[no-untyped-def]
    changes = sorted(changes, key=lambda change: change[0])  # stable: ticks do not go down
    ticks, keys, newest, kept = (np.asarray([c[f] for c in changes], dtype=np.int64) for f in range(4))
    got = sliding_points.tick_groups(ticks, keys, newest, kept.astype(np.uint8))
    groups: dict[tuple[int, int], tuple[int, bool]] = {}  # in order of first change: last newest, any kept
    for tick, key, time, keep in changes:
        before = groups.get((tick, key), (time, False))
        groups[(tick, key)] = (time, before[1] or keep)
    expected = [(tick, key, time) for (tick, key), (time, keep) in groups.items() if keep]
    assert list(zip(*(column.tolist() for column in got))) == expected
    if len(changes) > 1 and changes[0][0] < changes[-1][0]:
        with pytest.raises(ValueError, match="the changes' ticks go down at change"):
            sliding_points.tick_groups(ticks[::-1].copy(), keys, newest, kept.astype(np.uint8))


@settings(max_examples=200, deadline=None)
@given(
    late=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30), st.integers(0, 20)), max_size=20),
    windows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(-5, 30), st.integers(0, 12), st.integers(0, 25)), max_size=8
    ),
)
def test_late_held_are_the_late_points_of_each_window_that_came_before_its_bound(late, windows) -> None:  # type: ignore[no-untyped-def]
    order = sorted(range(len(late)), key=lambda i: late[i][:2])

    def column(rows: list[tuple[int, ...]], field: int) -> np.ndarray:
        return np.asarray([row[field] for row in rows], dtype=np.int64)

    by_time = [late[i] for i in order]
    starts, bounds = column(windows, 1), column(windows, 3)
    times, arrivals, slots = column(by_time, 1), column(by_time, 2), np.asarray(order, dtype=np.int64)
    lo, hi = sliding_points.late_held(
        column(by_time, 0), times, column(windows, 0), starts, starts + column(windows, 2)
    )
    groups, slots, pane_ends = sliding_points.late_pairs(lo, hi, bounds, times, arrivals, slots)
    expected = [
        (g, i, late[i][1] + 1)
        for g, (key, start, length, bound) in enumerate(windows)
        for i in order
        if late[i][0] == key and start <= late[i][1] <= start + length and late[i][2] < bound
    ]
    assert list(zip(groups.tolist(), slots.tolist(), pane_ends.tolist())) == expected


def test_mismatched_columns_are_refused_with_what_was_given() -> None:
    keys = np.asarray([1, 2], dtype=np.int64)
    one = np.asarray([5], dtype=np.int64)
    with pytest.raises(ValueError, match="one time per key: 2 keys were given with 1 times"):
        sliding_points.locate(keys, one, keys, keys)
    with pytest.raises(ValueError, match="one stream time to close up to, not 2"):
        sliding_points.closing(keys, keys, None, keys, 0, one[:0], one[:0], 1, 0)
    with pytest.raises(ValueError, match="closing 2 keys takes a stream time per key, not 1"):
        sliding_points.closing(keys, keys, keys, one, 0, one[:0], one[:0], 1, 0)


@st.composite
def _ranges(draw: st.DrawFn) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Per-slot values (any int64, so sums wrap), points as slots, and windows as ranges of points: few short
    ones (summed one by one) or many overlapping ones (through prefix sums)."""
    values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20))
    points = draw(st.lists(st.integers(0, len(values) - 1), max_size=40))
    bounds = st.tuples(st.integers(0, len(points)), st.integers(0, len(points))).map(sorted)
    windows = draw(st.lists(bounds, max_size=15))
    return values, points, [(lo, hi) for lo, hi in windows]


@settings(max_examples=300, deadline=None)
@given(case=_ranges())
def test_range_sums_add_each_windows_points_as_numpy_does(case) -> None:
    values, points, windows = case
    per_slot = np.asarray(values, dtype=np.int64)
    slots = np.asarray(points, dtype=np.int64)
    lo, hi = _columns(windows)
    found = sliding_points.range_sums(per_slot, slots, lo, hi)
    with np.errstate(over="ignore"):
        expected = [int(per_slot[slots[a:b]].sum()) for a, b in windows]
    assert found.tolist() == expected


def test_range_sums_refuse_ranges_and_slots_outside_what_was_given() -> None:
    per_slot = np.asarray([1, 2, 3], dtype=np.int64)
    slots = np.asarray([0, 2, 5], dtype=np.int64)  # slot 5 is not one of the three
    one, two = np.asarray([1], dtype=np.int64), np.asarray([2], dtype=np.int64)
    assert sliding_points.range_sums(per_slot, slots, np.asarray([0, 1]), np.asarray([2, 2])).tolist() == [4, 3]
    with pytest.raises(IndexError, match="point 2 is slot 5, outside the 3 slots given"):
        sliding_points.range_sums(per_slot, slots, two, np.asarray([3], dtype=np.int64))
    with pytest.raises(IndexError, match=r"window 0 holds points \[2, 4\), outside the 3 points given"):
        sliding_points.range_sums(per_slot, slots, two, np.asarray([4], dtype=np.int64))
    with pytest.raises(IndexError, match=r"window 0 holds points \[2, 1\)"):
        sliding_points.range_sums(per_slot, slots, two, one)
    with pytest.raises(ValueError, match="1 starts, 2 ends"):
        sliding_points.range_sums(per_slot, slots, one, np.asarray([1, 2], dtype=np.int64))


@settings(max_examples=200, deadline=None)
@given(
    late=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 20), st.integers(0, 5)), max_size=20),
    windows=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 25)), max_size=8),
    seed=st.integers(0, 2**32),
)
def test_late_sums_add_what_each_window_holds_as_its_pairs_say(late, windows, seed) -> None:  # type: ignore[no-untyped-def]
    late = sorted(late)  # (time, arrival, slot): one key's late points in time order
    times, arrivals, slots = (np.asarray([p[f] for p in late], dtype=np.int64) for f in range(3))
    lo = np.asarray([min(a, b, len(late)) for a, b, _ in windows], dtype=np.int64)
    hi = np.asarray([min(max(a, b), len(late)) for a, b, _ in windows], dtype=np.int64)
    bounds = np.asarray([w[2] for w in windows], dtype=np.int64)
    per_slot = np.random.default_rng(seed).integers(-(2**62), 2**62, 6)  # large: sums wrap as numpy's do
    start = np.random.default_rng(seed + 1).integers(-(2**62), 2**62, len(windows))
    groups, pair_slots, _ = sliding_points.late_pairs(lo, hi, bounds, times, arrivals, slots)
    expected = start.copy()
    np.add.at(expected, groups, per_slot[pair_slots])
    sums = start.copy()
    sliding_points.add_late_sums(sums, per_slot, lo, hi, bounds, arrivals, slots)
    assert sums.tolist() == expected.tolist()
    if windows:
        with pytest.raises(IndexError, match="window 0 holds late points"):
            sliding_points.add_late_sums(
                sums, per_slot, lo + len(late) + 1, hi + len(late) + 1, bounds, arrivals, slots
            )


_GUARDED_CLOSE = """
import ctypes, mmap, sys
import numpy as np
from windows import sliding_points

libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
memory = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
assert libc.mprotect(start + page, page, 0) == 0  # any read past the points faults
n = int(sys.argv[1])
times = np.frombuffer(memory, dtype=np.int64, count=n, offset=page - 8 * n)
times[:] = np.arange(n)
one = lambda v: np.asarray([v], dtype=np.int64)
none = np.zeros(0, dtype=np.int64)
columns = sliding_points.closing_late(
    np.zeros(n, dtype=np.int64), times, one(0), one(100), one(50), one(0), one(1_000),
    np.iinfo(np.int64).min, none, none, 10, 0, False,
)
print([column.tolist() for column in columns])
"""


@pytest.mark.parametrize("points", [0, 1, 3])
def test_closing_late_reads_nothing_past_the_points(points: int) -> None:
    """The last key's late point after all its points: the windows' first points are looked for up to the
    end of the points and no further (the points end right before a page that faults on any read)."""
    ran = subprocess.run(
        [sys.executable, "-c", _GUARDED_CLOSE, str(points)], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    windows = list(zip(*ast.literal_eval(ran.stdout)))  # key, start, end, lo, hi, late lo, late hi, close
    assert windows[-1] == (0, 90, 100, points, points, 0, 1, 101)  # the late point's own left window
