"""scan_fields against orjson.loads + event_fields over the same bytes: the same answer, or None."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.event_fields import event_fields
from connectors.event_lines import EventLines
from connectors.event_scan import line_spans, scan_fields
from connectors.key_table import KeyTable

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["k", "ts", "a", "b", "x", "é", "a\u0000", "kk"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
    max_leaves=6,
)
DOCS = st.one_of(
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6),
    st.fixed_dictionaries(
        {"k": st.one_of(st.text(max_size=4), st.integers(-(2**64), 2**64)), "ts": st.integers(-(2**64), 2**64)},
        optional={"a": SCALARS, "b": SCALARS, "x": VALUES},
    ),
    VALUES,
)


def encode(doc: Any, style: int) -> bytes:
    """``doc`` in one of several valid JSON spellings: compact UTF-8, escaped ASCII, spaced out."""
    if style == 0:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    if style == 1:
        return json.dumps(doc).encode()  # non-ASCII as \u escapes (surrogate pairs above U+FFFF)
    return (" \t" + json.dumps(doc, ensure_ascii=False, indent=1, separators=(" , ", " : ")) + "\r\n").encode()


def reference(raws: list[bytes], fields: tuple[str, ...], max_bytes: int = 1 << 20) -> Any:
    """The decoder's orjson path: None where it gives up."""
    if any(len(raw) > max_bytes for raw in raws):
        return None
    try:
        docs = [orjson.loads(raw) for raw in raws]
    except orjson.JSONDecodeError:
        return None
    return event_fields(docs, "k", "ts", fields, True)


def spans_of(raws: list[bytes]) -> EventLines:
    """``raws`` as spans of one buffer, with bytes between them that a scan reading past a span would trip on."""
    data, starts, ends = b"", [], []
    for raw in raws:
        data += b'"}],x'
        starts.append(len(data))
        data += raw
        ends.append(len(data))
    data += b'"}],x'
    return EventLines(data, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64))


def assert_same_or_declined(raws: list[bytes], fields: tuple[str, ...]) -> Any:
    got = scan_fields(raws, "k", "ts", fields, 1 << 20)
    spanned = scan_fields(spans_of(raws), "k", "ts", fields, 1 << 20)
    assert (got is None) == (spanned is None)
    if got is not None and spanned is not None:  # the same events read in place
        assert spanned[0] == got[0] and spanned[1].tolist() == got[1].tolist()
        for name in fields:
            np.testing.assert_array_equal(spanned[2][name], got[2][name])
    expected = reference(raws, fields)
    if expected is None:
        assert got is None, raws
        return None
    if got is None:
        return None
    assert got[0] == expected[0]
    assert got[1].dtype == np.int64 and got[1].tolist() == expected[1].tolist()
    assert list(got[2]) == list(fields)
    for name in fields:
        np.testing.assert_array_equal(got[2][name], expected[2][name])  # NaN where NaN; -0.0 == 0.0 though
        assert np.signbit(got[2][name]).tolist() == np.signbit(expected[2][name]).tolist()
    assert got[3] is None  # no key table: every key a string
    assert_keys_looked_up(raws, fields, expected[0])
    return got


def assert_keys_looked_up(raws: list[bytes], fields: tuple[str, ...], keys: list[str]) -> None:
    """Scanned with a key table holding every other key: ids of the keys it holds, strings of the others."""
    table = KeyTable()
    for key in keys[::2]:
        if table.lookup(key.encode()) < 0:
            table.add(key.encode())
    for events in (raws, spans_of(raws)):
        got = scan_fields(events, "k", "ts", fields, 1 << 20, table)
        assert got is not None
        expected_ids = [table.lookup(key.encode()) for key in keys]
        assert got[3] is not None and got[3].tolist() == expected_ids
        assert got[0] == [None if at >= 0 else key for key, at in zip(keys, expected_ids)]


