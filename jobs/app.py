"""The Faust worker: group membership and rebalancing from Faust, batched processing beneath it.

Faust (faust-streaming) runs the worker: its lifecycle and signals, the
consumer group, partition assignment and the rebalance callbacks. What Faust
does per event (building a ``Message`` and an ``Event``, queueing it to a
stream, acking it) caps a worker at ~12k events/s, so the app replaces Faust's
``Fetcher`` service, the one that drains the consumer, with ``BatchFetcher``:
it takes the consumer's fetched record batches as they are and hands them,
one batch per partition, to ``StreamingJob``. Window state never lives in
Faust tables; it lives in Winnow's RocksDB partition stores, with the input
offsets in the same write.

Where each input partition resumes is decided by its store, not by the
group's committed offset: on assignment the job restores the partition and
the app seeks it to the stored offset (or the beginning when there is no
state). The group's committed offsets are kept equal to the stored ones, so
lag monitoring sees the truth and Faust's own seek lands in the same place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from mode import Service
from mode.utils.objects import cached_property

from connectors.bare_records import RecordColumns, SourceRecord, read_bare_records
from connectors.kafka_output import TopicWriter
from connectors.kafka_settings import KafkaSettings
from connectors.long_lived_objects import freeze_long_lived
from connectors.metrics import CONSUMER_LAG, MEMORY_DEFERRED
from jobs.faust_sensor import RebalanceSensor
from jobs.live_rules import LiveRules
from jobs.memory_governor import Level
from jobs.memory_watch import MemoryWatch
from jobs.spec import JobSpec
from jobs.streaming import OutputTopics, StreamingJob, StreamingOptions

log = logging.getLogger("winnow.worker")

#: Seconds a stopping worker waits for the broker to acknowledge its last outputs.
SHUTDOWN_FLUSH_TIMEOUT = 15


@dataclass(frozen=True)
class GroupOptions:
    """Consumer-group timing; short values make tests and local runs rebalance quickly."""

    group_id: str
    session_timeout: float = 10.0
    heartbeat_interval: float = 3.0
    rebalance_timeout: float = 30.0
    max_poll_records: int = 20_000
    fetch_max_bytes: int = 32 << 20  # per partition in one fetch (aiokafka's max_partition_fetch_bytes)
    fetch_max_wait_ms: int = 5  # how long the broker may hold a fetch with nothing new


class WinnowConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short broker-side fetch wait, handing out bare records.

    Faust hard-codes ``fetch_max_wait_ms=1500``; a broker that holds a fetch
    for that long before answering adds up to 1.5 s to every event's latency.
    Each partition's records come as columns read from the fetched bytes, not
    as a ``ConsumerRecord`` each (``connectors.bare_records``).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        consumer._fetch_max_wait_ms = app.group.fetch_max_wait_ms if isinstance(app, WinnowApp) else 100
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        read_bare_records(self._consumer)  # the job reads offsets, keys, values, timestamps and traceparents only


class WinnowConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer, positioning the source partitions where Winnow's state ends.

    Faust seeks every assigned partition to the group's committed offset at the
    end of each rebalance (``perform_seek``); right after that, this consumer
    seeks the job's partitions to the offsets stored with their state.
    """

    def _new_consumer_thread(self) -> Any:
        return WinnowConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        app = self.app
        if isinstance(app, WinnowApp):
            await app.position_partitions()


