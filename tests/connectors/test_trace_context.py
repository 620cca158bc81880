"""Trace ids read in bulk equal those read one event at a time, whatever the traceparent looks like."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.event_lines import EventLines
from connectors.trace_context import trace_halves, trace_id_bytes
from connectors.trace_ids import trace_ids


def _ids(high: np.ndarray, low: np.ndarray) -> list[bytes]:
    return [
        h.to_bytes(8, "big", signed=True) + lo.to_bytes(8, "big", signed=True)
        for h, lo in zip(high.tolist(), low.tolist())
    ]


@st.composite
def traceparents(draw: st.DrawFn) -> bytes | None:
    trace = draw(st.one_of(st.just("0" * 32), st.text("0123456789abcdefABCDEF", min_size=32, max_size=32)))
    value = f"00-{trace}-{draw(st.text('0123456789abcdef', min_size=16, max_size=16))}-01"
    shape = draw(st.sampled_from(["plain", "plain", "spaced", "broken", "short", "none", "junk"]))
    if shape == "spaced":
        return f" {value}\n".encode()
    if shape == "broken":  # one byte replaced: a non-hex digit, a missing dash, or still valid
        at = draw(st.integers(0, len(value) - 1))
        return (value[:at] + draw(st.sampled_from(["g", "-", "0", "A", " ", "é"])) + value[at + 1 :]).encode()
    if shape == "short":
        return value[:-1].encode()
    if shape == "none":
        return None
    if shape == "junk":
        return draw(st.binary(min_size=55, max_size=55))
    return value.encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(traceparents(), st.binary(max_size=300)), max_size=20))
def test_bulk_trace_ids_equal_the_one_at_a_time_definition(events: list[tuple[bytes | None, bytes]]) -> None:
    tps, raws = [tp for tp, _ in events], [raw for _, raw in events]
    high, low = trace_halves(tps, raws)
    expected = [trace_id_bytes(tp, raw) for tp, raw in events]
    got = [
        h.to_bytes(8, "big", signed=True) + lo.to_bytes(8, "big", signed=True)
        for h, lo in zip(high.tolist(), low.tolist())
    ]
    assert got == expected
    # the same events as spans of one buffer, with bytes between them that a hash past a span would take in
    data = b"".join(b"\n--" + raw for raw in raws)
    ends = np.cumsum([3 + len(raw) for raw in raws], dtype=np.int64)
    starts = ends - np.asarray([len(raw) for raw in raws], dtype=np.int64)
    in_place = trace_halves(tps, EventLines(data, starts, ends))
    assert in_place[0].tolist() == high.tolist() and in_place[1].tolist() == low.tolist()


def test_without_traceparents_every_id_is_derived_from_the_event_bytes() -> None:
    raws = [b'{"a":1}', b'{"a":2}']
    high, low = trace_halves(None, raws)
    digests = [hashlib.blake2b(raw, digest_size=16).digest() for raw in raws]
    assert [int.from_bytes(d[:8], "big", signed=True) for d in digests] == high.tolist()
    assert [int.from_bytes(d[8:], "big", signed=True) for d in digests] == low.tolist()
    assert high.dtype == low.dtype == np.int64


def test_a_valid_traceparent_gives_its_own_trace_id() -> None:
    tp = b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
    high, low = trace_halves([tp], [b"{}"])
    assert (high[0], low[0]) == (0x4BF92F3577B34DA6, np.uint64(0xA3CE929D0E0E4736).astype(np.int64))


def test_every_byte_of_a_traceparent_is_checked_as_the_one_at_a_time_definition_checks_it() -> None:
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    tps: list[bytes | None] = [
        (valid[:at] + replacement + valid[at + 1 :]).encode()
        for at in range(len(valid))
        for replacement in ["0", "F", "g", "-", " ", "\n", "\x00"]
    ]
    raws = [b"%d" % i for i in range(len(tps))]
    high, low = trace_halves(tps, raws)
    expected = [trace_id_bytes(tp, raw) for tp, raw in zip(tps, raws)]
    got = [
        h.to_bytes(8, "big", signed=True) + lo.to_bytes(8, "big", signed=True)
        for h, lo in zip(high.tolist(), low.tolist())
    ]
    assert got == expected


def test_the_loop_in_c_decides_plain_and_absent_traceparents_and_leaves_the_others() -> None:
    plain = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    tps = [plain, plain.upper(), b" " + plain[1:], plain[:-1], None, b"00-" + b"0" * 32 + plain[35:], b"x" * 55]
    raws = [b"%d" % i for i in range(len(tps))]
    n = len(tps)
    high, low, decided = np.full(n, 7, dtype=np.int64), np.full(n, 7, dtype=np.int64), np.zeros(n, dtype=np.uint8)
    trace_ids(tps, raws, high, low, decided)
    assert decided.tolist() == [1, 1, 0, 0, 1, 0, 0]
    assert _ids(high[:2], low[:2]) == [bytes.fromhex(plain[3:35].decode())] * 2
    assert _ids(high[4:5], low[4:5]) == [hashlib.blake2b(raws[4], digest_size=16).digest()]
    assert high[[2, 3, 5, 6]].tolist() == low[[2, 3, 5, 6]].tolist() == [7] * 4  # untouched
    with pytest.raises(ValueError, match="one output row per event"):
        trace_ids(tps, raws, high[:2], low, decided)
    with pytest.raises(ValueError, match="one traceparent per event"):
        trace_ids(tps[:2], raws, high, low, decided)


def test_without_traceparents_a_raw_that_is_not_bytes_is_left_to_the_one_at_a_time_definition() -> None:
    raws = [b'{"a":1}', bytearray(b'{"a":2}')]
    high, low = trace_halves(None, raws)  # type: ignore[arg-type]
    assert _ids(high, low) == [hashlib.blake2b(bytes(raw), digest_size=16).digest() for raw in raws]
