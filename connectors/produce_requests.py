"""Produce requests encoded with one join of their parts.

aiokafka encodes a request field by field, each level joining what the level
below returned: a partition's record batch is copied into ``length + bytes``,
that into the partition list, then into the topic, the topic list and the
request. A streaming worker sends about a kilobyte of output per input event,
and those five copies of every output byte took a third of its producer
thread. Encoded here, a produce request is the list of its parts (numbers,
names and the record batches themselves) joined once: the same bytes, one copy.

aiokafka's connection then copied each request twice more: it sends
``size + (header + request.encode())``. The encoding a produce request gets
here is therefore a ``RequestFrame``, its parts not yet joined, which takes the
header and then the size in front without copying (``__radd__``) and joins
everything when the size arrives: the bytes the connection writes, copied once.
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol import produce
from aiokafka.protocol.types import Array, Bytes, Int32, Schema

from connectors.errors import ConnectorError

#: The produce request versions aiokafka has (it sends v0 to v7).
PRODUCE_REQUESTS = tuple(getattr(produce, f"ProduceRequest_v{version}") for version in range(9))


def _parts(kind: Any, value: Any, out: list[Any]) -> None:
    """Append the encoded parts of ``value``, of protocol type ``kind``, to ``out``."""
    if isinstance(kind, Schema):
        for field, item in zip(kind.fields, value, strict=True):
            _parts(field, item, out)
    elif isinstance(kind, Array):
        if value is None:
            out.append(Int32.encode(-1))
            return
        out.append(Int32.encode(len(value)))
        for item in value:
            _parts(kind.array_of, item, out)
    elif kind is Bytes:
        if value is None:
            out.append(Int32.encode(-1))
        else:
            out.append(Int32.encode(len(value)))
            out.append(value)
    else:
        out.append(kind.encode(value))


def _request_parts(request: Any, out: list[Any]) -> list[Any]:
    schema = request.SCHEMA
    _parts(schema, [request.__dict__[name] for name in schema.names], out)
    return out


class RequestFrame:
    """A request's encoded parts, to go on the wire as ``size + (header + frame)`` (what aiokafka's
    ``AIOKafkaConnection.send`` writes): the header and the size are put in front without a copy, and the
    size, the last of them, gets the whole frame back as bytes, joined once."""

    __slots__ = ("_length", "_parts", "_prefixes")

    def __init__(self, request: Any) -> None:
        self._parts = _request_parts(request, [b"", b""])  # room for the size and the header
        self._length = sum(len(part) for part in self._parts)
        self._prefixes = 0

    def __len__(self) -> int:
        return self._length

    def __radd__(self, prefix: bytes) -> RequestFrame | bytes:
        if not isinstance(prefix, bytes):
            return NotImplemented
        if self._prefixes == 0:  # the request header
            self._parts[1] = prefix
            self._length += len(prefix)
            self._prefixes = 1
            return self
        if self._prefixes == 1 and len(prefix) == 4:  # the size, which ends the frame
            self._parts[0] = prefix
            self._prefixes = 2
            return b"".join(self._parts)
        raise ConnectorError(
            "a produce request was framed in a way this Winnow does not know (aiokafka sends size + header + "
            "request); check the aiokafka version against pyproject.toml."
        )


def _framed(request: Any) -> RequestFrame:
    return RequestFrame(request)


def encode_produce_requests_in_one_join() -> None:
    """From now on, every produce request in this process is encoded as a ``RequestFrame``: aiokafka's
    connection writes it with its header and size copied together, once (the same bytes as aiokafka's)."""
    for request in PRODUCE_REQUESTS:
        request.encode = _framed
