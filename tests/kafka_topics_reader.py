"""Read whole topics back from a broker, for tests that check what a worker produced."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


async def read_topic(bootstrap: str, topic: str, partitions: int, quiet_for: float = 0.6) -> list[Record]:
    """Every record of ``topic``, read until no partition has anything new for ``quiet_for`` seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=50_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        idle_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - idle_since < quiet_for:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, items in batch.items():
                records.extend(
                    Record(tp.partition, r.offset, r.key, r.value, tuple(r.headers or ())) for r in items
                )
                if items:
                    idle_since = asyncio.get_running_loop().time()
        return records
    finally:
        await consumer.stop()


def read_topic_sync(bootstrap: str, topic: str, partitions: int, quiet_for: float = 0.6) -> list[Record]:
    return asyncio.run(read_topic(bootstrap, topic, partitions, quiet_for))
