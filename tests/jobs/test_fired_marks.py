"""The windows a rule has fired on: the C hash set against a Python set and heap of the same marks."""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jobs.fired_marks import FiredMarks

# (final?, rows of (key, start, end)): emissions of one rule's window, updates marking and finals reading
windows = st.tuples(st.integers(0, 5), st.integers(-3, 6), st.integers(0, 12))
emissions = st.lists(st.tuples(st.booleans(), st.lists(windows, max_size=20)), max_size=30)


class PlainMarks:
    """The statement: a set of marked windows and a heap of their ends."""

    def __init__(self) -> None:
        self.marked: set[tuple[int, int, int]] = set()
        self.ends: list[tuple[int, int, int]] = []

    def unmarked(self, rows: list[tuple[int, int, int]]) -> list[int]:
        return [i for i, row in enumerate(rows) if row not in self.marked]

    def mark(self, rows: list[tuple[int, int, int]]) -> list[int]:
        kept = []
        for i, (key, start, end) in enumerate(rows):
            if (key, start, end) not in self.marked:
                self.marked.add((key, start, end))
                heapq.heappush(self.ends, (end, key, start))
                kept.append(i)
        return kept

    def expire(self, horizon: int) -> int:
        dropped = 0
        while self.ends and self.ends[0][0] < horizon:
            end, key, start = heapq.heappop(self.ends)
            self.marked.discard((key, start, end))
            dropped += 1
        return dropped


def _columns(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


@given(emissions=emissions)
def test_marks_match_a_set_and_heap(emissions: list[tuple[bool, list[tuple[int, int, int]]]]) -> None:
    marks, plain = FiredMarks(), PlainMarks()
    for final, rows in emissions:
        if final:
            assert marks.unmarked(*_columns(rows)).tolist() == plain.unmarked(rows)
            horizon = max((end for _, _, end in rows), default=0)
            assert marks.expire(horizon) == plain.expire(horizon)
        else:
            assert marks.mark(*_columns(rows)).tolist() == plain.mark(rows)
        assert len(marks) == len(plain.marked)
        keys, starts, ends = marks.columns()
        assert sorted(zip(keys.tolist(), starts.tolist(), ends.tolist())) == sorted(plain.marked)


def test_many_marks_grow_the_table_and_expire_in_end_order() -> None:
    marks = FiredMarks()
    keys = np.arange(100_000, dtype=np.int64) % 977
    starts = np.arange(100_000, dtype=np.int64)
    assert marks.mark(keys, starts, starts + 10).shape[0] == 100_000
    assert marks.mark(keys, starts, starts + 10).shape[0] == 0  # all marked already
    assert marks.expire(50_010) == 50_000  # ends 10 .. 50,009
    assert marks.unmarked(keys, starts, starts + 10).tolist() == list(range(50_000))
    assert len(marks) == 50_000


def test_storage_shrinks_once_most_marks_expire_and_keeps_the_rest() -> None:
    marks = FiredMarks()
    starts = np.arange(100_000, dtype=np.int64)
    keys = starts % 13
    marks.mark(keys, starts, starts + 10)
    assert marks.expire(99_995 + 10) == 99_995  # keeps the windows ending at 100,005 .. 100,009
    assert len(marks) == 5
    assert marks.unmarked(keys, starts, starts + 10).tolist() == list(range(99_995))
    kept = sorted(zip(*(column.tolist() for column in marks.columns())))
    assert kept == sorted((k % 13, k, k + 10) for k in range(99_995, 100_000))
    assert marks.mark(keys[:3], starts[:3], starts[:3] + 10).tolist() == [0, 1, 2]
    assert marks.expire(50) == 3 and len(marks) == 5
