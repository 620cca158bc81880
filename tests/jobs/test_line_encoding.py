"""The C line writer's own BLAKE2b: the digest hashlib gives, at every block boundary."""

from __future__ import annotations

from hashlib import blake2b

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.line_encoding import blake2b_128


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 255, 256, 257, 1000])
def test_blake2b_matches_hashlib_around_block_boundaries(size: int) -> None:
    data = bytes(range(256)) * 4
    assert blake2b_128(data[:size]) == blake2b(data[:size], digest_size=16).hexdigest()


@given(st.binary(max_size=600))
def test_blake2b_matches_hashlib_on_any_bytes(data: bytes) -> None:
    assert blake2b_128(data) == blake2b(data, digest_size=16).hexdigest()
