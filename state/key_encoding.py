"""Byte layout of RocksDB keys and values for window state.

Pane keys sort by window, then pane start, then event key::

    b"P" | window index (1 byte) | pane start + 2**63 (8 bytes, big-endian) | key (UTF-8)

so the panes of one window are contiguous and ordered by time, and a range of
closed panes is one contiguous key range. Metadata keys are ``b"M" + name``.
Pane values are a format version byte followed by the JSON list of the pane's
per-column states.
"""

from __future__ import annotations

from typing import Any

import orjson

from state.errors import StateError

PANE_PREFIX = b"P"
META_PREFIX = b"M"
VALUE_VERSION = 1
_BIAS = 1 << 63


def pane_key(window_index: int, pane_start: int, key: bytes) -> bytes:
    """The RocksDB key of one pane."""
    return pane_keys(window_index, [pane_start], [key])[0]


def pane_keys(window_index: int, pane_starts: list[int], keys: list[bytes]) -> list[bytes]:
    """The RocksDB keys of many panes of one window: ``pane_key`` of each (pane start, key) pair."""
    prefix = window_prefix(window_index)
    return [prefix + (start + _BIAS).to_bytes(8, "big") + key for start, key in zip(pane_starts, keys)]


def window_prefix(window_index: int) -> bytes:
    """The key prefix shared by every pane of one window."""
    return PANE_PREFIX + bytes((window_index,))


def parse_pane_key(raw: bytes) -> tuple[int, int, bytes]:
    """``(window index, pane start, key)`` of a pane key."""
    if len(raw) < 10 or raw[:1] != PANE_PREFIX:
        raise StateError(f"stored key {raw[:24]!r} is not a pane key; the state directory may be damaged.")
    return raw[1], int.from_bytes(raw[2:10], "big") - _BIAS, raw[10:]


def meta_key(name: str) -> bytes:
    """The RocksDB key of a metadata entry."""
    return META_PREFIX + name.encode()


def encode_values(panes: list[list[Any]]) -> list[bytes]:
    """Encode each pane's column states (the form ``decode_value`` reads)."""
    version, dumps = bytes((VALUE_VERSION,)), orjson.dumps
    return [version + dumps(states) for states in panes]


def decode_value(raw: bytes) -> list[Any]:
    """Decode one pane's column states, refusing unknown format versions."""
    if not raw or raw[0] != VALUE_VERSION:
        version = raw[0] if raw else None
        raise StateError(
            f"stored pane state has format version {version}, this Winnow reads version {VALUE_VERSION}; "
            "restore it with the Winnow release that wrote it or start from empty state."
        )
    decoded: list[Any] = orjson.loads(raw[1:])
    return decoded


def decode_values(raws: list[bytes]) -> list[list[Any]]:
    """Decode many panes' column states with one JSON parse."""
    if any(not raw or raw[0] != VALUE_VERSION for raw in raws):
        return [decode_value(raw) for raw in raws]  # raises on the first bad version, naming it
    decoded: list[list[Any]] = orjson.loads(b"[" + b",".join([raw[1:] for raw in raws]) + b"]")
    return decoded
