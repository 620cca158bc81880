"""Result chunks carry trace entries for some rows (``traces``, indexed by ``trace_rows``): taking, cutting
and joining rows keeps each row's own entries."""

from __future__ import annotations

import numpy as np

from windows.pane_state import NO_SEQ
from windows.results import WindowResults


def _chunk(keys: list[int], trace_rows: list[int] | None, traces: list[list[int]] | None) -> WindowResults:
    ids = np.asarray(keys, dtype=np.int64)
    entries = None if traces is None else np.asarray(traces, dtype=np.int64).reshape(len(traces), 1, 5)
    rows = None if trace_rows is None else np.asarray(trace_rows, dtype=np.int64)
    return WindowResults("w", 0, True, ids, ids, ids + 10, ids + 11, {"n": ids * 2}, trace_rows=rows, traces=entries)


def _entries(chunk: WindowResults) -> list[list[int]]:
    entries = chunk.trace_entries()
    assert entries is not None
    return [row[0] for row in entries.tolist()]


EMPTY = [NO_SEQ] * 5


def test_rows_taken_cut_and_joined_keep_their_own_trace_entries() -> None:
    whole = _chunk([1, 2, 3], [1, -1, 0], [[30, 3, 0, 7, 8], [10, 1, 0, 5, 6]])  # row 2 kept none
    assert _entries(whole) == [[10, 1, 0, 5, 6], EMPTY, [30, 3, 0, 7, 8]]
    other = _chunk([4], [0], [[40, 4, 0, 9, 9]])
    taken = whole.take(np.asarray([2, 0]))
    assert _entries(taken) == [[30, 3, 0, 7, 8], [10, 1, 0, 5, 6]] and taken.traces is whole.traces
    # two cuts of one chunk share its entries: joined, they are kept once
    joined = WindowResults.concat([whole.rows(1, 3), other, whole.rows(0, 1)])
    assert joined.key_ids.tolist() == [2, 3, 4, 1]
    assert _entries(joined) == [EMPTY, [30, 3, 0, 7, 8], [40, 4, 0, 9, 9], [10, 1, 0, 5, 6]]
    # as the parts they were, not copied
    assert isinstance(joined.traces, tuple) and joined.traces[0] is whole.traces and joined.traces[1] is other.traces
    again = WindowResults.concat([joined.rows(2, 4), whole.rows(0, 2), joined.rows(0, 1)])
    assert _entries(again) == [[40, 4, 0, 9, 9], [10, 1, 0, 5, 6], [10, 1, 0, 5, 6], EMPTY, EMPTY]
    assert isinstance(again.traces, tuple) and [part.shape[0] for part in again.traces] == [2, 1, 2]


def test_chunks_without_trace_links_join_without_them() -> None:
    joined = WindowResults.concat([_chunk([1], None, None), _chunk([2], None, None)])
    assert joined.trace_rows is None and joined.traces is None and joined.trace_entries() is None
