"""The radix sort of packed sort keys gives what ``np.sort`` gives, for every width and length."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from windows.radix_sort import sort_packed


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 63).flatmap(lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, 2**bits - 1)))))
def test_any_values_of_a_width_come_out_as_np_sort_gives_them(case: tuple[int, list[int]]) -> None:
    bits, values = case
    packed = np.asarray(values, dtype=np.int64)
    expected = np.sort(packed)
    sort_packed(packed, bits)
    assert packed.tolist() == expected.tolist()


@pytest.mark.parametrize("bits", [1, 11, 12, 13, 24, 25, 37, 48, 61, 63])
@pytest.mark.parametrize("n", [2, 100, 5_000, 70_000])
def test_long_arrays_of_every_digit_split_sort_as_np_sort(bits: int, n: int) -> None:
    rng = np.random.default_rng(bits * 1_000 + n)
    packed = rng.integers(0, 2**bits, n, dtype=np.int64, endpoint=False) if bits < 63 else rng.integers(0, 2**63 - 1, n)
    expected = np.sort(packed)
    sort_packed(packed, bits)
    assert np.array_equal(packed, expected)


def test_digits_every_value_shares_are_passed_over_and_the_values_still_sort() -> None:
    """High bits all equal (a narrow column in a wide word), then values already sorted and reversed."""
    rng = np.random.default_rng(3)
    shared = (np.int64(5) << 50) | rng.integers(0, 2**20, 10_000)
    for packed in (shared, np.arange(10_000, dtype=np.int64), np.arange(10_000, dtype=np.int64)[::-1].copy()):
        expected = np.sort(packed)
        sort_packed(packed, 53)
        assert np.array_equal(packed, expected)


def test_values_outside_the_width_are_refused_and_left_as_they_were() -> None:
    packed = np.asarray([3, 9, 16, 1], dtype=np.int64)
    with pytest.raises(ValueError, match=r"key 16 at row 2 is outside \[0, 2\*\*4\)"):
        sort_packed(packed, 4)
    with pytest.raises(ValueError, match=r"key -1 at row 1 is outside"):
        sort_packed(np.asarray([0, -1], dtype=np.int64), 63)
    with pytest.raises(ValueError, match="0 to 63 bits wide, not 64"):
        sort_packed(packed, 64)
    assert packed.tolist() == [3, 9, 16, 1]


def test_empty_single_and_zero_width_arrays_are_left_as_they_are() -> None:
    for values, bits in (([], 10), ([7], 3), ([0, 0, 0], 0)):
        packed = np.asarray(values, dtype=np.int64)
        sort_packed(packed, bits)
        assert packed.tolist() == values
