"""JSON encoding of result values: the bulk paths write what ``format_number`` writes value by value."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from jobs.records import format_number, values_json
from windows.results import WindowResults

COLUMNS = {
    "all integers": [1.0, -0.0, 3.0, 999_999_999_999_999.0],
    "no integer": [1.5, 2.25, -0.1, 1e-300],
    "mixed": [1.0, 2.5, 3.0],
    "NaN among integers": [1.0, np.nan, 2.0],
    "NaN only": [np.nan],
    "beyond 1e15": [1e15, 1e16, 2.0],
    "at 1e15 and below": [1e15, 2.0, 999_999_999_999_999.0],
    "int64 column": np.array([0, -5, 2**53], dtype=np.int64),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_values_are_written_as_format_number_writes_each_one(name: str) -> None:
    column = np.asarray(COLUMNS[name])
    n = column.shape[0]
    nothing = np.zeros(n, dtype=np.int64)
    chunk = WindowResults("w", 0, True, nothing, nothing, nothing, nothing, {"v": column, "n": np.arange(n)})
    expected = [
        '{"v":%s,"n":%d}' % (str(int(v)) if column.dtype.kind == "i" else format_number(v), i)
        for i, v in enumerate(column.tolist())
    ]
    written = values_json(chunk)
    assert written == expected
    for text in written:
        orjson.loads(text)  # valid JSON


def test_a_single_column_is_written_as_format_number_writes_it() -> None:
    column = np.array([1.0, 2.5, np.nan])
    nothing = np.zeros(3, dtype=np.int64)
    chunk = WindowResults("w", 0, True, nothing, nothing, nothing, nothing, {"v": column})
    assert values_json(chunk) == ['{"v":1}', '{"v":2.5}', '{"v":null}']
