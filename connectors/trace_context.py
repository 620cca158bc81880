"""W3C trace context for events: trace ids from ``traceparent`` headers, or derived from the event itself.

A trace id is 128 bits; the engine carries it as two signed 64-bit halves.
An event that arrives without a valid ``traceparent`` gets a trace id derived
from its bytes (BLAKE2b), so the same event gets the same id in replay and in
streaming.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from connectors.traceparent_parsing import parse_traceparents
from windows.events import Int64Array

_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_bytes(traceparent: bytes | None, raw: bytes) -> bytes:
    """The 16-byte trace id of an event: from its ``traceparent`` when valid, otherwise derived from ``raw``."""
    if traceparent is not None:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match is not None and match.group(1) != b"0" * 32:
            return bytes.fromhex(match.group(1).decode())
    return hashlib.blake2b(raw, digest_size=16).digest()


def trace_halves(traceparents: Sequence[bytes | None] | None, raws: Sequence[bytes]) -> tuple[Int64Array, Int64Array]:
    """Trace ids of events as (high, low) signed 64-bit halves: ``trace_id_bytes`` of each event, with the
    usual plain 55-byte ``traceparent`` values read in C (``traceparent_parsing.pyx``)."""
    if traceparents is None:  # every id derived from the event's bytes
        return _halves(b"".join(hashlib.blake2b(raw, digest_size=16).digest() for raw in raws))
    high = np.zeros(len(raws), dtype=np.int64)
    low = np.zeros(len(raws), dtype=np.int64)
    parsed = np.zeros(len(raws), dtype=bool)
    parse_traceparents(list(traceparents), high, low, parsed.view(np.uint8))
    rest = np.flatnonzero(~parsed).tolist()  # the others: an odd traceparent (decided one by one), or none
    if rest:
        high[rest], low[rest] = _halves(b"".join(trace_id_bytes(traceparents[i], raws[i]) for i in rest))
    return high, low


def _halves(ids: bytes) -> tuple[Int64Array, Int64Array]:
    """16-byte trace ids, one after another, as (high, low) signed 64-bit halves."""
    pairs = np.frombuffer(ids, dtype=">i8").reshape(-1, 2).astype(np.int64)
    return pairs[:, 0].copy(), pairs[:, 1].copy()
