"""JSON lines of results: the number format of values, and the fields every result carries."""

from __future__ import annotations

import gc
import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.line_blocks import LineBlock
from connectors.line_gather import write_merged
from jobs.line_encoding import DecisionRows, ResultRows
from jobs.records import result_lines
from windows.results import WindowResults


def expected_number(value: float) -> str:
    """The documented format: integral values below 1e15 without a fraction, NaN as null, others as repr."""
    if math.isnan(value):
        return "null"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _values(columns: dict[str, np.ndarray]) -> list[str]:
    n = len(next(iter(columns.values())))
    ids = np.zeros(n, dtype=np.int64)
    chunk = WindowResults("w", 0, True, ids, ids, ids, ids, columns)
    lines = result_lines(chunk, "j", 0, [b'"k"']).records()
    return [line.split(b',"values":', 1)[1][:-1].decode() for line in lines]


COLUMNS = {
    "all integers": [1.0, -0.0, 3.0, 999_999_999_999_999.0, -999_999_999_999_999.0],
    "no integer": [1.5, 2.25, -0.1, 1e-300, 5e-324],
    "mixed": [1.0, 2.5, 3.0],
    "NaN among integers": [1.0, np.nan, 2.0],
    "NaN only": [np.nan],
    "at and beyond 1e15": [1e15, -1e15, 1e16, 2.0, 1.7976931348623157e308],
}


@pytest.mark.parametrize("name", COLUMNS)
def test_values_are_written_in_the_documented_number_format(name: str) -> None:
    column = np.asarray(COLUMNS[name])
    n = column.shape[0]
    written = _values({"v": column, "n": np.arange(n)})
    assert written == ['{"v":%s,"n":%d}' % (expected_number(v), i) for i, v in enumerate(column.tolist())]


def test_integer_columns_are_written_as_integers_beyond_2_to_the_53() -> None:
    assert _values({"v": np.array([0, -5, 2**53 + 1, -(2**63)], dtype=np.int64)}) == [
        '{"v":0}',
        '{"v":-5}',
        '{"v":9007199254740993}',
        '{"v":-9223372036854775808}',
    ]


@given(
    st.lists(
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-1000, 1000), st.sampled_from([9, 10, 99, 100, -10])),
        min_size=1,
        max_size=20,
    )
)
def test_every_integer_and_bound_is_written_as_its_decimal_text(values: list[int]) -> None:
    column = np.array(values, dtype=np.int64)
    chunk = WindowResults("w", 0, True, np.zeros(len(values), dtype=np.int64), column, column, column, {"v": column})
    lines = result_lines(chunk, "j", 0, [b'"k"']).records()
    for line, value in zip(lines, values):
        assert line.endswith(b'"start":%d,"end":%d,"emitted_at":%d,"values":{"v":%d}}' % ((value,) * 4))


@given(st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=1, max_size=20))
def test_every_finite_value_reads_back_as_the_same_double(values: list[float]) -> None:
    written = _values({"v": np.asarray(values, dtype=np.float64)})
    for text, value in zip(written, values):
        assert text == '{"v":%s}' % expected_number(value)
        back = orjson.loads(text)["v"]
        assert (back is None and math.isnan(value)) or back == value


def test_repeated_and_colliding_values_are_written_as_their_own_text() -> None:
    # texts of recent doubles are kept in a table of 4,096 entries by their bits: 20,000 distinct values share
    # entries, and each written again after others took its entry must still be its own text
    rng = np.random.default_rng(5)
    distinct = rng.normal(size=20_000) * 10.0 ** rng.integers(-30, 30, 20_000)
    column = np.concatenate([distinct, distinct[::-1], distinct[rng.integers(0, 20_000, 5_000)]])
    written = _values({"v": column})
    assert written == ['{"v":%s}' % expected_number(v) for v in column.tolist()]


def test_a_result_line_carries_its_job_window_key_bounds_and_no_internal_values() -> None:
    ids = np.array([1, 0], dtype=np.int64)
    starts, ends, at = np.array([0, 10]), np.array([10, 20]), np.array([15, 25])
    links = np.zeros((2, 1, 5), dtype=np.int64)
    chunk = WindowResults(
        'per "minute"',
        2,
        False,
        ids,
        starts,
        ends,
        at,
        {"n": np.array([3.0, 4.0])},
        trace_rows=np.arange(2),
        traces=links,
    )
    block = result_lines(chunk, "jöb", 3, [b'"a"', orjson.dumps("b\n")])
    assert block.data.count(b"\n") == len(block) == 2  # each line ends in the only break it holds
    lines = block.records()
    assert block.data == b"".join(line + b"\n" for line in lines)
    assert [orjson.loads(line) for line in lines] == [
        {
            "job": "jöb",
            "window": 'per "minute"',
            "partition": 3,
            "final": False,
            "key": key,
            "start": start,
            "end": end,
            "emitted_at": emitted,
            "values": {"n": n},
        }
        for key, start, end, emitted, n in [("b\n", 0, 10, 15, 3), ("a", 10, 20, 25, 4)]
    ]


def test_an_unregistered_key_id_is_an_error_not_a_crash() -> None:
    ids = np.array([5], dtype=np.int64)
    chunk = WindowResults("w", 0, True, ids, ids, ids, ids, {"n": np.ones(1)})
    with pytest.raises(IndexError, match="key id 5"):
        result_lines(chunk, "j", 0, [b'"a"'])


