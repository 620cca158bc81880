"""BLAKE2b-128 in C (decision ids, trace ids of events without a traceparent), one message at a time or eight
in vector lanes: the digest hashlib gives, at every block boundary."""

from __future__ import annotations

from hashlib import blake2b

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.blake2b import digest_128, digests_128


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 255, 256, 257, 1000])
def test_blake2b_matches_hashlib_around_block_boundaries(size: int) -> None:
    data = bytes(range(256)) * 4
    assert digest_128(data[:size]) == blake2b(data[:size], digest_size=16).digest()


@given(st.binary(max_size=600))
def test_blake2b_matches_hashlib_on_any_bytes(data: bytes) -> None:
    assert digest_128(data) == blake2b(data, digest_size=16).digest()


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_many_messages_hashed_eight_at_a_time_match_hashlib(messages: list[bytes]) -> None:
    # one-block messages share vector lanes; longer ones, anywhere in the list, are hashed alone
    assert digests_128(messages) == [blake2b(m, digest_size=16).digest() for m in messages]


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 17])
def test_many_messages_of_every_one_block_length_match_hashlib(count: int) -> None:
    data = bytes(range(256))
    messages = [data[(7 * i) % 100 : (7 * i) % 100 + (i * 37) % 129] for i in range(count)] + [data[:128], b""]
    assert digests_128(messages) == [blake2b(m, digest_size=16).digest() for m in messages]
