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

from connectors.event_lines import EventLines
from connectors.trace_ids import trace_ids
from windows.events import Int64Array

_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_bytes(traceparent: bytes | None, raw: bytes) -> bytes:
    """The 16-byte trace id of an event: from its ``traceparent`` when valid, otherwise derived from ``raw``."""
    if traceparent is not None:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match is not None and match.group(1) != b"0" * 32:
            return bytes.fromhex(match.group(1).decode())
    return hashlib.blake2b(raw, digest_size=16).digest()


def trace_halves(
    traceparents: Sequence[bytes | None] | None, raws: Sequence[bytes] | EventLines
) -> tuple[Int64Array, Int64Array]:
    """Trace ids of events as (high, low) signed 64-bit halves: ``trace_id_bytes`` of each event, computed
    in C (``trace_ids.pyx``) for plain 55-byte ``traceparent`` values and for events without one."""
    raw_list = raws if type(raws) is list or type(raws) is EventLines else list(raws)
    high = np.zeros(len(raw_list), dtype=np.int64)
    low = np.zeros(len(raw_list), dtype=np.int64)
    decided = np.zeros(len(raw_list), dtype=np.uint8)
    values = None if traceparents is None else traceparents if type(traceparents) is list else list(traceparents)
    trace_ids(values, raw_list, high, low, decided)
    rest = np.flatnonzero(decided == 0).tolist()  # an odd traceparent (decided one by one), or raw not bytes
    if rest:
        high[rest], low[rest] = _halves(
            b"".join(trace_id_bytes(None if values is None else values[i], raw_list[i]) for i in rest)
        )
    return high, low


def _halves(ids: bytes) -> tuple[Int64Array, Int64Array]:
    """16-byte trace ids, one after another, as (high, low) signed 64-bit halves."""
    pairs = np.frombuffer(ids, dtype=">i8").reshape(-1, 2).astype(np.int64)
    return pairs[:, 0].copy(), pairs[:, 1].copy()