def test_unsigned_values_are_written_as_integers_and_too_large_ones_refused() -> None:
    ids = np.array([0], dtype=np.int64)
    small = WindowResults("w", 0, True, ids, ids, ids, ids, {"n": np.array([7], dtype=np.uint64)})
    assert orjson.loads(result_lines(small, "j", 0, [b'"a"']).records()[0])["values"] == {"n": 7}
    huge = WindowResults("w", 0, True, ids, ids, ids, ids, {"n": np.array([2**64 - 1], dtype=np.uint64)})
    with pytest.raises(ValueError, match=r'result column "n" holds 18446744073709551615, above the largest'):
        result_lines(huge, "j", 0, [b'"a"'])


@given(
    rows=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    buffer_size=st.sampled_from([64, 1 << 20]),
    stretch=st.sampled_from([1, 5, 4096]),
)
def test_result_and_decision_rows_written_into_a_merge_are_the_lines_they_write_at_once(
    rows: int, seed: int, buffer_size: int, stretch: int
) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 3, rows).astype(np.int64)
    starts = np.sort(rng.integers(0, 10_000, rows)).astype(np.int64)
    values = [rng.normal(size=rows), rng.integers(0, 99, rows).astype(np.int64)]
    key_json, key_text = [b'"a"', b'"b"', orjson.dumps("c\n")], [b"a", b"b", b"c\n"]
    traces = np.full((2, 3, 5), np.iinfo(np.int64).min, dtype=np.int64)
    traces[0, :2] = [[5, 1, 7, 11, 12], [4, 0, 0, 13, 14]]  # (ts, seq, origin, trace high, trace low)
    trace_rows = rng.integers(-1, 2, rows).astype(np.int64)
    results = ResultRows(b'{"job":"j",', key_json, keys, starts, starts + 10, starts + 12, [b'"x"', b'"n"'], values)
    decisions = DecisionRows(
        b'{"rule":"r",', b"j\x1fr\x1fw\x1f", key_text, key_json, keys, starts, starts + 10, starts + 12,
        [b'"x"', b'"n"'], values, trace_rows, traces,
    )  # fmt: skip
    eager = [LineBlock(*source.lines()).records() for source in (results, decisions)]
    # every row of both, interleaved at random, the first and last rows of each left out
    picks = [(s, r) for s in (0, 1) for r in range(1, rows - 1)]
    order = rng.permutation(len(picks))
    written: list[bytes] = []
    write_merged(
        [(results, 1, max(rows - 2, 0)), (decisions, 1, max(rows - 2, 0))],
        np.asarray([picks[i][0] for i in order], dtype=np.int64),
        np.asarray([picks[i][1] - 1 for i in order], dtype=np.int64),
        lambda view: written.append(bytes(view)),
        buffer_size,
        stretch,
    )
    assert b"".join(written) == b"".join(eager[picks[i][0]][picks[i][1]] + b"\n" for i in order)
    assert decisions.origins.tolist() == [7 if at == 0 else 0 for at in trace_rows.tolist()]


def test_decision_rows_without_trace_links_have_no_origins_and_count_the_trace_entries_they_hold() -> None:
    ids = np.zeros(3, dtype=np.int64)
    args = (b'{"rule":"r",', b"p", [b"a"], [b'"a"'], ids, ids, ids, ids, [b'"n"'], [np.ones(3)])
    none_wide = DecisionRows(*args, np.zeros(3, dtype=np.int64), np.zeros((5, 0, 5), dtype=np.int64))
    assert none_wide.origins.tolist() == [0, 0, 0]
    assert all(b'"trace_id":null' in line for line in LineBlock(*none_wide.lines()).records())
    few = DecisionRows(*args, np.zeros(3, dtype=np.int64), np.full((1, 4, 5), -1, dtype=np.int64))
    many = DecisionRows(*args, np.zeros(3, dtype=np.int64), np.full((30_000, 4, 5), -1, dtype=np.int64))
    # a held row counts its share of the chunk's trace entries, which it keeps alive until written
    assert many.row_bytes - few.row_bytes == 30_000 * 4 * 5 * 8 // 3 - 1 * 4 * 5 * 8 // 3


@given(rows=st.integers(1, 30), cuts=st.lists(st.integers(0, 12), max_size=4), seed=st.integers(0, 2**32 - 1))
def test_decision_rows_read_trace_entries_in_parts_as_they_read_them_whole(
    rows: int, cuts: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    entries = rng.integers(1, 1_000, (12, 3, 5)).astype(np.int64)
    entries[rng.random(12) < 0.3, 0, 1] = np.iinfo(np.int64).min  # some kept no trace
    parts = tuple(np.split(entries, sorted(cuts)))  # empty parts among them, when cuts repeat or reach the ends
    keys = rng.integers(0, 2, rows).astype(np.int64)
    trace_rows = rng.integers(-1, 12, rows).astype(np.int64)
    args = (b'{"rule":"r",', b"p", [b"a", b"b"], [b'"a"', b'"b"'], keys, keys, keys, keys, [b'"n"'], [np.ones(rows)])
    whole, split = DecisionRows(*args, trace_rows, entries), DecisionRows(*args, trace_rows, parts)
    assert LineBlock(*split.lines()).records() == LineBlock(*whole.lines()).records()
    assert split.origins.tolist() == whole.origins.tolist()
    # parts that must be copied to be read (not in C order), their only references dropped: the rows keep the
    # copies they point into
    copied = DecisionRows(*args, trace_rows, tuple(np.asfortranarray(part) for part in parts))
    gc.collect()
    _ = [np.ones(64) for _ in range(1_000)]
    assert LineBlock(*copied.lines()).records() == LineBlock(*whole.lines()).records()
    with pytest.raises(IndexError, match="decision 0 points at trace entry 12, past the 12 given"):
        DecisionRows(*args, np.full(rows, 12, dtype=np.int64), parts)
    with pytest.raises(ValueError, match=r"trace entries of shape \(1, 2, 5\) for"):
        DecisionRows(*args, trace_rows, (entries, np.zeros((1, 2, 5), dtype=np.int64)))
