"""Publish a JSON Lines event log into a Kafka topic, as fast as possible or at a multiple of its pace.

Each event is keyed by its key field and sent to the partition Kafka's
default partitioner picks for that key, so the topic holds, per partition,
the same events in the same order that ``winnow replay`` assigns to that
partition. Lines that cannot be decoded are published unchanged (unkeyed,
spread over partitions by line number) so the job's dead-letter path sees
them too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from connectors.event_decoding import DecodeOptions, EventDecoder, TimeFormat
from connectors.jsonl_files import read_event_chunks
from connectors.kafka_output import TopicWriter
from connectors.kafka_settings import KafkaSettings
from connectors.partitioner import partition_for


@dataclass(frozen=True)
class PublishOptions:
    """What to publish where, and how fast."""

    input: Path
    topic: str
    key_field: str
    timestamp_field: str
    timestamp_format: TimeFormat = TimeFormat.EPOCH_MS
    partitions: int = 1
    speed: float | None = None  # None: as fast as possible; N: N times the log's own pace
    chunk_lines: int = 20_000


@dataclass(frozen=True)
class PublishStats:
    """What one publish run sent."""

    events: int
    unkeyed: int
    seconds: float
    per_partition: tuple[int, ...]  # events sent to each partition


async def publish_log(settings: KafkaSettings, options: PublishOptions) -> PublishStats:
    """Send every line of ``options.input`` to ``options.topic``; return counts and wall time."""
    decoder = EventDecoder(
        DecodeOptions(
            key_field=options.key_field,
            timestamp_field=options.timestamp_field,
            timestamp_format=options.timestamp_format,
            max_event_bytes=1 << 62,
        )
    )
    writer = TopicWriter(settings, acks=1, linger_ms=20)
    await writer.start()
    started = time.monotonic()
    first_ts: int | None = None
    high_ts = 0
    sent = unkeyed = 0
    per_partition = [0] * options.partitions
    try:
        for raws, lines in read_event_chunks(options.input, options.chunk_lines):
            decoded, _ = decoder.decode(raws, lines)
            key_of = dict(zip(decoded.seq.tolist(), decoded.keys))
            ts_of = dict(zip(decoded.seq.tolist(), decoded.ts.tolist()))
            by_partition: dict[int, tuple[list[bytes | None], list[bytes]]] = {}
            for raw, line in zip(raws, lines.tolist()):
                key = key_of.get(line)
                if key is None:
                    partition = (line - 1) % options.partitions
                    key_bytes = None
                    unkeyed += 1
                else:
                    key_bytes = key.encode("utf-8")
                    partition = partition_for(key_bytes, options.partitions)
                ts = ts_of.get(line)
                if options.speed and ts is not None:
                    if first_ts is None:
                        first_ts = high_ts = ts
                    if ts > high_ts:
                        high_ts = ts
                        due = started + (high_ts - first_ts) / 1000.0 / options.speed
                        wait = due - time.monotonic()
                        if wait > 0.005:
                            for p, (keys, values) in by_partition.items():
                                await writer.write(options.topic, p, keys, values)
                            by_partition = {}
                            await writer.flush()
                            await asyncio.sleep(wait)
                keys_values = by_partition.setdefault(partition, ([], []))
                keys_values[0].append(key_bytes)
                keys_values[1].append(raw)
                per_partition[partition] += 1
                sent += 1
            for p, (keys, values) in by_partition.items():
                await writer.write(options.topic, p, keys, values)
        await writer.flush()
    finally:
        await writer.stop()
    return PublishStats(sent, unkeyed, time.monotonic() - started, tuple(per_partition))
