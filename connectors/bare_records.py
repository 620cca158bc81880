"""Fetched Kafka records without a ``ConsumerRecord`` around each one.

aiokafka parses each fetched record (``DefaultRecord``, in C) and then wraps
it in a ``ConsumerRecord`` dataclass, in a generator, one record at a time:
about a microsecond per record, spent in the consumer's thread while the job
waits for the batch. The job reads only ``offset``, ``key``, ``value``,
``timestamp`` and ``headers``, which the parsed record already has.
``read_bare_records`` makes one consumer hand out its parsed records as they
are; every other consumer is left alone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from aiokafka.consumer.fetcher import PartitionRecords


class _BareRecords(PartitionRecords):  # type: ignore[misc]
    """A partition's fetched records, handed out as parsed (with deserializers: as aiokafka does)."""

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if self._key_deserializer or self._value_deserializer:
            return super()._consumer_record(tp, record)
        return record


class _BareResults(OrderedDict[Any, Any]):
    """A fetcher's results by partition; each new partition result reads its records bare."""

    def __setitem__(self, tp: Any, result: Any) -> None:
        records = getattr(result, "_partition_records", None)
        if type(records) is PartitionRecords:
            records.__class__ = _BareRecords
        super().__setitem__(tp, result)


def read_bare_records(consumer: Any) -> None:
    """From now on, ``consumer`` (a started ``AIOKafkaConsumer``) returns parsed records, not
    ``ConsumerRecord`` objects, from ``getmany`` and ``getone``."""
    fetcher = consumer._fetcher
    if fetcher is None:
        raise RuntimeError("read_bare_records needs a started consumer (it has no fetcher yet).")
    if not isinstance(fetcher._records, _BareResults):
        fetcher._records = _BareResults(fetcher._records)
