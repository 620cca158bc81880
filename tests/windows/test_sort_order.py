"""Packed sort orders against numpy's own: the same permutation, ties kept in row order, whichever path is
taken (packed numbers, or ``np.lexsort`` when the columns' ranges do not fit or the rows are few)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.sort_order import PACKED_FROM_ROWS, first_of_each, lex_order, stable_order

_SPANS = st.sampled_from([1, 2, 7, 1000, 1 << 20, 1 << 40, 1 << 62])  # values per column


@settings(max_examples=150, deadline=None)
@given(
    st.integers(PACKED_FROM_ROWS - 2, 3 * PACKED_FROM_ROWS),
    st.lists(st.tuples(_SPANS, st.integers(-(1 << 62), 1 << 62)), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_lex_order_is_lexsort(rows, columns, seed) -> None:
    rng = np.random.default_rng(seed)
    arrays = [
        (rng.integers(0, span, rows) + min(offset, (1 << 62) - span)).astype(np.int64) for span, offset in columns
    ]
    expected = np.lexsort(arrays)
    got = lex_order(arrays)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_packed_path_is_taken_and_stable_on_ties() -> None:
    rows = 4 * PACKED_FROM_ROWS
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 5, rows)  # few keys: long runs of ties, kept in row order
    times = 1_767_225_600_000 + rng.integers(0, 3, rows)  # large values, small range: packs
    flags = rng.integers(0, 2, rows).astype(bool)
    order = lex_order((flags, times, keys))
    np.testing.assert_array_equal(order, np.lexsort((flags, times, keys)))
    np.testing.assert_array_equal(stable_order(keys), np.argsort(keys, kind="stable"))


def test_columns_too_wide_for_one_number_sort_as_fewer_packed_words_or_as_they_are() -> None:
    rows = 2 * PACKED_FROM_ROWS
    rng = np.random.default_rng(11)
    # three 30-bit columns and a flag pack into two words; a column spanning all of int64 packs into none
    wide = [rng.integers(0, 1 << 30, rows) for _ in range(3)] + [rng.integers(0, 2, rows).astype(bool)]
    np.testing.assert_array_equal(lex_order(wide), np.lexsort(wide))
    extremes = rng.choice(np.asarray([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max]), rows)
    few = rng.integers(0, 3, rows)
    np.testing.assert_array_equal(lex_order((few, extremes)), np.lexsort((few, extremes)))
    np.testing.assert_array_equal(lex_order((extremes, few, few)), np.lexsort((extremes, few, few)))


@pytest.mark.parametrize("rows", [0, 1, 5, PACKED_FROM_ROWS])
def test_short_and_float_columns(rows) -> None:
    rng = np.random.default_rng(rows)
    ints = rng.integers(-3, 3, rows)
    floats = rng.normal(size=rows)
    np.testing.assert_array_equal(lex_order((ints,)), np.lexsort((ints,)))
    np.testing.assert_array_equal(lex_order((floats, ints)), np.lexsort((floats, ints)))


@pytest.mark.parametrize("values", [2, 200, 60_000])  # radix on 8 bits, on 16 bits, and two columns on 16 bits
def test_narrow_columns_sort_by_radix_in_the_same_order(values) -> None:
    rows = 3 * PACKED_FROM_ROWS
    rng = np.random.default_rng(values)
    narrow = rng.integers(-5, values - 5, rows)
    np.testing.assert_array_equal(stable_order(narrow), np.argsort(narrow, kind="stable"))
    if values == 200:
        other = rng.integers(0, 200, rows)
        np.testing.assert_array_equal(lex_order((other, narrow)), np.lexsort((other, narrow)))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3 * PACKED_FROM_ROWS), st.sampled_from([3, 300, 70_000, 1 << 40]), st.integers(0, 2**32 - 1))
def test_first_of_each_is_unique_with_first_positions(rows, values, seed) -> None:
    column = np.random.default_rng(seed).integers(-values, values, rows)
    distinct, first = first_of_each(column)
    expected_distinct, expected_first = np.unique(column, return_index=True)
    np.testing.assert_array_equal(distinct, expected_distinct)
    np.testing.assert_array_equal(first, expected_first)
