"""Batched, acknowledged writes to Kafka topics.

Records are appended to per-(topic, partition) producer batches and sent
when a batch fills; ``flush`` sends the rest and waits until the broker has
acknowledged every record written so far. ``mark`` sends the rest and marks
them: ``acknowledge`` waits for the records before a mark only, and
``acknowledged`` tells without waiting. The streaming job commits the input
offsets that produced records only once they are acknowledged, which makes its
outputs at-least-once: a crash can repeat records, never lose them. A flush that fails
says so and guarantees nothing about the records written since the last flush
that succeeded: the caller writes them again (the streaming job stops and
restarts from its last commit). The writer does not keep failed batches to send
again; aiokafka's batches do not survive a failed send (sent again after the
broker came back, they were refused with UnknownError).

The producers run on an event loop of their own, in a thread (``_Sending``).
The caller's loop is busy with the job for most of a batch; on that loop the
producers' requests, acknowledgements and next requests would wait for it, and
the broker would sit idle while the job works. In their own thread they go on
meanwhile. Batches are built and closed in the caller's thread and handed over
in order.

aiokafka keeps one request in flight per producer and broker, and makes
``send_batch`` wait until the partition's previous batch has gone out, about a
broker round trip. The writer therefore has ``CONNECTIONS`` producers, each
partition writing through one of them for good (so its records stay in order),
and hands closed batches to them from one task per partition. A write waits
(backpressure) only while more than ``max_queued_bytes`` of closed batches wait
for their producers: a batch's output comes in a burst (a fetched batch's
results and decisions at once) that the producers send while the next one is
processed, so the bound is on bytes in all partitions, not on batches per
partition (eight a partition made a worker wait 7% of its time).

Output lines (results and decisions, several per input event) take
``write_lines``: their batches are built whole in C from the packed line buffer
(``connectors/record_batches.pyx``) instead of one aiokafka ``append`` per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from connectors.errors import ConnectorError
from connectors.kafka_settings import KafkaSettings
from connectors.line_blocks import Lines
from connectors.produce_requests import encode_produce_requests_in_one_join
from connectors.record_batches import build_batch
from windows.errors import reason
from windows.events import Int64Array

Headers = Sequence[tuple[str, bytes]]
Slot = tuple[str, int]  # (topic, partition)
T = TypeVar("T")

#: Bytes of closed batches that may wait for their producers before a write waits for them.
MAX_QUEUED_BYTES = 64 << 20
#: The largest producer batch, in bytes (a single larger record goes alone in its batch).
MAX_BATCH_BYTES = 1 << 20
#: Producers (connections to each broker) of one writer.
CONNECTIONS = 4
#: How long ``stop`` waits for the producer thread to end once its producers are stopped.
THREAD_JOIN_SECONDS = 10.0


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


class _Sending:
    """The writer's producers and per-partition send queues; every method runs on the producer thread's
    loop. ``handed(size)`` is called there whenever a batch of ``size`` bytes left its partition's queue, and
    ``delivered(serial, error)`` once a batch's fate is known (``error`` None: the broker acknowledged it)."""

    def __init__(
        self,
        producers: list[AIOKafkaProducer],
        handed: Callable[[int], None],
        delivered: Callable[[int, Exception | None], None],
    ) -> None:
        self.producers = producers
        self.handed = handed
        self.delivered = delivered
        self.producer_of: dict[Slot, AIOKafkaProducer] = {}  # for good: a partition's records stay in order
        # closed batches not yet handed to the producer, in order, with their serial numbers and sizes
        self.queued: dict[Slot, list[tuple[int, int, Any]]] = {}
        self.senders: dict[Slot, asyncio.Task[None]] = {}

    async def start(self, topics: Sequence[str]) -> None:
        for producer in self.producers:
            await producer.start()
            for topic in topics:
                await producer.partitions_for(topic)

    def producer(self, slot: Slot) -> AIOKafkaProducer:
        """The producer of a partition: handed out in turn as partitions are first written."""
        producer = self.producer_of.get(slot)
        if producer is None:
            producer = self.producer_of[slot] = self.producers[len(self.producer_of) % len(self.producers)]
        return producer

    def enqueue(self, slot: Slot, serial: int, size: int, batch: Any) -> None:
        """Queue a closed batch for its partition's sender, starting the sender when none runs."""
        self.queued.setdefault(slot, []).append((serial, size, batch))
        if slot not in self.senders:
            self.senders[slot] = asyncio.ensure_future(self._send_queued(slot))

    async def _send_queued(self, slot: Slot) -> None:
        queue = self.queued[slot]
        producer = self.producer(slot)
        try:
            while queue:
                serial, size, batch = queue[0]
                delivery = await producer.send_batch(batch, slot[0], partition=slot[1])
                delivery.add_done_callback(functools.partial(self._settled, serial))
                queue.pop(0)
                self.handed(size)
        except BaseException as error:  # the batches not sent fail; the caller writes these records again
            failure = (
                error
                if isinstance(error, Exception)
                else ConnectorError("sending output records was cancelled; they must be written again.")
            )
            for serial, size, _ in queue:
                self.delivered(serial, failure)
                self.handed(size)
            queue.clear()
            if not isinstance(error, Exception):
                raise
        finally:
            del self.senders[slot]

    def _settled(self, serial: int, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled():
            self.delivered(serial, ConnectorError("an output batch's delivery was cancelled; write it again."))
            return
        error = delivery.exception()
        self.delivered(serial, error if error is None or isinstance(error, Exception) else ConnectorError(repr(error)))

    async def stop(self) -> None:
        for producer in self.producers:
            await producer.stop()
        for sender in list(self.senders.values()):  # none is left after a flush that succeeded
            sender.cancel()
        await asyncio.gather(*self.senders.values(), return_exceptions=True)


class TopicWriter:
    """Writes records to Kafka in producer batches and tracks their acknowledgements."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        acks: int | str = "all",
        linger_ms: int = 5,
        request_timeout_ms: int = 40_000,
        connections: int = CONNECTIONS,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        if connections < 1:
            raise ConnectorError(f"a topic writer needs at least one producer connection, not {connections}.")
        self.settings = settings
        self._producer_options: dict[str, Any] = dict(
            settings.client_options(),
            acks=acks,
            request_timeout_ms=request_timeout_ms,
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=4 << 20,
            compression_type=None,
        )
        self._connections = connections
        self._loop: asyncio.AbstractEventLoop | None = None  # the producer thread's
        self._thread: threading.Thread | None = None
        self._sending: _Sending | None = None
        self._batches: dict[Slot, Any] = {}  # the open batch of each partition
        self.max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0  # of batches handed to the producer thread, not yet to a producer
        self._moved: asyncio.Event | None = None  # set when some of them went on
        self._serial = 0  # batches handed over so far: the serial number of the last one
        self._outstanding: dict[int, None] = {}  # serials of batches not acknowledged yet, in order
        self._failures: list[tuple[int, Exception]] = []  # batches that failed, not reported yet
        self._settled: asyncio.Event | None = None  # set when some of them were acknowledged or failed
        self.records_written = 0

    async def start(self, topics: Sequence[str] = ()) -> None:
        """Start the producer thread, connect to the cluster and learn the partitions of ``topics`` (the
        topics about to be written), so that the first records do not wait for a metadata request and a new
        connection."""
        encode_produce_requests_in_one_join()  # every output byte copied once into its request, not five times
        caller = asyncio.get_running_loop()
        self._moved = asyncio.Event()
        self._settled = asyncio.Event()
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="winnow-producer", daemon=True)
        self._thread.start()

        def handed(size: int) -> None:  # on the producer thread
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits for the count
                caller.call_soon_threadsafe(self._handed, size)

        def delivered(serial: int, error: Exception | None) -> None:  # on the producer thread
            with contextlib.suppress(RuntimeError):
                caller.call_soon_threadsafe(self._delivered, serial, error)

        async def create() -> _Sending:  # producers take the loop they are created on
            producers = [AIOKafkaProducer(**self._producer_options) for _ in range(self._connections)]
            return _Sending(producers, handed, delivered)

        try:
            self._sending = await self._call(create())
            await self._call(self._sending.start(topics))
        except BaseException as error:
            await self._shutdown()
            if isinstance(error, KafkaError):
                servers = self.settings.bootstrap_servers
                raise ConnectorError(f"cannot connect a producer to {servers}: {reason(error)}.") from None
            raise

    async def _call(self, work: Awaitable[T]) -> T:
        """Run ``work`` on the producer thread and wait for it here."""
        assert self._loop is not None, "the writer was not started"
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self._loop)  # type: ignore[arg-type]
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """Flush, disconnect and end the producer thread."""
        if self._loop is None:
            return
        try:
            await self.flush()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop the producers and end the producer thread (what they had not sent is dropped)."""
        loop, thread, sending = self._loop, self._thread, self._sending
        if loop is None:
            return
        try:
            if sending is not None:
                await self._call(sending.stop())
        finally:
            self._loop = self._thread = self._sending = None
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                await asyncio.to_thread(thread.join, THREAD_JOIN_SECONDS)
            if thread is None or not thread.is_alive():
                loop.close()

    def _handed(self, size: int) -> None:
        self._queued_bytes -= size
        if self._moved is not None:
            self._moved.set()

    def _delivered(self, serial: int, error: Exception | None) -> None:
        self._outstanding.pop(serial, None)
        if error is not None:
            self._failures.append((serial, error))
        if self._settled is not None:
            self._settled.set()

    def _new_batch(self) -> Any:
        assert self._sending is not None, "the writer was not started"
        return self._sending.producers[0].create_batch()  # a builder only: it takes no producer's loop

    def _enqueue(self, slot: Slot, batch: Any) -> None:
        """Close a batch and hand it to the producer thread, behind the partition's earlier batches."""
        assert self._loop is not None and self._sending is not None, "the writer was not started"
        batch.close()
        size = batch.size()
        self._queued_bytes += size
        self._serial += 1
        self._outstanding[self._serial] = None
        self._loop.call_soon_threadsafe(self._sending.enqueue, slot, self._serial, size, batch)

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
            batch = self._batches[slot] = self._new_batch()
        for i, (key, value) in enumerate(zip(keys, values)):
            record_headers = list(headers[i]) if headers is not None else None
            if batch.append(key=key, value=value, timestamp=None, headers=record_headers) is None:
                self._enqueue(slot, batch)
                batch = self._batches[slot] = self._new_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=record_headers) is None:
                    raise ConnectorError(f"a record of {len(value):,} bytes for {topic!r} does not fit in a batch.")
        self.records_written += len(values)
        await self._backpressure()

    async def write_lines(
        self, topic: str, partition: int, blocks: Sequence[Lines], keys: list[bytes], key_ids: Sequence[Int64Array]
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
        await self._backpressure()

    async def _backpressure(self) -> None:
        moved = self._moved
        while moved is not None and self._queued_bytes > self.max_queued_bytes:
            moved.clear()  # the broker is behind: wait until the producers took some
            await moved.wait()

    async def send_open(self) -> None:
        """Send every open batch soon, without waiting for acknowledgements or for the producer to take
        them (keeps output latency low)."""
        batches, self._batches = self._batches, {}
        for slot, batch in batches.items():
            if batch.record_count():
                self._enqueue(slot, batch)

    async def mark(self) -> int:
        """Send every open batch soon; return a mark of every record written so far (``acknowledge`` waits
        for them, ``acknowledged`` tells whether they were)."""
        await self.send_open()
        return self._serial

    def acknowledged(self, mark: int) -> bool:
        """Whether every record written before ``mark`` (see ``mark``) was acknowledged, or failed."""
        return not self._outstanding or next(iter(self._outstanding)) > mark

    async def acknowledge(self, mark: int) -> None:
        """Wait until the broker has acknowledged every record written before ``mark``; raise what went wrong
        with any of them (and report it once). Records written since may still be on their way."""
        settled = self._settled
        assert settled is not None, "the writer was not started"
        while not self.acknowledged(mark):
            settled.clear()
            if not self.acknowledged(mark):
                await settled.wait()
        failed = [error for serial, error in self._failures if serial <= mark]
        if failed:
            self._failures = [(serial, error) for serial, error in self._failures if serial > mark]
            if isinstance(failed[0], KafkaError):
                raise ConnectorError(f"the broker did not acknowledge output records: {reason(failed[0])}.")
            raise failed[0]

    async def flush(self) -> None:
        """Send every open batch and wait for the broker to acknowledge all records written so far."""
        await self.acknowledge(await self.mark())
