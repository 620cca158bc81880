"""Decisions from emitted results: once per rule and window, and the trace fields they carry."""

from __future__ import annotations

from dataclasses import replace
from hashlib import blake2b

import numpy as np
import orjson
import pytest

from jobs.decisions import RuleSet
from jobs.pipeline import JobRunner
from jobs.spec import parse_job_spec
from windows.pane_state import NO_SEQ
from windows.results import WindowResults

JOB = """
name: j
source: {topic: t, key: k, timestamp: ts}
windows:
  w: {type: tumbling, size: 10ms, emit: update, aggregate: {n: count}}
rules:
"""
SPEC = parse_job_spec(JOB + '  - {name: any, window: w, when: "n >= 1", action: log}\n')
KEYS = ["a", "b", "c", "d", "ключ-" + "x" * 200]  # the last one: not ASCII, and over one BLAKE2b block
KEY_TEXT = [key.encode() for key in KEYS]
KEY_JSON = [orjson.dumps(key) for key in KEYS]


def _chunk(key_ids: list[int], *, final: bool, end: int = 10, links: np.ndarray | None = None) -> WindowResults:
    n = len(key_ids)
    values: dict[str, np.ndarray] = {"n": np.ones(n)}
    at = np.full(n, end, dtype=np.int64)
    ids = np.asarray(key_ids, dtype=np.int64)
    rows = None if links is None else np.arange(n, dtype=np.int64)
    return WindowResults("w", 0, final, ids, np.zeros(n, dtype=np.int64), at, at, values, trace_rows=rows, traces=links)


def _decide(rules: RuleSet, chunk: WindowResults) -> list[dict[str, object]]:
    made = rules.decide(chunk, 0, KEY_TEXT, KEY_JSON)
    if made is None:
        return []
    decided, positions = made
    assert positions.tolist() == sorted(positions.tolist())  # in result order
    assert decided.key_ids.tolist() == chunk.key_ids[positions].tolist()  # each decision's own result
    assert decided.key_ids.tolist() == [
        KEY_TEXT.index(orjson.loads(line)["key"].encode()) for line in decided.lines.records()
    ]
    return [orjson.loads(line) for line in decided.lines.records()]


def test_a_window_decides_once_even_when_its_finals_come_in_two_chunks() -> None:
    rules = RuleSet(SPEC.name, SPEC.rules)
    fired = _decide(rules, _chunk([0, 1], final=False))  # updates of a and b fire
    # the finals of both windows (same end) come in two chunks of one batch: neither fires again
    fired += _decide(rules, _chunk([0], final=True))
    fired += _decide(rules, _chunk([1], final=True))
    assert [(d["key"], d["final"]) for d in fired] == [("a", False), ("b", False)]
    # a later window of the same keys decides again
    assert [d["key"] for d in _decide(rules, _chunk([0, 1], final=True, end=20))] == ["a", "b"]


def _entry(trace: int, seq: int) -> list[int]:
    return [seq, seq, 1000 + trace, trace, trace + 7]  # ts, seq, origin, trace high and low halves


def _hex(trace: int) -> str:
    return f"{trace:016x}{trace + 7:016x}"


def test_a_decision_carries_its_newest_trace_and_the_other_distinct_ones_it_links() -> None:
    empty = [NO_SEQ] * 5
    rows = [
        [_entry(1, 9), _entry(2, 8), _entry(3, 7), _entry(4, 6)],  # four distinct traces
        [_entry(1, 9), _entry(1, 8), _entry(2, 7), _entry(2, 6)],  # repeats of the newest and of a link
        [_entry(5, 9), empty, _entry(6, 7), _entry(5, 6)],  # a gap, then a link and the newest again
        [empty, empty, empty, empty],  # no trace known
    ]
    rules = RuleSet(SPEC.name, SPEC.rules)
    decided = _decide(rules, _chunk([0, 1, 2, 3], final=False, links=np.asarray(rows, dtype=np.int64)))
    fields = [(d["trace_id"], d["trace_links"], d["origin_at"]) for d in decided]
    assert fields == [
        (_hex(1), [_hex(2), _hex(3), _hex(4)], 1001),
        (_hex(1), [_hex(2)], 1001),
        (_hex(5), [_hex(6)], 1005),
        (None, [], None),
    ]
    assert decided[0]["traceparent"] == f"00-{_hex(1)}-{decided[0]['id'][:16]}-01"


