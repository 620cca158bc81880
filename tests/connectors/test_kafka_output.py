"""TopicWriter against a real broker that goes away and comes back."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.errors import ConnectorError
from connectors.kafka_output import TopicWriter
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from connectors.local_broker import LocalBroker

HANG_GUARD = 60.0  # seconds: a flush that has not returned by then is stuck, not slow


async def _read(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        for _ in range(6):
            batch = await consumer.getmany(timeout_ms=300)
            values += [record.value or b"" for records in batch.values() for record in records]
        return values
    finally:
        await consumer.stop()


async def _write_until_acknowledged(writer: TopicWriter, value: bytes, attempts: int) -> None:
    """Write ``value`` and flush, writing it again after a flush that failed (as the streaming job does by
    going back to its last commit)."""
    for _ in range(attempts):
        await writer.write("out", 0, [b"k"], [value])
        try:
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            return
        except ConnectorError:
            continue
    raise AssertionError(f"no flush succeeded in {attempts} attempts after the broker came back")


def test_a_flush_reports_an_unreachable_broker_and_writing_goes_on_once_it_is_back() -> None:
    async def scenario(broker: LocalBroker) -> tuple[str, int, list[bytes], list[bytes]]:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(settings, {"out": 1})
        writer = TopicWriter(settings, request_timeout_ms=1500)
        await writer.start(["out"])
        try:
            await writer.write("out", 0, [b"k"], [b"before"])
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            before = await _read(broker.bootstrap_servers, "out")

            broker.stop()
            for value in (b"down-1", b"down-2", b"down-3"):  # three closed batches, one record each
                await writer.write("out", 0, [b"k"], [value])
                await writer.send_open()
            with pytest.raises(ConnectorError) as failure:
                await asyncio.wait_for(writer.flush(), HANG_GUARD)
            held = writer.records_queued  # a sender that failed leaves its batches with the writer

            broker.start()  # a memory-only broker comes back empty
            await ensure_topics(settings, {"out": 1})
            await _write_until_acknowledged(writer, b"after", attempts=5)
            after = await _read(broker.bootstrap_servers, "out")
            return str(failure.value), held, before, after
        finally:
            await writer.stop()

    with LocalBroker() as broker:
        message, held, before, after = asyncio.run(scenario(broker))
    assert before == [b"before"]
    assert message.startswith("the broker did not acknowledge output records: ") and not message.endswith("..")
    # The broker now holds the batches the writer kept (sent again by the flushes after recovery) and
    # perhaps others the producer retried, in the order written, none twice, then the record written after.
    down = [b"down-1", b"down-2", b"down-3"]
    assert after[-1] == b"after"
    assert held >= 1 and len(after) - 1 >= held
    assert set(after[:-1]) <= set(down) and len(set(after[:-1])) == len(after) - 1
    assert after[:-1] == sorted(after[:-1], key=down.index)
