"""Decode raw JSON events into columns, rejecting bad ones with a reason.

Decoding runs a vectorised fast path over a whole batch and falls back to
checking event by event only when something in the batch is off. The fast
path first scans the fields straight out of the JSON bytes in C
(``connectors.event_scan``, about a third of ``orjson.loads``'s time); when
the scan declines a batch (see that module) or the job needs more than it
reads, ``orjson.loads`` decodes the batch. Every rejected event keeps its
original bytes and its position in the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np
import orjson

from connectors.event_fields import event_fields
from connectors.event_lines import EventLines
from connectors.event_scan import scan_fields
from connectors.key_table import KeyTable
from windows.events import Float64Array, Int64Array

#: Events stamped before 2000-01-01T00:00:00Z are rejected as absurd.
MIN_TIMESTAMP_MS = 946_684_800_000
#: Larger magnitudes cannot be summed exactly; such values are rejected.
MAX_MAGNITUDE = float(2**53)


class TimeFormat(str, Enum):
    """How an event's timestamp is written."""

    EPOCH_MS = "epoch_ms"
    EPOCH_S = "epoch_s"
    RFC3339 = "rfc3339"


@dataclass(frozen=True)
class DecodeOptions:
    """What to read from each event and the limits to hold it to."""

    key_field: str
    timestamp_field: str
    timestamp_format: TimeFormat = TimeFormat.EPOCH_MS
    numeric_fields: tuple[str, ...] = ()
    distinct_fields: tuple[str, ...] = ()
    max_event_bytes: int = 1_048_576


@dataclass(frozen=True)
class Rejected:
    """An event that could not be used, with where it was and why."""

    seq: int
    raw: bytes
    reason: str
    kind: str = "invalid"


@dataclass(frozen=True)
class LateRecord:
    """An event late for every window it belongs to, encoded for output."""

    partition: int
    seq: int
    key_id: int
    line: bytes


@dataclass
class DecodedBatch:
    """Good events in source order: keys as strings, everything else as columns.

    Decoded with a key table (``EventDecoder.decode``), an event whose key the
    table holds may have its id in ``key_ids`` and None in ``keys``; every other
    event has its key's text in ``keys`` (and -1 in ``key_ids``, when there is
    such a column).
    """

    keys: list[str] | list[str | None]
    ts: Int64Array
    seq: Int64Array
    raws: list[bytes] | EventLines
    numbers: dict[str, Float64Array] = field(default_factory=dict)
    hashes: dict[str, Int64Array] = field(default_factory=dict)
    key_ids: Int64Array | None = None

    def __len__(self) -> int:
        return len(self.keys)


