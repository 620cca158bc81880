"""Produce requests joined once give the bytes aiokafka's own field-by-field encoding gives, in every version."""

from __future__ import annotations

import pytest
from aiokafka.protocol.struct import Struct

from connectors.produce_requests import PRODUCE_REQUESTS, encode_in_one_join


@pytest.mark.parametrize("request_class", PRODUCE_REQUESTS, ids=lambda c: c.__name__)
def test_one_join_is_aiokafkas_encoding(request_class) -> None:
    topics = [
        ("results", [(0, b"\x00" * 70 + b"batch one"), (3, memoryview(b"batch two, a view"))]),
        ("d\u00e9cisions", [(1, b"")]),
        ("empty", []),
    ]
    fields = {"required_acks": -1, "timeout": 40_000, "topics": topics}
    if "transactional_id" in request_class.SCHEMA.names:
        fields["transactional_id"] = None
    request = request_class(**fields)
    expected = Struct.encode(request)  # aiokafka's own, whatever the class's encode is now
    assert encode_in_one_join(request) == expected
    assert len(expected) > 100
    if "transactional_id" in request_class.SCHEMA.names:
        named = request_class(**{**fields, "transactional_id": "tx-1"})
        assert encode_in_one_join(named) == Struct.encode(named)
