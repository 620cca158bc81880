"""Bare fetched records from a real broker: the same fields as ConsumerRecords, for one consumer only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from connectors.bare_records import read_bare_records
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from connectors.local_broker import LocalBroker

FIELDS = ("offset", "key", "value", "timestamp", "headers")


async def _read_all(bootstrap: str, wanted: int, *, bare: bool, **options: Any) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await consumer.start()
    try:
        if bare:
            read_bare_records(consumer)
        tps = [TopicPartition("src", p) for p in range(2)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        for _ in range(100):
            for batch in (await consumer.getmany(timeout_ms=200, max_records=7)).values():
                records += batch
            if len(records) >= wanted:
                break
        return records
    finally:
        await consumer.stop()


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(tuple(map(tuple, record.headers)) if name == "headers" else getattr(record, name) for name in FIELDS)


async def publish(bootstrap: str, messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
    """Send ``(value, key, headers)`` messages to a new two-partition topic ``src``: message i to partition
    i % 2, with timestamp 1,700,000,000,000 + i."""
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), {"src": 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, (value, key, headers) in enumerate(messages):
            await producer.send(
                "src", value, key=key, partition=i % 2, headers=headers, timestamp_ms=1_700_000_000_000 + i
            )
    finally:
        await producer.stop()


def test_a_bare_consumer_reads_the_fields_a_plain_one_does_and_leaves_other_consumers_alone() -> None:
    async def scenario(broker: LocalBroker) -> tuple[list[Any], list[Any], list[Any]]:
        bootstrap = broker.bootstrap_servers
        await publish(
            bootstrap,
            [
                (
                    b'{"n":%d}' % i,
                    None if i % 7 == 0 else b"key-%d" % i,
                    [("traceparent", b"00-%032x-%016x-01" % (i, i))] if i % 3 else [],
                )
                for i in range(60)
            ],
        )
        plain, bare = await asyncio.gather(_read_all(bootstrap, 60, bare=False), _read_all(bootstrap, 60, bare=True))
        again = await _read_all(bootstrap, 60, bare=False)  # a consumer started after the bare one
        return plain, bare, again

    with LocalBroker() as broker:
        plain, bare, again = asyncio.run(scenario(broker))
    assert len(plain) == len(bare) == 60
    assert sorted(map(_fields, bare), key=lambda f: (f[2], f[0])) == sorted(
        map(_fields, plain), key=lambda f: (f[2], f[0])
    )
    assert not any(isinstance(record, ConsumerRecord) for record in bare)
    assert all(isinstance(record, ConsumerRecord) for record in plain + again)


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
        return await _read_all(bootstrap, 1, bare=True, value_deserializer=bytes.upper)

    with LocalBroker() as broker:
        records = asyncio.run(scenario(broker))
    assert [record.value for record in records] == [b"ABC"]


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