class _Bad(Exception):
    """One event's reason for rejection (internal to the slow path)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


_hash_cache: dict[bytes, int] = {}


def stable_hash(value: Any) -> int:
    """A process-independent, non-zero 64-bit hash of a JSON scalar (for distinct counts)."""
    encoded = orjson.dumps(value)
    cached = _hash_cache.get(encoded)
    if cached is not None:
        return cached
    digest = int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "little", signed=True) or 1
    if len(_hash_cache) < 1_000_000:
        _hash_cache[encoded.decode().encode()] = digest  # orjson's bytes keep a 4 KiB buffer; the copy does not
    return digest


class EventDecoder:
    """Turns raw event bytes into a ``DecodedBatch`` and a list of rejections."""

    def __init__(self, options: DecodeOptions) -> None:
        self.options = options

    def decode(
        self,
        raws: Sequence[bytes] | EventLines,
        seqs: Sequence[int] | Int64Array,
        key_table: KeyTable | None = None,
    ) -> tuple[DecodedBatch, list[Rejected]]:
        """Decode events ``raws`` (a sequence of bytes, or spans of one buffer) found at source positions
        ``seqs``; keys found in ``key_table`` may come as their ids (see ``DecodedBatch``)."""
        fast = self._fast(raws, seqs, key_table)
        if fast is not None:
            return fast, []
        return self._slow(raws, seqs)

    # ---- fast path: the whole batch at once ----------------------------------------------
    def _fast(
        self,
        raws: Sequence[bytes] | EventLines,
        seqs: Sequence[int] | Int64Array,
        key_table: KeyTable | None = None,
    ) -> DecodedBatch | None:
        o = self.options
        raws = raws if type(raws) is list or type(raws) is EventLines else list(raws)
        docs: list[Any] = []
        fields: tuple[list[str] | list[str | None], Int64Array | list[Any], dict[str, Float64Array]] | None = None
        key_ids: Int64Array | None = None
        if o.timestamp_format is TimeFormat.EPOCH_MS and not o.distinct_fields:  # no objects needed
            scanned = scan_fields(raws, o.key_field, o.timestamp_field, o.numeric_fields, o.max_event_bytes, key_table)
            if scanned is not None:
                scanned_keys, stamps, columns, key_ids = scanned
                fields = (scanned_keys, stamps, columns)
        if fields is None:
            if max(map(len, raws), default=0) > o.max_event_bytes:
                return None
            try:
                docs = [orjson.loads(raw) for raw in raws]
            except orjson.JSONDecodeError:
                return None
            fields = event_fields(
                docs, o.key_field, o.timestamp_field, o.numeric_fields, o.timestamp_format is TimeFormat.EPOCH_MS
            )
            if fields is None:
                return None
        keys, times, numbers = fields
        ts = self._fast_times(times)
        if ts is None:
            return None
        for column in numbers.values():
            if (np.abs(column) > MAX_MAGNITUDE).any():
                return None
        hashes: dict[str, Int64Array] = {}
        for name in o.distinct_fields:
            hashed = self._hash_column([doc.get(name) for doc in docs])
            if hashed is None:
                return None
            hashes[name] = hashed
        return DecodedBatch(
            keys=keys,
            ts=ts,
            seq=np.asarray(seqs, dtype=np.int64),
            raws=raws,
            numbers=numbers,
            hashes=hashes,
            key_ids=key_ids,
        )

    def _fast_times(self, times: Int64Array | list[Any]) -> Int64Array | None:
        fmt = self.options.timestamp_format
        try:
            if isinstance(times, np.ndarray):  # epoch milliseconds, read as integers by ``event_fields``
                ts = times
            elif fmt is TimeFormat.EPOCH_S:
                if set(map(type, times)) - {int, float}:
                    return None
                seconds = np.array(times, dtype=np.float64)
                if not np.isfinite(seconds).all() or (np.abs(seconds) > 1e13).any():
                    return None
                ts = np.rint(seconds * 1000.0).astype(np.int64)
            else:
                if set(map(type, times)) - {str}:
                    return None
                ts = np.array([_rfc3339_ms(t) for t in times], dtype=np.int64)
        except (OverflowError, ValueError, _Bad):
            return None
        if ts.shape[0] and ts.min() < MIN_TIMESTAMP_MS:
            return None
        return ts

    @staticmethod
    def _hash_column(values: list[Any]) -> Int64Array | None:
        if set(map(type, values)) - {str, int, float, bool, type(None)}:
            return None
        return np.array([0 if v is None else stable_hash(v) for v in values], dtype=np.int64)

    # ---- slow path: event by event, to find and explain the bad ones -----------------------
    def _slow(
        self, raws: Sequence[bytes] | EventLines, seqs: Sequence[int] | Int64Array
    ) -> tuple[DecodedBatch, list[Rejected]]:
        good_raws: list[bytes] = []
        good_seqs: list[int] = []
        rejected: list[Rejected] = []
        for raw, seq in zip(raws, np.asarray(seqs).tolist()):  # plain ints in the rejections
            try:
                self._check_one(raw)
            except _Bad as bad:
                rejected.append(Rejected(seq, raw, str(bad), bad.kind))
                continue
            good_raws.append(raw)
            good_seqs.append(seq)
        decoded = self._fast(good_raws, good_seqs)
        if decoded is None:  # every check passed one by one, so the batch must pass too
            raise AssertionError("event decoder fast path refused events its slow path accepted")
        return decoded, rejected

    def _check_one(self, raw: bytes) -> None:
        o = self.options
        if len(raw) > o.max_event_bytes:
            raise _Bad("too_large", f"event is {len(raw)} bytes, over the limit of {o.max_event_bytes} bytes")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as utf:
                raise _Bad("not_utf8", f"not valid UTF-8 (byte {utf.start})") from None
            raise _Bad("malformed_json", f"malformed JSON: {error}") from None
        if not isinstance(doc, dict):
            raise _Bad("not_object", f"expected a JSON object, got {type(doc).__name__}")
        if o.key_field not in doc or doc[o.key_field] is None:
            raise _Bad("missing_key", f"missing key field {o.key_field!r}")
        key = doc[o.key_field]
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise _Bad("bad_key", f"key field {o.key_field!r} must be a string or an integer, got {_json_type(key)}")
        if o.timestamp_field not in doc or doc[o.timestamp_field] is None:
            raise _Bad("missing_timestamp", f"missing timestamp field {o.timestamp_field!r}")
        ts = self._one_time(doc[o.timestamp_field])
        if ts < MIN_TIMESTAMP_MS:
            raise _Bad(
                "implausible_timestamp",
                f"timestamp {doc[o.timestamp_field]!r} is before 2000-01-01, which is not plausible",
            )
        for name in o.numeric_fields:
            value = doc.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Bad("bad_field", f"field {name!r} must be a number, got {_json_type(value)}")
            if abs(value) > MAX_MAGNITUDE:
                raise _Bad("bad_field", f"field {name!r} is {value!r}, beyond +-2**53 where sums stop being exact")
        for name in o.distinct_fields:
            value = doc.get(name)
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise _Bad("bad_field", f"field {name!r} must be a string, number or boolean, got {_json_type(value)}")

    def _one_time(self, value: Any) -> int:
        fmt, name = self.options.timestamp_format, self.options.timestamp_field
        if fmt is TimeFormat.EPOCH_MS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Bad(
                    "bad_timestamp",
                    f"timestamp field {name!r} must be integer epoch milliseconds, got {_json_type(value)}",
                )
            if abs(value) >= 2**62:
                raise _Bad("bad_timestamp", f"timestamp {value} is out of range")
            return value
        if fmt is TimeFormat.EPOCH_S:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Bad("bad_timestamp", f"timestamp field {name!r} must be epoch seconds, got {_json_type(value)}")
            if abs(value) > 1e13:
                raise _Bad("bad_timestamp", f"timestamp {value} is out of range")
            return round(value * 1000.0)
        if not isinstance(value, str):
            raise _Bad("bad_timestamp", f"timestamp field {name!r} must be an RFC 3339 string, got {_json_type(value)}")
        return _rfc3339_ms(value)


def _rfc3339_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad("bad_timestamp", f"timestamp {text!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        raise _Bad("bad_timestamp", f"timestamp {text!r} has no time zone offset")
    return (
        int(moment.timestamp() * 1000)
        if moment.microsecond == 0
        else (int(moment.timestamp()) * 1000 + moment.microsecond // 1000)
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
