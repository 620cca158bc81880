"""event_fields against a plain Python reading of the same documents."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.event_fields import event_fields

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
)
DOCS = st.one_of(
    st.dictionaries(st.sampled_from(["k", "ts", "a", "b", "x"]), SCALARS, max_size=5),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=3),
)


def reference(docs: list[Any], fields: tuple[str, ...], epoch_ms: bool) -> tuple[Any, ...] | None:
    """What the decoder's fast path reads, written out plainly: None where it gives up."""
    keys, times, numbers = [], [], {name: [] for name in fields}
    for doc in docs:
        if type(doc) is not dict or "k" not in doc or "ts" not in doc:
            return None
        key, ts = doc["k"], doc["ts"]
        if type(key) not in (str, int):
            return None
        keys.append(key if type(key) is str else str(key))
        if epoch_ms and (type(ts) is not int or not -(2**63) <= ts < 2**63):
            return None
        times.append(ts)
        for name in fields:
            value = doc.get(name)
            if value is not None and type(value) not in (int, float):
                return None
            try:
                numbers[name].append(math.nan if value is None else float(value))
            except OverflowError:
                return None
    return keys, times, numbers


@settings(max_examples=400, deadline=None)
@given(docs=st.lists(DOCS, max_size=6), fields=st.sampled_from([(), ("a",), ("a", "b")]), epoch_ms=st.booleans())
def test_fields_match_a_plain_reading(docs: list[Any], fields: tuple[str, ...], epoch_ms: bool) -> None:
    got = event_fields(docs, "k", "ts", fields, epoch_ms)
    expected = reference(docs, fields, epoch_ms)
    if expected is None:
        assert got is None
        return
    assert got is not None
    keys, times, numbers = got
    assert keys == expected[0]
    if epoch_ms:
        assert isinstance(times, np.ndarray) and times.dtype == np.int64 and times.tolist() == expected[1]
    else:
        assert times == expected[1] and all(a is b for a, b in zip(times, expected[1]))
    assert list(numbers) == list(fields)
    for name in fields:
        np.testing.assert_array_equal(numbers[name], np.asarray(expected[2][name], dtype=np.float64))


def test_well_formed_events_give_their_columns() -> None:
    docs = [
        {"k": "a", "ts": 1_700_000_000_000, "a": 2},
        {"k": 7, "ts": 1_700_000_000_001, "a": None},
        {"k": "c", "ts": 5},
    ]
    keys, times, numbers = event_fields(docs, "k", "ts", ("a",), True)  # type: ignore[misc]
    assert keys == ["a", "7", "c"]
    assert times.tolist() == [1_700_000_000_000, 1_700_000_000_001, 5]  # type: ignore[union-attr]
    assert numbers["a"][0] == 2.0 and math.isnan(numbers["a"][1]) and math.isnan(numbers["a"][2])
