"""Produce requests framed once give the bytes aiokafka's own encoding and connection give, in every version."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.protocol.struct import Struct

from connectors.errors import ConnectorError
from connectors.produce_requests import PRODUCE_REQUESTS, RequestFrame, encode_produce_requests_in_one_join


def _as_the_connection_sends(request: Any, header: bytes) -> bytes:
    """What aiokafka's ``AIOKafkaConnection.send`` writes for a request: size + (header + encoded request)."""
    message = header + request.encode()
    size = struct.pack(">i", len(message))
    return size + message


@pytest.mark.parametrize("request_class", PRODUCE_REQUESTS, ids=lambda c: c.__name__)
def test_a_framed_request_is_what_aiokafka_sends_in_every_version(request_class) -> None:
    topics = [
        ("results", [(0, b"\x00" * 70 + b"batch one"), (3, memoryview(b"batch two, a view"))]),
        ("d\u00e9cisions", [(1, b"")]),
        ("empty", []),
    ]
    fields = {"required_acks": -1, "timeout": 40_000, "topics": topics}
    if "transactional_id" in request_class.SCHEMA.names:
        fields["transactional_id"] = None
    header = b"\x00\x00\x00\x07\x00\x00\x00\x2a\x00\x03abc"
    requests = [request_class(**fields)]
    if "transactional_id" in request_class.SCHEMA.names:
        requests.append(request_class(**{**fields, "transactional_id": "tx-1"}))
    encode_produce_requests_in_one_join()  # as every writer does when it starts (idempotent)
    for request in requests:
        body = Struct.encode(request)  # aiokafka's own, whatever the class's encode is now
        assert len(body) > 100
        assert len(header + RequestFrame(request)) == len(header) + len(body)
        sent = _as_the_connection_sends(request, header)
        assert isinstance(sent, bytes)
        assert sent == struct.pack(">i", len(header) + len(body)) + header + body


def test_a_frame_framed_some_other_way_is_an_error_not_wrong_bytes() -> None:
    request = PRODUCE_REQUESTS[3](transactional_id=None, required_acks=1, timeout=1_000, topics=[])
    message = b"header" + RequestFrame(request)
    with pytest.raises(ConnectorError, match="framed in a way"):
        b"a size of eight" + message
