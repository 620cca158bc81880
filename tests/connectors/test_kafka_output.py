"""TopicWriter against a real broker that goes away and comes back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.errors import ConnectorError
from connectors.kafka_output import TopicWriter
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from connectors.line_blocks import LineBlock
from connectors.local_broker import LocalBroker

HANG_GUARD = 60.0  # seconds: a flush that has not returned by then is stuck, not slow


async def _read_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        read: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
        for _ in range(6):
            batch = await consumer.getmany(timeout_ms=300)
            read += [(r.key, r.value or b"", list(r.headers)) for records in batch.values() for r in records]
        return read
    finally:
        await consumer.stop()


async def _read(bootstrap: str, topic: str) -> list[bytes]:
    return [value for _, value, _ in await _read_records(bootstrap, topic)]


async def _write_until_acknowledged(writer: TopicWriter, values: list[bytes], attempts: int) -> None:
    """Write ``values`` and flush, writing them all again after a flush that failed (as the streaming job
    does by going back to its last commit)."""
    for _ in range(attempts):
        await writer.write("out", 0, [b"k"] * len(values), values)
        try:
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            return
        except ConnectorError:
            continue
    raise AssertionError(f"no flush succeeded in {attempts} attempts after the broker came back")


def test_a_flush_reports_an_unreachable_broker_and_records_written_again_arrive_once_it_is_back() -> None:
    down = [b"down-1", b"down-2", b"down-3"]

    async def scenario(broker: LocalBroker) -> tuple[str, list[bytes], list[bytes]]:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(settings, {"out": 1})
        writer = TopicWriter(settings, request_timeout_ms=1500)
        await writer.start(["out"])
        try:
            await writer.write("out", 0, [b"k"], [b"before"])
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            before = await _read(broker.bootstrap_servers, "out")

            broker.stop()
            for value in down:  # three closed batches, one record each
                await writer.write("out", 0, [b"k"], [value])
                await writer.send_open()
            with pytest.raises(ConnectorError) as failure:
                await asyncio.wait_for(writer.flush(), HANG_GUARD)

            broker.start()  # a memory-only broker comes back empty
            await ensure_topics(settings, {"out": 1})
            # everything since the last flush that succeeded is written again, then a new record
            await _write_until_acknowledged(writer, [*down, b"after"], attempts=5)
            after = await _read(broker.bootstrap_servers, "out")
            return str(failure.value), before, after
        finally:
            await writer.stop()

    with LocalBroker() as broker:
        message, before, after = asyncio.run(scenario(broker))
    assert before == [b"before"]
    assert message.startswith("the broker did not acknowledge output records: ") and not message.endswith("..")
    # At least once: the last flush's records arrived whole and in order; anything before them is a
    # record of that same group that an earlier attempt or the producer's own retries delivered.
    assert after[-4:] == [*down, b"after"]
    assert set(after[:-4]) <= {*down, b"after"}


def test_lines_built_into_batches_in_c_arrive_with_their_keys_in_order_between_other_records() -> None:
    keys = [b"client-a", "clé".encode(), b"client-c"]
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 700)) for i in range(6_000)]  # about 2 MB: several batches
    key_ids = np.arange(len(lines), dtype=np.int64) % 3

    async def scenario(broker: LocalBroker) -> tuple[list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]], int]:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(settings, {"out": 1})
        writer = TopicWriter(settings)
        await writer.start(["out"])
        try:
            await writer.write("out", 0, [b"k"], [b"first"], [[("h", b"1")]])
            parts = [LineBlock.of(lines[:1_000]), LineBlock.empty(), LineBlock.of(lines[1_000:4_000])]
            await writer.write_lines("out", 0, parts, keys, [key_ids[:1_000], key_ids[:0], key_ids[1_000:4_000]])
            await writer.write("out", 0, [None], [b"between"])
            await writer.write_lines("out", 0, [LineBlock.of(lines[4_000:])], keys, [key_ids[4_000:]])
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            return await _read_records(broker.bootstrap_servers, "out"), writer.records_written
        finally:
            await writer.stop()

    with LocalBroker() as broker:
        read, written = asyncio.run(scenario(broker))
    expected = [(keys[k], line, []) for k, line in zip(key_ids.tolist(), lines)]
    assert read == [(b"k", b"first", [("h", b"1")]), *expected[:4_000], (None, b"between", []), *expected[4_000:]]
    assert written == len(lines) + 2
