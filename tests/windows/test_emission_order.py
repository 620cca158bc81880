"""The engine's emission order: results sorted by (emitted_at, final before update, tick, window, start,
end, key), across chunks, whatever the span of emission times."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.engine import emission_order, emission_plan
from windows.results import WindowResults

_SIZES = (10, 60, 7)  # per window index: windows of one definition have one size


@st.composite
def chunks(draw: st.DrawFn, far: bool, fixed: bool = False) -> list[WindowResults]:
    """Result chunks; with ``far``, emission times spread too far to share one number with the minor keys;
    with ``fixed``, every final of a window emitted a fixed time after its start (as a close emits them)."""
    times = st.integers(0, 2**61) if far else st.integers(1_700_000_000_000, 1_700_000_000_050)
    delays = [draw(times) for _ in _SIZES]  # per window, with ``fixed``: a final's emission time less its start
    made = []
    row_ids = iter(range(1_000))
    for _ in range(draw(st.integers(1, 5))):
        window, final = draw(st.integers(0, 2)), draw(st.booleans())
        rows = draw(st.lists(st.tuples(st.integers(0, 4), st.integers(-50, 50), times, st.integers(0, 9)), max_size=8))
        table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)  # key, start, emitted_at, tick per row
        keys, starts, emitted_at, ticks = (np.ascontiguousarray(table[:, i]) for i in range(4))
        if fixed and final:
            emitted_at = starts + delays[window]
        made.append(
            WindowResults(
                window=f"w{window}",
                window_index=window,
                final=final,
                key_ids=keys,
                starts=starts,
                ends=starts + _SIZES[window],
                emitted_at=emitted_at,
                values={"row": np.fromiter(row_ids, dtype=np.int64, count=len(rows))},
                ticks=None if final else ticks,
            )
        )
    return made


def _rows(chunk: WindowResults) -> list[tuple[int, ...]]:
    """Each result's sort keys, in the documented order, then its row id."""
    ticks = chunk.ticks if chunk.ticks is not None else np.zeros(len(chunk), dtype=np.int64)
    return list(
        zip(
            chunk.emitted_at.tolist(),
            [0 if chunk.final else 1] * len(chunk),
            ticks.tolist(),
            [chunk.window_index] * len(chunk),
            chunk.starts.tolist(),
            chunk.ends.tolist(),
            chunk.key_ids.tolist(),
            chunk.values["row"].tolist(),
        )
    )


def _check(made: list[WindowResults]) -> None:
    """Rows come out sorted by their keys; equal keys keep their order of arrival (row ids ascending), and
    each row's values travel with it (its id among its own keys)."""
    expected = sorted(row for chunk in made for row in _rows(chunk))
    ordered = emission_order(made)
    assert [row for chunk in ordered for row in _rows(chunk)] == expected


@settings(max_examples=200, deadline=None)
@given(chunks(far=False))
def test_results_come_out_sorted_by_the_documented_keys(made: list[WindowResults]) -> None:
    _check(made)


@settings(max_examples=200, deadline=None)
@given(chunks(far=True))
def test_results_come_out_sorted_by_the_documented_keys_over_any_span_of_time(made: list[WindowResults]) -> None:
    _check(made)


@settings(max_examples=300, deadline=None)
@given(chunks(far=False, fixed=True))
def test_finals_emitted_a_fixed_time_after_their_start_come_out_in_the_same_order(made: list[WindowResults]) -> None:
    _check(made)


@settings(max_examples=200, deadline=None)
@given(chunks(far=True, fixed=True))
def test_finals_emitted_a_fixed_time_after_their_start_over_any_span_of_time(made: list[WindowResults]) -> None:
    _check(made)


def test_thousands_of_finals_and_updates_come_out_in_the_same_order_as_the_rows_sorted() -> None:
    """Chunks long enough for the packed sorts: finals closing a fixed time after their start, sorted on
    their own, merged with updates that share many of their emission times."""
    rng = np.random.default_rng(11)
    made = []
    row_ids = iter(range(100_000))
    for window, final, n in ((0, True, 6_000), (1, True, 3_000), (2, False, 5_000), (0, False, 2_500)):
        starts = rng.integers(1_700_000_000_000, 1_700_000_004_000, n)
        emitted_at = starts + _SIZES[window] + 3 if final else rng.integers(1_700_000_000_000, 1_700_000_004_000, n)
        made.append(
            WindowResults(
                window=f"w{window}",
                window_index=window,
                final=final,
                key_ids=rng.integers(0, 300, n),
                starts=starts,
                ends=starts + _SIZES[window],
                emitted_at=emitted_at,
                values={"row": np.fromiter(row_ids, dtype=np.int64, count=n)},
                ticks=None if final else rng.integers(0, 40, n),
            )
        )
    _check(made)
    _check([made[0], made[1]])  # finals only


@settings(max_examples=200, deadline=None)
@given(chunks(far=False))
def test_the_plan_has_one_chunk_per_window_and_kind_and_its_runs_cover_each_once_in_order(
    made: list[WindowResults],
) -> None:
    plan = emission_plan(made)
    kinds = [(chunk.window_index, chunk.final) for chunk in plan.chunks]
    assert len(kinds) == len(set(kinds)) == len({(c.window_index, c.final) for c in made if len(c)})
    covered = [0] * len(plan.chunks)
    for chunk, start, stop in plan.runs:
        assert start == covered[chunk] < stop  # each run goes on where the chunk's last one stopped
        covered[chunk] = stop
    assert covered == [len(chunk) for chunk in plan.chunks]
    assert all(plan.runs[i][0] != plan.runs[i + 1][0] for i in range(len(plan.runs) - 1))  # runs alternate
    assert [row for chunk in plan.results() for row in _rows(chunk)] == sorted(
        row for chunk in made for row in _rows(chunk)
    )
