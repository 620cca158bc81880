"""Raw events as spans of one buffer."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.event_lines import EventLines
from connectors.event_scan import scan_fields
from connectors.trace_ids import trace_ids


def spans(*pairs: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray([a for a, _ in pairs], dtype=np.int64), np.asarray([b for _, b in pairs], dtype=np.int64)


def test_events_are_their_spans_and_slices_share_the_buffer() -> None:
    lines = EventLines(b'{"a":1}\r\n\n{"b":2}', *spans((0, 7), (10, 17)))
    assert len(lines) == 2 and lines[0] == b'{"a":1}' and lines[1] == b'{"b":2}' and lines[-1] == b'{"b":2}'
    assert list(lines) == [b'{"a":1}', b'{"b":2}']
    tail = lines[1:]
    assert list(tail) == [b'{"b":2}'] and tail.data is lines.data
    assert lines == EventLines.of([b'{"a":1}', b'{"b":2}']) != EventLines.of([b'{"a":1}'])


def test_spans_outside_the_buffer_or_backwards_are_refused() -> None:
    with pytest.raises(ValueError, match="outside their 4-byte buffer"):
        EventLines(b"abcd", *spans((0, 5)))
    with pytest.raises(ValueError, match="outside their 4-byte buffer or end before they start"):
        EventLines(b"abcd", *spans((3, 2)))
    with pytest.raises(ValueError, match="outside"):
        EventLines(b"abcd", *spans((-1, 2)))
    with pytest.raises(ValueError, match="one end per start"):
        EventLines(b"abcd", np.zeros(2, dtype=np.int64), np.zeros(1, dtype=np.int64))


def test_the_spans_cannot_change_once_checked() -> None:
    starts, ends = spans((0, 2), (2, 4))
    lines = EventLines(b"abcd", starts, ends)
    ends[1] = 400  # the caller's array: the lines kept a copy
    assert list(lines) == [b"ab", b"cd"]
    with pytest.raises(ValueError, match="read-only"):
        lines.ends[1] = 400
    with pytest.raises(AttributeError):
        lines.data = b"x"  # type: ignore[misc]


def test_a_read_only_view_of_an_array_someone_writes_is_copied_too() -> None:
    owner_starts, owner_ends = spans((0, 2))
    starts, ends = owner_starts[:], owner_ends[:]
    starts.flags.writeable = ends.flags.writeable = False  # read-only views; their owners are not
    lines = EventLines(b"{}", starts, ends)
    owner_ends[0] = 1 << 20  # would send the C scans a megabyte past a 2-byte buffer
    assert list(lines) == [b"{}"] and lines.ends.tolist() == [2]
    tail = lines[0:]  # a slice of the lines' own arrays: nothing can write those, so no copy
    assert np.shares_memory(tail.ends, lines.ends)


def test_the_c_scans_take_events_as_a_list_or_as_spans_and_refuse_any_other_form() -> None:
    events = (b'{"k":"a","ts":1}',)  # a tuple: neither a list nor EventLines
    with pytest.raises(TypeError, match="events come as a list of bytes or as EventLines, not as tuple"):
        scan_fields(events, "k", "ts", (), 1_000)
    zeros = np.zeros(1, dtype=np.int64)
    with pytest.raises(TypeError, match="events come as a list of bytes or as EventLines, not as tuple"):
        trace_ids(None, events, zeros, zeros.copy(), np.zeros(1, dtype=np.uint8))
    lines = EventLines.of(list(events))
    assert scan_fields(lines, "k", "ts", (), 1_000) == scan_fields(list(events), "k", "ts", (), 1_000)
