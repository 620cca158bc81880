"""Fetched records as columns from a real broker: the fields a plain consumer reads, for one consumer only."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from connectors.bare_records import RecordColumns, read_bare_records
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from connectors.local_broker import LocalBroker


async def _read_batches(bootstrap: str, wanted: int, *, bare: bool, **options: Any) -> list[Any]:
    """Every batch ``getmany`` hands out (7 records at most each) until ``wanted`` records came."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await consumer.start()
    try:
        if bare:
            read_bare_records(consumer)
        tps = [TopicPartition("src", p) for p in range(2)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        batches: list[Any] = []
        for _ in range(100):
            batches += (await consumer.getmany(timeout_ms=200, max_records=7)).values()
            if sum(map(len, batches)) >= wanted:
                break
        return batches
    finally:
        await consumer.stop()


def _rows(batch: Any) -> list[tuple[Any, ...]]:
    """(offset, key, value, timestamp, first traceparent) of each record of a batch, columns or objects."""
    if isinstance(batch, RecordColumns):
        return list(
            zip(batch.offsets.tolist(), batch.keys, batch.values, batch.timestamps.tolist(), batch.traceparents)
        )
    return [
        (
            r.offset,
            r.key,
            r.value if r.value is not None else b"",
            r.timestamp,
            next((value for name, value in r.headers if name == "traceparent"), None),
        )
        for r in batch
    ]


def _all_rows(batches: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((row for batch in batches for row in _rows(batch)), key=lambda row: (row[2], row[0]))


async def publish(
    bootstrap: str, messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]], **options: Any
) -> None:
    """Send ``(value, key, headers)`` messages to a new two-partition topic ``src``: message i to partition
    i % 2, with timestamp 1,700,000,000,000 + i."""
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), {"src": 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    await producer.start()
    try:
        for i, (value, key, headers) in enumerate(messages):
            await producer.send(
                "src", value, key=key, partition=i % 2, headers=headers, timestamp_ms=1_700_000_000_000 + i
            )
    finally:
        await producer.stop()


MESSAGES = [
    (
        None if i % 5 == 0 else b'{"n":%d}' % i,
        None if i % 5 == 1 else b"key-%d" % i,
        [
            [],
            [("traceparent", b"00-%032x-%016x-01" % (i + 1, i + 1))],
            [("other", b"x"), ("traceparent", b"tp-%d" % i), ("traceparent", b"second")],
            [("Traceparent", b"not this one"), ("traceparent", None)],
        ][i % 4],
    )
    for i in range(60)
]


def test_a_bare_consumer_reads_columns_of_the_fields_a_plain_one_reads_and_leaves_other_consumers_alone() -> None:
    async def scenario(broker: LocalBroker) -> tuple[list[Any], list[Any], list[Any]]:
        bootstrap = broker.bootstrap_servers
        await publish(bootstrap, MESSAGES)
        plain, bare = await asyncio.gather(
            _read_batches(bootstrap, 60, bare=False), _read_batches(bootstrap, 60, bare=True)
        )
        again = await _read_batches(bootstrap, 60, bare=False)  # a consumer started after the bare one
        return plain, bare, again

    with LocalBroker() as broker:
        plain, bare, again = asyncio.run(scenario(broker))
    assert _all_rows(bare) == _all_rows(plain) and len(_all_rows(bare)) == 60
    assert all(isinstance(batch, RecordColumns) and 0 < len(batch) <= 7 for batch in bare)
    assert all(isinstance(record, ConsumerRecord) for batch in plain + again for record in batch)
    traceparents = [row[4] for row in _all_rows(bare)]
    assert sum(tp is not None and tp.startswith(b"tp-") for tp in traceparents) == 15
    assert sum(tp is None for tp in traceparents) == 30  # no header, or a first one without a value
    for batch in bare:  # offsets in order, consecutive within a partition's batch
        assert batch.offsets.tolist() == list(range(int(batch.offsets[0]), int(batch.offsets[0]) + len(batch)))


def test_compressed_batches_are_read_by_aiokafka_and_come_as_its_parsed_records() -> None:
    async def scenario(broker: LocalBroker) -> tuple[list[Any], list[Any]]:
        bootstrap = broker.bootstrap_servers
        await publish(bootstrap, MESSAGES[:20], compression_type="gzip")
        return await asyncio.gather(_read_batches(bootstrap, 20, bare=False), _read_batches(bootstrap, 20, bare=True))

    with LocalBroker() as broker:
        plain, bare = asyncio.run(scenario(broker))
    assert _all_rows(bare) == _all_rows(plain) and len(_all_rows(bare)) == 20
    assert all(type(batch) is list for batch in bare)
    assert not any(isinstance(record, ConsumerRecord) for batch in bare for record in batch)


def test_a_bare_consumer_with_a_deserializer_still_deserializes() -> None:
    async def scenario(broker: LocalBroker) -> list[Any]:
        bootstrap = broker.bootstrap_servers
        await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), {"src": 2})
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("src", b"abc", partition=0)
        finally:
            await producer.stop()
        return await _read_batches(bootstrap, 1, bare=True, value_deserializer=bytes.upper)

    with LocalBroker() as broker:
        batches = asyncio.run(scenario(broker))
    assert [record.value for batch in batches for record in batch] == [b"ABC"]


def test_an_unstarted_consumer_is_refused() -> None:
    async def scenario() -> str:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
        try:
            with pytest.raises(RuntimeError) as refused:
                read_bare_records(consumer)
            return str(refused.value)
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == "read_bare_records needs a started consumer (it has no fetcher yet)."


def test_record_columns_take_rows_by_offset() -> None:
    columns = RecordColumns(
        np.array([4, 5, 9, 10], dtype=np.int64),
        [b"a", None, b"c", b"d"],
        [b"1", b"", b"3", b"4"],
        np.array([40, 50, 90, 100], dtype=np.int64),
        [None, b"tp", None, None],
    )
    assert columns.since(5).offsets.tolist() == [5, 9, 10] and columns.since(6).keys == [b"c", b"d"]
    assert len(columns.since(11)) == 0 and columns.since(0).values == columns.values
    assert [columns.key_at(offset) for offset in (4, 5, 6, 9, 11)] == [b"a", None, None, b"c", None]
    joined = RecordColumns.concat(columns.rows(0, 2), columns.rows(2, 4))
    assert joined.offsets.tolist() == [4, 5, 9, 10] and joined.traceparents == [None, b"tp", None, None]