@settings(max_examples=500, deadline=None)
@given(
    docs=st.lists(DOCS, min_size=1, max_size=4),
    style=st.integers(0, 2),
    fields=st.sampled_from([(), ("a",), ("a", "b")]),
)
def test_scan_agrees_with_orjson_or_declines(docs: list[Any], style: int, fields: tuple[str, ...]) -> None:
    assert_same_or_declined([encode(doc, style) for doc in docs], fields)


@settings(max_examples=500, deadline=None)
@given(
    doc=st.fixed_dictionaries({"k": st.text(max_size=4), "ts": st.integers(0, 2**40)}, optional={"a": VALUES}),
    position=st.integers(0, 10_000),
    byte=st.integers(0, 255),
    how=st.sampled_from(["replace", "insert", "delete"]),
)
@example(doc={"k": "é", "ts": 1}, position=7, byte=0xA9, how="insert")  # a stray continuation byte
@example(doc={"k": "x", "ts": 1}, position=0, byte=0xEF, how="insert")  # the start of a byte order mark
def test_damaged_bytes_are_declined_when_orjson_refuses_them(
    doc: dict[str, Any], position: int, byte: int, how: str
) -> None:
    raw = bytearray(encode(doc, 0))
    at = position % (len(raw) + 1)
    if how == "replace" and at < len(raw):
        raw[at] = byte
    elif how == "insert":
        raw.insert(at, byte)
    elif at < len(raw):
        del raw[at]
    assert_same_or_declined([bytes(raw)], ("a",))


DECIMALS = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.integers(1, 10**25).map(str)),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=22).map(lambda d: "." + d)),
    st.one_of(st.just(""), st.integers(-340, 340).map(lambda e: f"e{e}"), st.integers(0, 30).map(lambda e: f"E+{e}")),
)


@settings(max_examples=2000, deadline=None)
@given(text=DECIMALS)
@example(text="9007199254740993")  # 2**53 + 1: rounds to even
@example(text="0.1")
@example(text="-0.0")
@example(text="123456789012345678")  # 18 digits: still read as an integer
@example(text="1e22")  # the largest exact power of ten
@example(text="8.98846567431158e307")
@example(text="2.2250738585072011e-308")
def test_numbers_read_as_orjson_reads_them(text: str) -> None:
    raw = b'{"k":"a","ts":1,"a":%s}' % text.encode()
    got = assert_same_or_declined([raw], ("a",))
    if abs(float(text)) < 1e300 and len(text) < 20:
        assert got is not None, text  # plain numbers are read, not declined


@given(key=st.integers(-(10**18) + 1, 10**18 - 1), ts=st.integers(-(10**18) + 1, 10**18 - 1))
def test_integer_keys_and_timestamps_of_up_to_18_digits_are_read(key: int, ts: int) -> None:
    assert assert_same_or_declined([b'{"k":%d,"ts":%d}' % (key, ts)], ()) is not None


def test_the_sample_logs_good_events_are_read_without_declining() -> None:
    with gzip.open(ROOT / "data" / "sample" / "api-events.jsonl.gz", "rb") as handle:
        raws = handle.read().splitlines()
    fields = ("bytes", "latency_ms")

    def orjson_path(batch: list[bytes]) -> Any:
        try:
            return event_fields([orjson.loads(raw) for raw in batch], "client_id", "ts", fields, True)
        except orjson.JSONDecodeError:
            return None

    good = [raw for raw in raws if orjson_path([raw]) is not None]
    assert 29_000 < len(good) < len(raws)  # the log holds some bad events on purpose
    got, expected = scan_fields(good, "client_id", "ts", fields, 1 << 20), orjson_path(good)
    assert got is not None
    assert got[0] == expected[0] and got[1].tolist() == expected[1].tolist()
    for name in fields:
        np.testing.assert_array_equal(got[2][name], expected[2][name])
    assert all(scan_fields([raw], "client_id", "ts", fields, 1 << 20) is None for raw in set(raws) - set(good))


