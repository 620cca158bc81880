"""Event decoding: good events become columns, every bad one is rejected with a reason."""

from __future__ import annotations

import orjson
import pytest

from connectors.event_decoding import DecodeOptions, EventDecoder, TimeFormat

OPTIONS = DecodeOptions("client", "ts", numeric_fields=("bytes",), distinct_fields=("path",), max_event_bytes=200)
GOOD = {"client": "c1", "ts": 1_767_225_600_000, "bytes": 10, "path": "/a"}


def line(**change: object) -> bytes:
    event = {**GOOD, **change}
    return orjson.dumps({k: v for k, v in event.items() if v is not ...})


def test_a_clean_batch_decodes_to_columns() -> None:
    decoded, rejected = EventDecoder(OPTIONS).decode([line(), line(client=7, bytes=None, path=...)], [1, 2])
    assert rejected == []
    assert decoded.keys == ["c1", "7"]
    assert decoded.ts.tolist() == [1_767_225_600_000] * 2
    assert decoded.numbers["bytes"][0] == 10 and decoded.numbers["bytes"][1] != decoded.numbers["bytes"][1]
    assert decoded.hashes["path"][0] != 0 and decoded.hashes["path"][1] == 0


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b'{"client": "c1", "ts": 1767225600000', "malformed_json", "malformed JSON"),
        (b'{"client": "c\xff", "ts": 1767225600000}', "not_utf8", "not valid UTF-8"),
        (b"[1, 2]", "not_object", "expected a JSON object"),
        (line(client=...), "missing_key", "missing key field 'client'"),
        (line(client=[1]), "bad_key", "must be a string or an integer, got array"),
        (line(ts=...), "missing_timestamp", "missing timestamp field 'ts'"),
        (line(ts="yesterday"), "bad_timestamp", "must be integer epoch milliseconds, got string"),
        (line(ts=12_345), "implausible_timestamp", "before 2000-01-01"),
        (line(bytes="many"), "bad_field", "field 'bytes' must be a number, got string"),
        (line(bytes=2**60), "bad_field", "beyond"),
        (b'{"client": "c1", "ts": 1767225600000, "bytes": NaN}', "malformed_json", "malformed JSON"),
        (b'{"client": "c1", "ts": 1767225600000, "bytes": Infinity}', "malformed_json", "malformed JSON"),
        (line(path={"x": 1}), "bad_field", "field 'path' must be a string, number or boolean"),
        (line(path="x" * 300), "too_large", "over the limit of 200 bytes"),
    ],
)
def test_bad_events_are_rejected_with_a_reason_and_nothing_else_is_lost(raw: bytes, kind: str, reason: str) -> None:
    decoded, rejected = EventDecoder(OPTIONS).decode([line(), raw, line(client="c2")], [10, 11, 12])
    assert decoded.keys == ["c1", "c2"] and decoded.seq.tolist() == [10, 12]
    assert len(rejected) == 1
    assert rejected[0].seq == 11 and rejected[0].raw == raw and rejected[0].kind == kind
    assert reason in rejected[0].reason


@pytest.mark.parametrize(
    ("fmt", "value", "ms"),
    [
        (TimeFormat.EPOCH_S, 1_767_225_600.5, 1_767_225_600_500),
        (TimeFormat.RFC3339, "2026-01-01T00:00:00.250Z", 1_767_225_600_250),
        (TimeFormat.RFC3339, "2026-01-01T01:00:00+01:00", 1_767_225_600_000),
    ],
)
def test_timestamp_formats(fmt: TimeFormat, value: object, ms: int) -> None:
    decoder = EventDecoder(DecodeOptions("client", "ts", timestamp_format=fmt))
    decoded, rejected = decoder.decode([line(ts=value)], [1])
    assert rejected == [] and decoded.ts.tolist() == [ms]


def test_rfc3339_without_offset_is_rejected() -> None:
    decoder = EventDecoder(DecodeOptions("client", "ts", timestamp_format=TimeFormat.RFC3339))
    _, rejected = decoder.decode([line(ts="2026-01-01T00:00:00")], [1])
    assert "no time zone offset" in rejected[0].reason


def test_the_distinct_value_hash_cache_holds_only_each_values_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # the cache keeps up to a million encoded values: orjson's bytes would keep a 4 KiB buffer behind each
    import tracemalloc

    from connectors import event_decoding
    from connectors.event_decoding import stable_hash

    monkeypatch.setattr(event_decoding, "_hash_cache", {})  # empty, whatever earlier tests cached
    values = [f"value-{i}" for i in range(2_000)]
    tracemalloc.start()
    try:
        hashes = [stable_hash(value) for value in values]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(set(hashes)) == len(values) and stable_hash(values[0]) == hashes[0]
    assert held < len(values) * 1_024, f"{held / len(values):.0f} bytes a cached value"
