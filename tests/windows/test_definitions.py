"""Window geometry and durations, against hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windows.definitions import HoppingWindows, SlidingWindows, TumblingWindows
from windows.durations import parse_duration_ms
from windows.errors import SpecError, reason


def test_tumbling_windows_are_epoch_aligned_and_half_open() -> None:
    w = TumblingWindows(size=60_000, grace=5_000)
    assert w.starts_containing(59_999) == [0]
    assert w.starts_containing(60_000) == [60_000]
    assert w.close_point(60_000) == 125_000


def test_hopping_windows_containing_a_time() -> None:
    w = HoppingWindows(size=300_000, step=30_000, grace=10_000)
    starts = w.starts_containing(95_000)
    assert starts == [-180_000, -150_000, -120_000, -90_000, -60_000, -30_000, 0, 30_000, 60_000, 90_000]
    assert all(s <= 95_000 < s + 300_000 for s in starts)
    assert w.pane == 30_000
    assert HoppingWindows(size=10, step=4).pane == 2


def test_sliding_window_close_counts_the_inclusive_end() -> None:
    w = SlidingWindows(size=10_000, grace=2_000)
    assert w.close_point(100_000) == 102_001
    assert w.last_close_containing(90_000) == 102_001


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TumblingWindows(0), "size must be a positive"),
        (lambda: HoppingWindows(10, 11), "must not exceed size"),
        (lambda: SlidingWindows(10, -1), "grace must be zero or a positive"),
    ],
)
def test_invalid_definitions_say_what_is_wrong(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match=message):
        make()


@pytest.mark.parametrize(("text", "ms"), [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), (7, 7)])
def test_durations(text: object, ms: int) -> None:
    assert parse_duration_ms(text, field="x") == ms


@pytest.mark.parametrize("bad", ["5 minutes", "-3s", "1.5s", True, None, -1])
def test_bad_durations_name_the_field(bad: object) -> None:
    with pytest.raises(SpecError, match=r"^grace:"):
        parse_duration_ms(bad, field="grace")


@given(size=st.integers(1, 500), step=st.integers(1, 500), ts=st.integers(-(10**6), 10**6))
def test_hopping_starts_are_exactly_the_windows_holding_the_time(size: int, step: int, ts: int) -> None:
    if step > size:
        step = size
    w = HoppingWindows(size, step)
    expected = [s for s in range(ts - size - step, ts + 1) if s % step == 0 and s <= ts < s + size]
    assert w.starts_containing(ts) == expected


def test_an_underlying_error_ends_a_message_without_a_second_full_stop() -> None:
    assert f"cannot reach the broker: {reason(OSError('Connection refused.'))}." == (
        "cannot reach the broker: Connection refused."
    )
    assert reason(ValueError("line 3 is not JSON")) == "line 3 is not JSON"