def test_a_decision_on_a_result_whose_traces_were_not_kept_carries_none_and_the_others_theirs() -> None:
    # the engine keeps trace entries only for the results a rule may fire on: rows point into them or hold -1
    traces = np.asarray([[_entry(3, 9)], [_entry(4, 8)]], dtype=np.int64)
    chunk = replace(_chunk([0, 1, 2], final=False), trace_rows=np.asarray([1, -1, 0]), traces=traces)
    decided = _decide(RuleSet(SPEC.name, SPEC.rules), chunk)
    assert [(d["key"], d["trace_id"], d["origin_at"]) for d in decided] == [
        ("a", _hex(4), 1004),
        ("b", None, None),
        ("c", _hex(3), 1003),
    ]
    past = replace(_chunk([0], final=False), trace_rows=np.asarray([2]), traces=traces)
    with pytest.raises(IndexError, match="decision 0 points at trace entry 2, past the 2 given"):
        RuleSet(SPEC.name, SPEC.rules).decide(past, 0, KEY_TEXT, KEY_JSON)


def test_the_results_a_rule_may_fire_on_are_those_meeting_any_of_its_windows_conditions() -> None:
    both = parse_job_spec(
        JOB + '  - {name: big, window: w, when: "n >= 3", action: alert}\n'
        '  - {name: small, window: w, when: "n < 2", action: log}\n'
    ).rules
    rules = RuleSet(SPEC.name, both)
    values = {"n": np.asarray([1.0, 2.0, 3.0, 4.0])}
    may = rules.may_fire("w", values, 4)
    assert may is not None and may.tolist() == [True, False, True, True]
    assert rules.may_fire("other", values, 4) is None  # no rule reads it: no trace is kept


def test_a_decision_id_is_blake2b_of_job_rule_window_key_and_bounds() -> None:
    rules = RuleSet(SPEC.name, SPEC.rules)
    decided = _decide(rules, _chunk([0, 4], final=True, end=-20))
    for decision in decided:
        text = f"j\x1fany\x1fw\x1f{decision['key']}\x1f{decision['start']}\x1f{decision['end']}".encode()
        assert decision["id"] == blake2b(text, digest_size=16).hexdigest()
    assert [d["key"] for d in decided] == [KEYS[0], KEYS[4]]
    assert decided[0]["id"] != decided[1]["id"]


def test_trace_halves_with_the_top_bit_set_are_written_as_unsigned_hex() -> None:
    entry = [1, 1, 0, -1, -(2**63)]  # ts, seq, no origin, trace high and low halves
    rules = RuleSet(SPEC.name, SPEC.rules)
    (decided,) = _decide(rules, _chunk([2], final=False, links=np.asarray([[entry]], dtype=np.int64)))
    assert decided["trace_id"] == "f" * 16 + "8" + "0" * 15
    assert decided["origin_at"] is None  # origin 0: unknown