def test_what_the_scan_leaves_to_orjson() -> None:
    def scanned(raw: bytes, fields: tuple[str, ...] = ("a",), max_bytes: int = 1 << 20) -> Any:
        return scan_fields([raw], "k", "ts", fields, max_bytes)

    plain = b'{"k":"key","ts":1700000000000,"a":2.5,"x":{"y":[1,"\\u00e9",null]}}'
    assert scanned(plain) is not None
    assert orjson.loads(b'{"k":"k\\u00e9","ts":1}') and scanned(b'{"k":"k\\u00e9","ts":1}') is None  # escaped key
    for name in (b"\\u006b", b"\\u0061", b"t\\u0073"):  # an escaped member name could spell a field's
        assert scanned(b'{"k":"a","ts":1,"%s":5}' % name) is None
    assert scanned(b'{"k":"a","ts":1,"a":1,"a":2}') is None  # orjson keeps the last of a repeated field
    assert scanned(b'{"k":"a","ts":1,"k":"b"}') is None
    assert scanned(b'{"k":"a","ts":1234567890123456789}') is None  # 19 digits
    assert scanned(b'{"k":"a","ts":1,"a":1e400}') is None  # infinity: orjson refuses it
    assert scanned(b'{"k":"a","ts":1,"x":"\\ud800"}') is None  # a lone surrogate
    assert scanned(b'{"k":"a","ts":1,"x":' + b"[" * 70 + b"]" * 70 + b"}") is None  # deeper than 64
    assert scanned(b'{"k":"a","ts":1,"x":' + b"[" * 60 + b"]" * 60 + b"}") is not None
    assert scanned(b'{"k":"a","ts":1}', max_bytes=10) is None
    assert scanned(b'{"k":"a","ts":1.0}') is None and scanned(b'{"k":true,"ts":1}') is None
    assert scanned(b'{"k":"a","ts":1,"a":"2"}') is None and scanned(b'{"k":"a","ts":1,"a":false}') is None
    for broken in (b'{"k":"a","ts":1}x', b'{"k":"a","ts":01}', b'{"k":"a","ts":1,}', b'{"k":"a\x01","ts":1}', b""):
        assert scanned(broken) is None
    # orjson refuses control characters, overlong forms, surrogates and code points beyond U+10FFFF anywhere
    for text in (b"\x1f", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80"):
        raw = b'{"k":"a","ts":1,"x":"%s"}' % text
        assert reference([raw], ()) is None and scanned(raw) is None, raw
    for text in (b"\x7f", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf"):
        raw = b'{"k":"a","ts":1,"x":"%s"}' % text  # the edges that are allowed
        assert reference([raw], ()) is not None and scanned(raw) is not None, raw
    keys, stamps, numbers, key_ids = scanned(b'{"k":-0,"ts":-5,"a":null}')
    assert keys == ["0"] and stamps.tolist() == [-5] and np.isnan(numbers["a"][0]) and key_ids is None


@given(
    st.binary(max_size=80)
    | st.lists(st.sampled_from([b"\n", b"\r", b" ", b"\t", b"\x0b", b"\x0c", b"x", b"{}"])).map(b"".join)
)
def test_line_spans_are_the_split_lines_without_carriage_returns(data: bytes) -> None:
    starts, ends, blank = line_spans(data)
    lines = data.split(b"\n")
    assert [data[a:b] for a, b in zip(starts.tolist(), ends.tolist())] == [line.rstrip(b"\r") for line in lines]
    assert blank.tolist() == [not line.strip() for line in lines]
    assert starts.tolist()[1:] == [i + 1 for i, byte in enumerate(data) if byte == 10]


def test_integer_keys_are_looked_up_by_their_decimal_text() -> None:
    table = KeyTable()
    table.add(b"5")
    table.add(b"-7")
    raws = [b'{"k":5,"ts":1}', b'{"k":"5","ts":2}', b'{"k":-7,"ts":3}', b'{"k":70,"ts":4}', b'{"k":-0,"ts":5}']
    got = scan_fields(raws, "k", "ts", (), 1 << 20, table)
    assert got is not None
    assert got[3] is not None and got[3].tolist() == [0, 0, 1, -1, -1]
    assert got[0] == [None, None, None, "70", "0"]
