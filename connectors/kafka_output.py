"""Batched, acknowledged writes to Kafka topics.

Records are appended to per-(topic, partition) producer batches and sent
when a batch fills; ``flush`` sends the rest and waits until the broker has
acknowledged every record written so far. The streaming job flushes before it
commits the input offsets that produced the records, which makes its outputs
at-least-once: a crash can repeat records, never lose them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors.errors import ConnectorError
from connectors.kafka_settings import KafkaSettings

Headers = Sequence[tuple[str, bytes]]


class TopicWriter:
    """Writes records to Kafka in producer batches and tracks their acknowledgements."""

    def __init__(self, settings: KafkaSettings, *, acks: int | str = "all", linger_ms: int = 5) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            **settings.client_options(),
            acks=acks,
            enable_idempotence=False,
            linger_ms=linger_ms,
            max_batch_size=1 << 20,
            max_request_size=4 << 20,
            compression_type=None,
        )
        self._batches: dict[tuple[str, int], Any] = {}
        self._pending: list[asyncio.Future[Any]] = []
        self.records_written = 0

    async def start(self) -> None:
        """Connect to the cluster."""
        try:
            await self._producer.start()
        except KafkaError as error:
            raise ConnectorError(f"cannot connect a producer to {self.settings.bootstrap_servers}: {error}.") from None

    async def stop(self) -> None:
        """Flush and disconnect."""
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def _send(self, topic: str, partition: int, batch: Any) -> None:
        batch.close()
        self._pending.append(await self._producer.send_batch(batch, topic, partition=partition))

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
                await self._send(topic, partition, batch)
                batch = self._batches[slot] = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=record_headers) is None:
                    raise ConnectorError(f"a record of {len(value):,} bytes for {topic!r} does not fit in a batch.")
        self.records_written += len(values)

    async def send_open(self) -> None:
        """Send every open batch now, without waiting for acknowledgements (keeps output latency low)."""
        batches, self._batches = self._batches, {}
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                await self._send(topic, partition, batch)

    async def flush(self) -> None:
        """Send every open batch and wait for the broker to acknowledge all records written so far."""
        await self.send_open()
        pending, self._pending = self._pending, []
        if pending:
            try:
                await asyncio.gather(*pending)
            except KafkaError as error:
                raise ConnectorError(f"the broker did not acknowledge output records: {error}.") from None