def test_decisions_of_several_rules_come_in_result_order_then_rule_order() -> None:
    big = parse_job_spec(JOB + '  - {name: big, window: w, when: "n >= 2", action: alert}\n').rules
    ids = np.array([0, 1, 2], dtype=np.int64)
    at = np.array([10, 11, 12], dtype=np.int64)
    chunk = WindowResults("w", 0, False, ids, np.zeros(3, dtype=np.int64), at, at, {"n": np.array([1.0, 2.0, 3.0])})
    made = RuleSet(SPEC.name, big + SPEC.rules).decide(chunk, 0, KEY_TEXT, KEY_JSON)  # big first, then any
    assert made is not None
    decided, positions = made
    assert positions.tolist() == [0, 1, 1, 2, 2]  # the result each decision was made on
    lines = [orjson.loads(line) for line in decided.lines.records()]
    expected = [("a", "any"), ("b", "big"), ("b", "any"), ("c", "big"), ("c", "any")]
    assert [(line["key"], line["rule"]) for line in lines] == expected
    assert decided.key_ids.tolist() == [0, 1, 1, 2, 2]
    assert decided.emitted_at.tolist() == [line["emitted_at"] for line in lines] == [10, 11, 11, 12, 12]


def test_fired_marks_follow_renumbered_keys() -> None:
    rules = RuleSet(SPEC.name, SPEC.rules)
    assert [d["key"] for d in _decide(rules, _chunk([0, 1], final=False))] == ["a", "b"]
    assert sorted(rules.key_ids_in_use().tolist()) == [0, 1]
    rules.keys_renumbered(np.asarray([2, 3], dtype=np.int64))  # a and b are now ids 2 and 3
    assert sorted(rules.key_ids_in_use().tolist()) == [2, 3]
    # the finals of the marked windows, under their new ids, make no decision; a key now at id 0 does
    assert [d["key"] for d in _decide(rules, _chunk([2, 3, 0], final=True))] == ["a"]


class _Collected:
    """An output sink that keeps what it is handed, in order."""

    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []  # results and decisions, in the order they came

    def results(self, partition, emitted_at, key_ids, lines, *, final) -> None:  # type: ignore[no-untyped-def]
        self.lines += [{"kind": "result", **orjson.loads(line)} for line in lines.records()]

    def decisions(self, partition, decisions) -> None:  # type: ignore[no-untyped-def]
        self.lines += [{"kind": "decision", **orjson.loads(line)} for line in decisions.lines.records()]

    def late(self, records) -> None:  # type: ignore[no-untyped-def]
        pass

    def rejected(self, partition, rejected, lines) -> None:  # type: ignore[no-untyped-def]
        pass


def test_a_window_updated_and_closed_in_one_batch_decides_once_at_its_first_update() -> None:
    spec = parse_job_spec(
        "name: j\nsource: {topic: t, key: k, timestamp: ts}\n"
        "windows:\n  w: {type: tumbling, size: 10ms, grace: 0ms, emit: update, update_interval: 0,\n"
        "     aggregate: {n: count}}\n"
        "  s: {type: sliding, size: 5ms, grace: 0ms, emit: final, aggregate: {n: count}}\nrules:\n"
        '  - {name: two, window: w, when: "n >= 2", action: log}\n'
    )
    events = [(1_700_000_000_000 + t, key) for t, key in [(0, "a"), (3, "a"), (5, "a"), (12, "b"), (25, "a")]]
    raws = [orjson.dumps({"k": key, "ts": ts}) for ts, key in events]
    sink = _Collected()
    runner = JobRunner(spec, sink)
    runner.process(raws, list(range(len(raws))), partition=0)
    decisions = [line for line in sink.lines if line["kind"] == "decision"]
    # a's first window reaches n = 2 at its second update and is final once b moves stream time past it
    # (in the same batch): one decision, on the update, right after that update's result line
    assert [(d["key"], d["start"], d["final"], d["values"]) for d in decisions] == [
        ("a", 1_700_000_000_000, False, {"n": 2})
    ]
    where = sink.lines.index(decisions[0])
    before = sink.lines[where - 1]
    assert (before["kind"], before["window"], before["final"], before["values"]) == ("result", "w", False, {"n": 2})
    finals = [line for line in sink.lines if line["kind"] == "result" and line["window"] == "w" and line["final"]]
    assert [(f["key"], f["values"]) for f in finals][:1] == [("a", {"n": 3})]
    assert sink.lines.index(finals[0]) > where
    assert runner.stats.decisions == 1
