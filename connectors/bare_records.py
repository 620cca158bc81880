"""Fetched Kafka records as columns, without an object around each record.

aiokafka parses each fetched record (``DefaultRecord``, in C) in a Python
generator and then wraps it in a ``ConsumerRecord`` dataclass, one record at
a time: a microsecond or two per record, spent in the consumer's thread while
the job waits for the batch. A job reads only each record's offset, key,
value, timestamp and ``traceparent`` header. ``read_bare_records`` makes one
consumer hand out, from ``getmany``, each partition's records as
``RecordColumns`` read straight from the fetched bytes in C
(``connectors.record_reading``). A fetch that holds compressed or old-format
batches, or is read with deserializers or as read-committed, is left to
aiokafka's reader, and then comes as its parsed records, without a
``ConsumerRecord`` each. Every other consumer is left alone.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import MethodType
from typing import Any, Protocol

import numpy as np
from aiokafka import errors as kafka_errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, FetchResult, PartitionRecords
from aiokafka.record.memory_records import MemoryRecords

from connectors.record_columns import record_columns
from connectors.record_reading import CorruptBatch, plain_batches, read_batches
from windows.events import Int64Array


class SourceRecord(Protocol):
    """What a job reads of a consumed Kafka record object (aiokafka's parsed records and ``ConsumerRecord``)."""

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(frozen=True)
class RecordColumns:
    """Fetched records of one partition, in offset order, as the columns a job reads."""

    offsets: Int64Array
    keys: list[bytes | None]
    values: list[bytes]  # b"" for a record without a value
    timestamps: Int64Array  # epoch milliseconds
    traceparents: list[bytes | None]  # each record's first ``traceparent`` header's value (None: none)

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def of(cls, records: Sequence[SourceRecord]) -> RecordColumns:
        """The columns of record objects."""
        listed = records if type(records) is list else list(records)
        values, offsets, traceparents, timestamps = record_columns(listed, True)
        return cls(
            np.asarray(offsets, dtype=np.int64),
            [record.key for record in listed],
            values,
            np.asarray(timestamps, dtype=np.int64),
            traceparents,  # type: ignore[arg-type]
        )

    @classmethod
    def concat(cls, first: RecordColumns, second: RecordColumns) -> RecordColumns:
        return cls(
            np.concatenate([first.offsets, second.offsets]),
            first.keys + second.keys,
            first.values + second.values,
            np.concatenate([first.timestamps, second.timestamps]),
            first.traceparents + second.traceparents,
        )

    def rows(self, start: int, stop: int) -> RecordColumns:
        """Records ``start`` to ``stop`` (positions, not offsets)."""
        return RecordColumns(
            self.offsets[start:stop],
            self.keys[start:stop],
            self.values[start:stop],
            self.timestamps[start:stop],
            self.traceparents[start:stop],
        )

    def since(self, offset: int) -> RecordColumns:
        """The records at or after ``offset``."""
        return self.rows(int(np.searchsorted(self.offsets, offset)), len(self))

    def key_at(self, offset: int) -> bytes | None:
        """The key of the record at ``offset`` (None: no key, or no such record)."""
        at = int(np.searchsorted(self.offsets, offset))
        return self.keys[at] if at < len(self) and int(self.offsets[at]) == offset else None


class _KeptMemoryRecords(MemoryRecords):  # type: ignore[misc]
    """aiokafka's fetched record set, keeping the fetched bytes for ``read_batches``."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.raw = data


class _BareRecords(PartitionRecords):  # type: ignore[misc]
    """A partition's fetched records, handed out as parsed (with deserializers: as aiokafka does)."""

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if self._key_deserializer or self._value_deserializer:
            return super()._consumer_record(tp, record)
        return record


class _ColumnRecords(PartitionRecords):  # type: ignore[misc]
    """A partition's fetched records, read into columns a call at a time (``_start`` sets it up)."""

    next_fetch_offset: int  # aiokafka's: where the partition's position moves once records are handed out

    def _start(self, raw: bytes) -> None:
        self._raw = raw
        self._position = 0  # the byte after the batches read so far
        self._first_offset = int(self.next_fetch_offset)  # records before it are skipped (whole batches come)
        self._pending: RecordColumns | None = None  # read, not handed out yet
        self._batches_end = -1  # the offset after the last batch read
        self._more = True  # a whole batch is left to read

    def take(self, max_records: int | None) -> tuple[RecordColumns, bool]:
        """Up to ``max_records`` records, and whether none is left; ``next_fetch_offset`` moves past them as
        aiokafka's reader moves it."""
        wanted = sys.maxsize if max_records is None else max_records
        pending = self._pending
        have = 0 if pending is None else len(pending)
        if have < wanted and self._more:
            try:
                offsets, keys, values, times, traceparents, self._position, batches_end, self._more = read_batches(
                    self._raw, self._position, self._first_offset, wanted - have, self._check_crcs
                )
            except CorruptBatch as error:  # aiokafka's reader raises this too; the records are fetched again
                raise kafka_errors.CorruptRecordException(f"{error} ({self._tp})") from None
            read = RecordColumns(offsets, keys, values, times, traceparents)
            pending = read if pending is None else RecordColumns.concat(pending, read)
            if batches_end >= 0:
                self._batches_end = batches_end
        if pending is None:
            pending = RecordColumns(np.zeros(0, dtype=np.int64), [], [], np.zeros(0, dtype=np.int64), [])
        handed = pending.rows(0, min(wanted, len(pending)))
        self._pending = pending.rows(len(handed), len(pending)) if len(handed) < len(pending) else None
        if self._pending is not None:
            self.next_fetch_offset = int(handed.offsets[-1]) + 1
        elif self._batches_end >= 0:
            self.next_fetch_offset = self._batches_end
        return handed, self._pending is None and not self._more


def _getall_columns(result: FetchResult, max_records: int | None = None) -> Any:
    """``FetchResult.getall`` handing out ``RecordColumns`` (aiokafka's fetcher takes results of exactly
    ``FetchResult``'s type, so a result gets this method rather than a subclass)."""
    if not result.check_assignment(result._topic_partition) or not result.has_more():
        return []
    columns, done = result._partition_records.take(max_records)
    result._update_position()
    if done:
        result._partition_records = None
    return columns


def _getone_refused() -> Any:
    raise RuntimeError("a consumer reading record columns hands out batches only: use getmany.")


class _BareResults(OrderedDict[Any, Any]):
    """A fetcher's results by partition; each new partition result reads its records as columns, or bare."""

    def __setitem__(self, tp: Any, result: Any) -> None:
        records: Any = getattr(result, "_partition_records", None)
        if type(records) is PartitionRecords and type(result) is FetchResult:
            raw = getattr(records._records, "raw", None)
            if (
                type(raw) is bytes
                and records._isolation_level == READ_UNCOMMITTED
                and not records._key_deserializer
                and not records._value_deserializer
                and plain_batches(raw)
            ):
                records.__class__ = _ColumnRecords
                records._start(raw)
                result.getall = MethodType(_getall_columns, result)
                result.getone = _getone_refused
            else:
                records.__class__ = _BareRecords
        super().__setitem__(tp, result)


def read_bare_records(consumer: Any) -> None:
    """From now on, ``consumer`` (a started ``AIOKafkaConsumer``) returns from ``getmany`` each partition's
    records as ``RecordColumns`` (or, for fetches aiokafka must read, as its parsed records)."""
    fetcher = consumer._fetcher
    if fetcher is None:
        raise RuntimeError("read_bare_records needs a started consumer (it has no fetcher yet).")
    # Fetched bytes are kept beside aiokafka's reader for every consumer of the process; only this one reads them.
    aiokafka_fetcher.MemoryRecords = _KeptMemoryRecords
    if not isinstance(fetcher._records, _BareResults):
        fetcher._records = _BareResults(fetcher._records)
