"""TopicWriter against a real broker that goes away and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

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


def test_a_mark_waits_for_the_records_written_before_it_and_reports_only_their_failures() -> None:
    async def scenario(broker: LocalBroker) -> None:
        writer = await _started_writer(broker, 1, request_timeout_ms=1500)
        try:
            await writer.write("out", 0, [b"k"], [b"first"])
            first = await writer.mark()
            await asyncio.wait_for(writer.acknowledge(first), HANG_GUARD)
            assert writer.acknowledged(first)

            broker.stop()
            await writer.write("out", 0, [b"k"], [b"lost"])
            second = await writer.mark()
            assert second > first
            assert writer.acknowledged(first) and not writer.acknowledged(second)
            await asyncio.wait_for(writer.acknowledge(first), 1.0)  # the later records neither delay nor fail it
            with pytest.raises(ConnectorError, match=r"^the broker did not acknowledge output records: "):
                await asyncio.wait_for(writer.acknowledge(second), HANG_GUARD)
            assert writer.acknowledged(second)  # settled, by failing
            await asyncio.wait_for(writer.acknowledge(second), 1.0)  # a failure is reported once
            broker.start()
        finally:
            await writer.stop()

    with LocalBroker() as broker:
        asyncio.run(scenario(broker))


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


async def _read_partitions(bootstrap: str, topic: str, partitions: int, wanted: int) -> dict[int, list[bytes]]:
    """Each partition's values, read until ``wanted`` records arrived or HANG_GUARD passed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        read: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        deadline = asyncio.get_running_loop().time() + HANG_GUARD
        while sum(map(len, read.values())) < wanted and asyncio.get_running_loop().time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                read[tp.partition] += [r.value or b"" for r in records]
        return read
    finally:
        await consumer.stop()


async def _started_writer(broker: LocalBroker, partitions: int, **options: Any) -> TopicWriter:
    """A started writer to the topic ``out`` (created with ``partitions``)."""
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    await ensure_topics(settings, {"out": partitions})
    writer = TopicWriter(settings, **options)
    await writer.start(["out"])
    return writer


def test_partitions_spread_over_several_connections_keep_their_order() -> None:
    lines = {p: [b'{"p":%d,"n":%d,"pad":"%s"}' % (p, i, b"y" * (i % 900)) for i in range(3_000)] for p in range(5)}

    async def scenario(broker: LocalBroker) -> dict[int, list[bytes]]:
        writer = await _started_writer(broker, 5, connections=2)
        try:
            for chunk in range(3):  # interleaved writes to every partition, several batches each
                for p in range(5):
                    part = lines[p][chunk * 1_000 : (chunk + 1) * 1_000]
                    await writer.write_lines("out", p, [LineBlock.of(part)], [b"k"], [np.zeros(len(part), np.int64)])
                    await writer.write("out", p, [b"k"], [b"record %d/%d" % (p, chunk)])
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
        finally:
            await writer.stop()
        return await _read_partitions(broker.bootstrap_servers, "out", 5, 5 * 3_003)

    with LocalBroker() as broker:
        read = asyncio.run(scenario(broker))
    for p in range(5):
        expected = [
            value for c in range(3) for value in [*lines[p][c * 1_000 : (c + 1) * 1_000], b"record %d/%d" % (p, c)]
        ]
        assert read[p] == expected


def test_batches_go_out_while_the_writing_loop_is_busy() -> None:
    """The producers have a thread of their own: records handed over reach the broker even while the loop
    that wrote them is blocked (here, until a reader in another thread has them all)."""
    lines = [b'{"n":%d}' % i for i in range(2_000)]

    async def scenario(broker: LocalBroker) -> dict[int, list[bytes]]:
        writer = await _started_writer(broker, 1)
        try:
            await writer.write_lines("out", 0, [LineBlock.of(lines)], [b"k"], [np.zeros(len(lines), np.int64)])
            await writer.send_open()
            read: dict[int, list[bytes]] = {}

            def reader() -> None:
                read.update(asyncio.run(_read_partitions(broker.bootstrap_servers, "out", 1, len(lines))))

            thread = threading.Thread(target=reader)
            thread.start()
            thread.join()  # blocks this loop: nothing on it runs until the reader is done
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
            return read
        finally:
            await writer.stop()

    with LocalBroker() as broker:
        read = asyncio.run(scenario(broker))
    assert read[0] == lines


def test_writes_wait_while_more_than_the_bound_waits_for_the_producers_and_lose_nothing() -> None:
    values = [b"%d:" % i + b"x" * 300_000 for i in range(12)]

    async def scenario(broker: LocalBroker) -> tuple[int | None, dict[int, list[bytes]]]:
        writer = await _started_writer(broker, 1, connections=1, max_queued_bytes=1 << 20)
        blocked_at = None
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)  # the broker answers nothing: one batch in flight, one in aiokafka
        try:
            for i, value in enumerate(values):
                write = asyncio.ensure_future(writer.write("out", 0, [b"k"], [value]))
                await asyncio.wait([write], timeout=1.0)
                await writer.send_open()
                if not write.done():
                    blocked_at = i
                    break
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        try:
            await asyncio.wait_for(write, HANG_GUARD)  # goes on once the producer takes batches again
            for value in values[blocked_at + 1 if blocked_at is not None else len(values) :]:
                await writer.write("out", 0, [b"k"], [value])
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
        finally:
            await writer.stop()
        return blocked_at, await _read_partitions(broker.bootstrap_servers, "out", 1, len(values))

    with LocalBroker() as broker:
        blocked_at, read = asyncio.run(scenario(broker))
    # 300 kB batches: a few are with aiokafka (one in flight, the next waiting there), and once four more
    # wait for it (1.2 MB) a write waits
    assert blocked_at is not None and 3 <= blocked_at <= 8, blocked_at
    assert read[0] == values


def test_a_writer_without_connections_is_refused() -> None:
    with pytest.raises(ConnectorError, match="at least one producer connection, not 0"):
        TopicWriter(KafkaSettings(bootstrap_servers="127.0.0.1:9"), connections=0)


def test_a_cancelled_flush_cancels_no_sending_and_the_next_flush_waits_for_every_record() -> None:
    values = [b"%d:" % i + b"x" * 200_000 for i in range(45)]  # one batch each: 9 MB, more than may wait

    async def scenario(broker: LocalBroker) -> dict[int, list[bytes]]:
        writer = await _started_writer(broker, 1, max_queued_bytes=1 << 20)
        try:
            for value in values:
                await writer.write("out", 0, [b"k"], [value])
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(writer.flush(), 0.001)
            await asyncio.wait_for(writer.flush(), HANG_GUARD)
        finally:
            await writer.stop()
        return await _read_partitions(broker.bootstrap_servers, "out", 1, len(values))

    with LocalBroker() as broker:
        read = asyncio.run(scenario(broker))
    assert read[0] == values