class WinnowApp(faust.App):
    """A Faust app that runs one Winnow job over its source topic."""

    job: StreamingJob | None = None

    def __init__(
        self,
        spec: JobSpec,
        settings: KafkaSettings,
        streaming: StreamingOptions,
        group: GroupOptions,
        live_rules: LiveRules | None = None,
        memory: MemoryWatch | None = None,
    ) -> None:
        self.spec = spec
        self.memory = memory
        self._paused: set[TP] = set()
        self.live_rules = live_rules
        self.kafka = settings
        self.streaming = streaming
        self.group = group
        self.writer: TopicWriter | None = None
        self.assignment_epoch = 0
        self.positioned = False  # source partitions are at the job's positions; fetched records may be used
        self._assigning = False
        faust_dir = streaming.state_dir / "faust"
        faust_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            group.group_id,
            broker=[f"kafka://{server}" for server in settings.servers],
            broker_client_id=settings.client_id,
            broker_credentials=_faust_credentials(settings),
            broker_session_timeout=group.session_timeout,
            broker_heartbeat_interval=group.heartbeat_interval,
            broker_rebalance_timeout=group.rebalance_timeout,
            broker_max_poll_records=group.max_poll_records,
            consumer_max_fetch_size=group.fetch_max_bytes,
            consumer_auto_offset_reset="earliest",
            store="memory://",
            datadir=str(faust_dir),  # Faust's own files stay with the job's state, not in the cwd
            topic_partitions=spec.source.partitions,
            topic_replication_factor=settings.replication_factor,
            topic_allow_declare=False,
            topic_disable_leader=True,
            web_enabled=False,
            producer_acks=1,
            stream_wait_empty=False,
            autodiscover=False,
        )
        self.source = self.topic(
            spec.source.topic,
            key_type=bytes,
            value_type=bytes,
            value_serializer="raw",
            partitions=spec.source.partitions,
        )
        self.topics.add(self.source)
        self.sensors.add(RebalanceSensor(spec.name))
        self.on_partitions_assigned.connect(cast(Any, self._assigned))
        self.on_partitions_revoked.connect(cast(Any, self._revoked))

    @cached_property
    def _fetcher(self) -> BatchFetcher:  # type: ignore[override]
        return BatchFetcher(self, loop=self.loop, beacon=self.consumer.beacon)

    def _new_consumer(self) -> Any:
        return WinnowConsumer(
            self.transport,
            callback=self.topics.on_message,
            loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
        )

    # ---- lifecycle ---------------------------------------------------------------------
    async def on_start(self) -> None:
        await super().on_start()
        self.writer = TopicWriter(self.kafka)
        await self.writer.start(OutputTopics.for_job(self.spec.name).all())
        self.job = StreamingJob(self.spec, self.writer, self.streaming, live_rules=self.live_rules)
        if self.live_rules is not None:
            self.add_future(self.live_rules.follow())
        if self.memory is not None:
            self.add_future(self._govern_memory(self.memory))
        log.info(
            "job %s: reading %s (%d partitions) as group %s, state in %s",
            self.spec.name,
            self.spec.source.topic,
            self.spec.source.partitions,
            self.group.group_id,
            self.streaming.state_dir,
        )

    async def on_stop(self) -> None:
        if self.live_rules is not None:
            self.live_rules.stop()
        await super().on_stop()  # stops the fetcher first: no batch is in flight after this
        job = self.job
        if job is not None:
            if job.failed is None:
                try:
                    positions = await asyncio.wait_for(job.commit(), SHUTDOWN_FLUSH_TIMEOUT)
                    await asyncio.wait_for(self._commit_group(positions), SHUTDOWN_FLUSH_TIMEOUT)
                except (TimeoutError, Exception) as error:  # the broker is gone: outputs cannot be confirmed
                    job.failed = error
                    log.error(
                        "job %s: outputs not acknowledged at shutdown (%r); state left at its last commit, "
                        "the records after it will be read again",
                        self.spec.name,
                        error,
                    )
            await job.close()
            state = "cleanly" if job.failed is None else "without committing its last batches"
            log.info("job %s stopped %s: %s", self.spec.name, state, job.status())
        if self.writer is not None:
            try:
                await asyncio.wait_for(self.writer.stop(), SHUTDOWN_FLUSH_TIMEOUT)
            except TimeoutError:
                log.error(
                    "job %s: the output producer did not stop within %d s", self.spec.name, SHUTDOWN_FLUSH_TIMEOUT
                )

    # ---- memory ------------------------------------------------------------------------
    async def _govern_memory(self, watch: MemoryWatch) -> None:
        """Read memory on the governor's interval and act on its level (see ``jobs.memory_watch``)."""
        relieved_at = 0.0
        while not self.should_stop:
            await asyncio.sleep(watch.interval)
            job = self.job
            if job is None:
                continue
            transition = watch.poll()
            level = watch.level
            job.memory_pressure = level >= Level.PRESSURE
            now = asyncio.get_running_loop().time()
            rising = transition is not None and transition.level > transition.previous
            if level >= Level.PRESSURE and (rising or now - relieved_at >= 2.0):
                critical = rising and level == Level.CRITICAL
                resident, evicted = await job.relieve_memory(checkpoint=critical)
                watch.relieve()
                relieved_at = now
                if rising:
                    log.warning(
                        "job %s: memory %s: state committed; %d panes left in memory, %d evicted to RocksDB so far%s",
                        self.spec.name,
                        level.name.lower(),
                        resident,
                        evicted,
                        ", partitions checkpointed" if critical else "",
                    )
            self._fetch_less(level >= Level.PRESSURE)
            self._pause_for_memory(job, level >= Level.THROTTLE)

    def _fetch_less(self, smaller: bool) -> None:
        """Smaller fetches and batches at pressure (a tenth), the configured sizes otherwise."""
        thread = getattr(self.consumer, "_thread", None)
        consumer = getattr(thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if consumer is None or fetcher is None:
            return
        divisor = 10 if smaller else 1
        consumer._max_poll_records = max(500, self.group.max_poll_records // divisor)
        fetcher._max_partition_fetch_bytes = max(256 << 10, self.group.fetch_max_bytes // divisor)

    def _pause_for_memory(self, job: StreamingJob, pause: bool) -> None:
        """Pause (or resume) fetching from the source partitions: Kafka keeps the records meanwhile."""
        consumer: Any = self.consumer
        if pause and job.owned:
            owned = {self._tp(p) for p in job.owned}
            consumer.pause_partitions(owned)  # again each time: a rebalance makes partitions active again
            if owned != self._paused:
                log.warning(
                    "job %s: input paused on partitions %s", self.spec.name, sorted(tp.partition for tp in owned)
                )
            self._paused = owned
            deferred = 0
            for tp in owned:
                highwater, position = consumer.highwater(tp), job.position(tp.partition)
                if highwater is not None and position is not None:
                    deferred += max(0, highwater - position)
            MEMORY_DEFERRED.labels(self.spec.name).set(deferred)
        elif self._paused:
            consumer.resume_partitions(self._paused)
            log.info(
                "job %s: input resumed on partitions %s", self.spec.name, sorted(tp.partition for tp in self._paused)
            )
            self._paused = set()
            MEMORY_DEFERRED.labels(self.spec.name).set(0)

    # ---- rebalancing -------------------------------------------------------------------
    def _source_partitions(self, tps: Any) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == self.spec.source.topic)

    async def _assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        job = self.job
        if job is None:
            return
        self.positioned = False
        self._assigning = True
        self.assignment_epoch += 1
        try:
            partitions = self._source_partitions(assigned)
            revoked = job.owned - set(partitions)
            if revoked:
                await job.revoke(revoked)
            await job.assign(partitions)
        finally:
            self._assigning = False
        # Faust's own seek to committed offsets may come before or after this point; positioning
        # here and again after each of Faust's seeks leaves the partitions where the state ends.
        await self.position_partitions()
        freeze_long_lived(f"worker of {self.spec.name}")  # once, at the first assignment: the worker is up

    async def _revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        if self.job is not None:
            self.positioned = False
            self.assignment_epoch += 1
            await self.job.revoke(self._source_partitions(revoked))

    def _tp(self, partition: int) -> TP:
        return TP(self.spec.source.topic, partition)

    async def position_partitions(self) -> None:
        """Seek every owned partition to where its stored state ends (fresh ones: the beginning)."""
        job = self.job
        if job is None or self._assigning:
            return  # the assignment handler positions the partitions when it is done
        consumer: Any = self.consumer
        owned = sorted(job.owned)
        fresh = [p for p in owned if job.position(p) is None]
        if fresh:
            earliest = await consumer.earliest_offsets(*[self._tp(p) for p in fresh])
            for tp, offset in earliest.items():
                job.start_at(tp.partition, int(offset or 0))
        seeks = {self._tp(p): position for p in owned if (position := job.position(p)) is not None}
        if seeks:
            await consumer.seek_wait(seeks)
        self.positioned = True
        log.info("source partitions positioned: %s", {tp.partition: offset for tp, offset in sorted(seeks.items())})

    async def _commit_group(self, positions: Mapping[int, int]) -> None:
        """Record the stored positions as the group's committed offsets (for lag monitoring)."""
        if positions:
            consumer: Any = self.consumer
            await consumer._commit({self._tp(p): offset for p, offset in positions.items()})

    async def seek(self, positions: Mapping[int, int]) -> None:
        """Seek source partitions (after a gap in offsets, to read them again)."""
        consumer: Any = self.consumer
        await consumer.seek_wait({self._tp(p): offset for p, offset in positions.items()})


class BatchFetcher(Service):
    """Drains the Faust consumer in record batches and runs them through the job.

    Takes the place of Faust's per-message ``Fetcher``. A batch, once started,
    runs to completion even if Faust stops the fetcher (it is shielded), and
    the job's lock makes revocation wait for it.
    """

    def __init__(self, app: WinnowApp, **kwargs: Any) -> None:
        self.app = app
        self._committed_at = -1
        self._group_commit: asyncio.Task[None] | None = None
        super().__init__(**kwargs)

    def _commit_group_in_background(self, positions: Mapping[int, int]) -> None:
        """Record the job's positions as the group's offsets without holding up the next batch (they serve
        lag monitoring only); while one such commit is on its way, the next waits for a later batch."""
        running = self._group_commit
        if running is not None and not running.done():
            return
        self._committed_at = self.app.job.commits if self.app.job is not None else -1
        self._group_commit = asyncio.ensure_future(self._commit_group(positions))

    async def _commit_group(self, positions: Mapping[int, int]) -> None:
        try:
            await self.app._commit_group(positions)
        except Exception as error:  # the next commit tries again
            log.warning("job %s: committing the group's offsets failed: %r", self.app.spec.name, error)

    @Service.task
    async def _drain(self) -> None:
        app = self.app
        consumer: Any = app.consumer
        job = app.job
        if job is None:
            return
        topic = app.spec.source.topic
        while not self.should_stop:
            if not consumer.flow_active or not app.positioned:
                await self.sleep(0.05)
                continue
            epoch = app.assignment_epoch
            records, _ = await consumer._wait_next_records(0.5)
            if epoch != app.assignment_epoch or not app.positioned or not consumer.flow_active:
                continue  # fetched across a rebalance: read again from the new positions
            batches: dict[int, RecordColumns | list[SourceRecord]] = {
                tp.partition: batch for tp, batch in (records or {}).items() if tp.topic == topic and len(batch)
            }
            work = asyncio.ensure_future(job.process(batches) if batches else job.tick())
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                await asyncio.wait([work])  # finish the batch; revocation waits on the job's lock anyway
                raise
            except Exception as error:
                log.error("job %s failed: %s", app.spec.name, error)
                await app.crash(error)
                return
            if job.gaps:
                gaps, job.gaps = job.gaps, {}
                await app.seek(gaps)
            for partition in batches:
                highwater = consumer.highwater(app._tp(partition))
                position = job.position(partition)
                if highwater is not None and position is not None:
                    CONSUMER_LAG.labels(app.spec.name, str(partition)).set(max(0, highwater - position))
            if job.commits != self._committed_at:
                self._commit_group_in_background({p: pos for p, pos in job.committed.items() if p in job.owned})


def _faust_credentials(settings: KafkaSettings) -> Any:
    if settings.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.ssl_context(),
        )
    context = settings.ssl_context()
    return faust.SSLCredentials(context) if context is not None else None
