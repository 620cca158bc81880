"""Pane puts written in C are byte for byte the keys and values ``key_encoding`` writes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.engine_state import _column_states
from state.key_encoding import VALUE_VERSION, decode_value, encode_values, pane_keys, window_prefix
from state.pane_encoding import delete_panes, put_panes
from tests.windows.engine_runner import to_batch, traced
from tests.windows.reference_model import Event
from tests.windows.test_engine_vs_reference import event_logs, window_specs
from windows.engine import PartitionEngine
from windows.pane_state import NO_SEQ

INT64 = st.integers(-(2**63), 2**63 - 1)


def _puts(
    prefix: bytes, starts: np.ndarray, keys: list[bytes], version: int, columns: list[np.ndarray | list[bytes]]
) -> list[tuple[bytes, bytes]]:
    """What ``put_panes`` hands a write batch, as a list; it counts their bytes right."""
    handed: list[tuple[bytes, bytes]] = []
    total = put_panes(lambda key, value: handed.append((key, value)), prefix, starts, keys, version, columns)
    assert total == sum(len(key) + len(value) for key, value in handed)
    return handed


def _deletes(prefix: bytes, starts: np.ndarray, keys: list[bytes]) -> list[bytes]:
    """What ``delete_panes`` hands a write batch, as a list; it counts their bytes right."""
    deleted: list[bytes] = []
    assert delete_panes(deleted.append, prefix, starts, keys) == sum(map(len, deleted))
    return deleted


def test_integers_at_every_change_of_digit_count_are_written_as_json_writes_them() -> None:
    # the C writer counts an integer's digits from its bit length and one comparison with a power of ten
    edges = {0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62)}
    for k in range(1, 19):
        for v in (10**k - 1, 10**k, 10**k + 1, 2**k * 3):
            edges |= {v, -v}
    for bits in range(64):
        edges |= {2**bits - 1 if bits else 0, min(2**bits, 2**63 - 1), -(2**bits)}
    counts = np.asarray(sorted(edges), dtype=np.int64)
    traces = np.repeat(counts[:, None, None], 5, axis=2)  # one trace entry per pane, each field the count
    traces[:, 0, 1] = np.where(counts == NO_SEQ, 0, counts)
    keys = [b"k"] * counts.shape[0]
    got = _puts(b"P\x00", np.zeros(counts.shape[0], dtype=np.int64), keys, VALUE_VERSION, [counts, traces])
    expected = encode_values([[int(c), [[int(v) for v in row[0]]]] for c, row in zip(counts, traces)])
    assert [value for _, value in got] == expected


@st.composite
def trace_rows(draw: st.DrawFn, panes: int) -> np.ndarray:
    """Trace rows with entries anywhere (absent ones too: seq NO_SEQ), any int64 in the other fields."""
    links = draw(st.integers(0, 4))
    rows = np.full((panes, links, 5), NO_SEQ, dtype=np.int64)
    for pane in range(panes):
        for link in range(links):
            if draw(st.booleans()):
                entry = draw(st.lists(INT64, min_size=5, max_size=5))
                entry[1] = draw(INT64.filter(lambda v: v != NO_SEQ))
                rows[pane, link] = entry
    return rows


@settings(max_examples=200, deadline=None)
@given(data=st.data(), panes=st.integers(0, 6), window=st.integers(0, 255))
def test_keys_and_values_match_the_python_encoding(data: st.DataObject, panes: int, window: int) -> None:
    starts = np.asarray(data.draw(st.lists(INT64, min_size=panes, max_size=panes)), dtype=np.int64)
    keys = data.draw(st.lists(st.binary(max_size=12), min_size=panes, max_size=panes))
    columns: list[np.ndarray | list[bytes]] = []
    states: list[list[object]] = [[] for _ in range(panes)]
    for kind in data.draw(st.lists(st.sampled_from(["count", "trace", "json"]), max_size=4)):
        if kind == "count":
            counts = data.draw(st.lists(INT64, min_size=panes, max_size=panes))
            columns.append(np.asarray(counts, dtype=np.int64))
            per_pane: list[object] = list(counts)
        elif kind == "trace":
            rows = data.draw(trace_rows(panes))
            columns.append(rows)
            per_pane = [[entry.tolist() for entry in row if entry[1] != NO_SEQ] for row in rows]
        else:
            per_pane = data.draw(
                st.lists(
                    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.lists(INT64)),
                    min_size=panes,
                    max_size=panes,
                )
            )
            columns.append([orjson.dumps(state) for state in per_pane])
        for pane, state in enumerate(per_pane):
            states[pane].append(state)
    got = _puts(window_prefix(window), starts, keys, VALUE_VERSION, columns)
    expected = list(zip(pane_keys(window, starts.tolist(), keys), encode_values(states)))
    assert got == expected
    assert [decode_value(value) for _, value in got] == states
    assert _deletes(window_prefix(window), starts, keys) == [key for key, _ in expected]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=window_specs(), events=event_logs(), links=st.sampled_from([0, 1, 3]))
def test_an_engine_s_panes_encode_as_their_snapshots(specs, events: list[Event], links: int) -> None:  # type: ignore[no-untyped-def]
    engine = PartitionEngine([replace(spec, trace_links=links) for spec in specs])
    engine.process(traced(events) if links else to_batch(events, ("v",)))
    for operator in engine.operators:
        table = operator.table
        live = np.sort(table.live_slots())
        keys = [str(key).encode() for key in table.key_ids[live].tolist()]
        columns = [_column_states(column, live) for column in table.aggregation.columns.values()]
        got = _puts(window_prefix(operator.index), table.panes[live], keys, VALUE_VERSION, columns)
        expected = zip(pane_keys(operator.index, table.panes[live].tolist(), keys), encode_values(table.snapshot(live)))
        assert got == list(expected)


def test_many_columns_are_written() -> None:
    counts = [np.arange(3, dtype=np.int64) * c for c in range(70)]
    got = _puts(window_prefix(1), np.arange(3, dtype=np.int64), [b"a", b"b", b"c"], VALUE_VERSION, counts)
    assert [decode_value(value) for _, value in got] == [[c * pane for c in range(70)] for pane in range(3)]


def test_bad_columns_are_refused_with_the_reason() -> None:
    starts = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match="put_panes takes one key per pane: 2 panes, 1 keys"):
        _puts(b"P\x00", starts, [b"a"], VALUE_VERSION, [])
    with pytest.raises(ValueError, match="an encoded column has 1 states for 2 panes"):
        _puts(b"P\x00", starts, [b"a", b"b"], VALUE_VERSION, [[b"1"]])
    with pytest.raises(TypeError, match="a column is int64 counts"):
        _puts(b"P\x00", starts, [b"a", b"b"], VALUE_VERSION, [np.zeros(2, dtype=np.float64)])
    with pytest.raises(TypeError, match="key 1 is not bytes"):
        _puts(b"P\x00", starts, [b"a", "b"], VALUE_VERSION, [])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="key 1 is not bytes"):
        _deletes(b"P\x00", starts, [b"a", "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="delete_panes takes one key per pane: 2 panes, 3 keys"):
        _deletes(b"P\x00", starts, [b"a", b"b", b"c"])
