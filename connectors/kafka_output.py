"""Batched, acknowledged writes to Kafka topics.

Records are appended to per-(topic, partition) producer batches and sent
when a batch fills; ``flush`` sends the rest and waits until the broker has
acknowledged every record written so far. The streaming job flushes before it
commits the input offsets that produced the records, which makes its outputs
at-least-once: a crash can repeat records, never lose them. A flush that fails
says so and guarantees nothing about the records written since the last flush
that succeeded: the caller writes them again (the streaming job stops and
restarts from its last commit). The writer does not keep failed batches to send
again; aiokafka's batches do not survive a failed send (sent again after the
broker came back, they were refused with UnknownError).

aiokafka keeps one request in flight per partition and makes ``send_batch``
wait until the partition's previous batch has gone out, about a broker round
trip. The writer therefore hands closed batches to the producer from one
background task per partition, in order, so that writing never holds up the
caller; only a partition with ``MAX_QUEUED`` batches waiting makes ``write``
wait (backpressure).

Output lines (results and decisions, several per input event) take
``write_lines``: their batches are built whole in C from the packed line buffer
(``connectors/record_batches.pyx``) instead of one aiokafka ``append`` per record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from connectors.errors import ConnectorError
from connectors.kafka_settings import KafkaSettings
from connectors.line_blocks import LineBlock
from connectors.record_batches import build_batch
from windows.errors import reason
from windows.events import Int64Array

Headers = Sequence[tuple[str, bytes]]
Slot = tuple[str, int]  # (topic, partition)

#: Closed batches a partition may have waiting for the producer before ``write`` waits for them.
MAX_QUEUED = 8
#: The largest producer batch, in bytes (a single larger record goes alone in its batch).
MAX_BATCH_BYTES = 1 << 20


class _BuiltBatch(BatchBuilder):  # type: ignore[misc]
    """A closed producer batch whose bytes were built elsewhere (``build_batch``).

    aiokafka's sender asks a batch for its bytes (``_build``), its size and its record count only; a built
    batch answers from the finished buffer instead of an aiokafka record builder."""

    def __init__(self, buffer: bytes, count: int) -> None:  # no aiokafka builder behind it
        self._buffer = buffer
        self._relative_offset = count
        self._closed = True

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        raise ConnectorError(
            "output batches built in C carry no producer id or sequence: the writer's producer must not be "
            "idempotent or transactional."
        )


class TopicWriter:
    """Writes records to Kafka in producer batches and tracks their acknowledgements."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        acks: int | str = "all",
        linger_ms: int = 5,
        request_timeout_ms: int = 40_000,
    ) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            **settings.client_options(),
            acks=acks,
            request_timeout_ms=request_timeout_ms,
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=4 << 20,
            compression_type=None,
        )
        self._batches: dict[Slot, Any] = {}  # the open batch of each partition
        self._queued: dict[Slot, list[Any]] = {}  # closed batches not yet handed to the producer, in order
        self._senders: dict[Slot, asyncio.Task[None]] = {}
        self._pending: list[asyncio.Future[Any]] = []  # delivery of batches handed to the producer
        self._failure: Exception | None = None  # why a sender stopped (its queue is dropped); flush reports it
        self.records_written = 0

    async def start(self, topics: Sequence[str] = ()) -> None:
        """Connect to the cluster and learn the partitions of ``topics`` (the topics about to be written), so
        that the first records do not wait for a metadata request and a new connection."""
        try:
            await self._producer.start()
            for topic in topics:
                await self._producer.partitions_for(topic)
        except KafkaError as error:
            servers = self.settings.bootstrap_servers
            raise ConnectorError(f"cannot connect a producer to {servers}: {reason(error)}.") from None

    async def stop(self) -> None:
        """Flush and disconnect."""
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    def _enqueue(self, slot: Slot, batch: Any) -> None:
        """Queue a batch for its partition's sender, starting the sender when none runs."""
        batch.close()
        self._queued.setdefault(slot, []).append(batch)
        if slot not in self._senders:
            self._senders[slot] = asyncio.ensure_future(self._send_queued(slot))

    async def _send_queued(self, slot: Slot) -> None:
        queue = self._queued[slot]
        try:
            while queue:
                self._pending.append(await self._producer.send_batch(queue[0], slot[0], partition=slot[1]))
                queue.pop(0)
        except Exception as error:  # the next flush reports this; the caller writes these records again
            self._failure = error
            queue.clear()
        finally:
            del self._senders[slot]

    async def write(
        self,
        topic: str,
        partition: int,
        keys: Sequence[bytes | None],
        values: Sequence[bytes],
        headers: Sequence[Headers] | None = None,
    ) -> None:
        """Append records (in order) to ``topic``'s ``partition``."""
        slot = (topic, partition)
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = self._producer.create_batch()
        for i, (key, value) in enumerate(zip(keys, values)):
            record_headers = list(headers[i]) if headers is not None else None
            if batch.append(key=key, value=value, timestamp=None, headers=record_headers) is None:
                self._enqueue(slot, batch)
                batch = self._batches[slot] = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=record_headers) is None:
                    raise ConnectorError(f"a record of {len(value):,} bytes for {topic!r} does not fit in a batch.")
        self.records_written += len(values)
        await self._backpressure(slot)

    async def write_lines(
        self, topic: str, partition: int, blocks: Sequence[LineBlock], keys: list[bytes], key_ids: Sequence[Int64Array]
    ) -> None:
        """Append one record per line of ``blocks`` (in order, each line without its line break) to ``topic``'s
        ``partition``; line ``i`` of ``blocks[b]`` is keyed by ``keys[key_ids[b][i]]``."""
        slot = (topic, partition)
        open_batch = self._batches.pop(slot, None)
        if open_batch is not None and open_batch.record_count():
            self._enqueue(slot, open_batch)  # records written before these go first
        kept = [b for b, block in enumerate(blocks) if len(block)]
        datas = [blocks[b].data for b in kept]
        starts = [np.ascontiguousarray(blocks[b].starts, dtype=np.int64) for b in kept]
        ids = [np.ascontiguousarray(key_ids[b], dtype=np.int64) for b in kept]
        now_ms = int(time.time() * 1000)
        part, line = 0, 0
        while part < len(kept):
            buffer, taken, part, line = build_batch(datas, starts, ids, part, line, keys, now_ms, MAX_BATCH_BYTES)
            self._enqueue(slot, _BuiltBatch(buffer, taken))
        self.records_written += sum(len(block) for block in blocks)
        await self._backpressure(slot)

    async def _backpressure(self, slot: Slot) -> None:
        sender = self._senders.get(slot)
        if sender is not None and len(self._queued.get(slot, ())) > MAX_QUEUED:
            await asyncio.wait([sender])  # the broker is behind: wait for this partition's queue to go out

    async def send_open(self) -> None:
        """Send every open batch soon, without waiting for acknowledgements or for the producer to take
        them (keeps output latency low)."""
        batches, self._batches = self._batches, {}
        for slot, batch in batches.items():
            if batch.record_count():
                self._enqueue(slot, batch)

    async def flush(self) -> None:
        """Send every open batch and wait for the broker to acknowledge all records written so far."""
        await self.send_open()
        try:
            while self._senders:
                await asyncio.gather(*self._senders.values())
            pending, self._pending = self._pending, []
            delivered = await asyncio.gather(*pending, return_exceptions=True)
            failed = [result for result in delivered if isinstance(result, BaseException)]
            failure, self._failure = self._failure or (failed[0] if failed else None), None
            if failure is not None:
                raise failure
        except KafkaError as error:
            raise ConnectorError(f"the broker did not acknowledge output records: {reason(error)}.") from None
