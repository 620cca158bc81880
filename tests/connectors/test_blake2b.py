"""BLAKE2b-128 in C (decision ids, trace ids of events without a traceparent): the digest hashlib gives,
at every block boundary."""

from __future__ import annotations

from hashlib import blake2b

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.blake2b import digest_128


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 255, 256, 257, 1000])
def test_blake2b_matches_hashlib_around_block_boundaries(size: int) -> None:
    data = bytes(range(256)) * 4
    assert digest_128(data[:size]) == blake2b(data[:size], digest_size=16).digest()


@given(st.binary(max_size=600))
def test_blake2b_matches_hashlib_on_any_bytes(data: bytes) -> None:
    assert digest_128(data) == blake2b(data, digest_size=16).digest()
