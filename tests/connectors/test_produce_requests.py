"""Produce requests joined once give the bytes aiokafka's own field-by-field encoding gives, in every version."""

from __future__ import annotations

import struct

import pytest
from aiokafka.protocol.struct import Struct

from connectors.errors import ConnectorError
from connectors.produce_requests import PRODUCE_REQUESTS, RequestFrame, encode_in_one_join


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


def test_a_frame_takes_header_and_size_in_front_as_aiokafkas_connection_sends_it() -> None:
    request = PRODUCE_REQUESTS[7](
        transactional_id=None, required_acks=-1, timeout=40_000, topics=[("results", [(2, b"\x01" * 300)])]
    )
    body = Struct.encode(request)
    header = b"\x00\x00\x00\x07\x00\x00\x00\x2a\x00\x03abc"
    message = header + RequestFrame(request)  # AIOKafkaConnection.send: header.encode() + request.encode()
    assert len(message) == len(header) + len(body)
    size = struct.pack(">i", len(message))
    frame = size + message
    assert isinstance(frame, bytes)
    assert frame == size + header + body


def test_a_frame_framed_some_other_way_is_an_error_not_wrong_bytes() -> None:
    request = PRODUCE_REQUESTS[3](transactional_id=None, required_acks=1, timeout=1_000, topics=[])
    message = b"header" + RequestFrame(request)
    with pytest.raises(ConnectorError, match="framed in a way"):
        b"a size of eight" + message
