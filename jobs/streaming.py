"""The streaming job: the replay pipeline over Kafka records, with state and offsets committed together.

This module knows Kafka records and topics but not Faust: ``jobs.app`` feeds it
the batches its consumer fetches and tells it about assignments and
revocations. For every assigned input partition the job opens that
partition's RocksDB store, restores its engine, and asks to resume right
after the stored offset. Outputs go to ``<job>.results``, ``<job>.decisions``,
``<job>.late`` and ``<job>.rejected``.

The commit protocol makes window state exactly-once with respect to the input
and outputs at-least-once: outputs of processed records are written and
acknowledged by the broker first, then the window state and the next input
offset are written to RocksDB in one atomic batch. A crash before the second
step replays the records after the stored offset, which rebuilds the same
state and re-sends the same outputs (decisions keep their deterministic ids).

A commit between batches does not wait for the acknowledgements: it fills the
write batch with the state as it is (``JobRunner.prepare_commit``), marks the
outputs written so far (``TopicWriter.mark``) and lets the next batch run
while they travel. The batch is written once the broker has acknowledged
everything before the mark, at the start of a later batch or, at the latest,
before the next commit is prepared (``StreamingJob._settle``). Commits that
must be on disk when they return (revocation, checkpoints, memory relief,
shutdown) wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectors import metrics
from connectors.bare_records import RecordColumns, SourceRecord
from connectors.event_decoding import LateRecord, Rejected
from connectors.kafka_output import Headers, TopicWriter
from connectors.line_blocks import DecisionBlock, Lines
from connectors.metrics import DECISION_LATENCY, RULES_REVISION, RULES_STALE
from jobs.decisions import RuleSet
from jobs.keys import KeyRegistry
from jobs.live_rules import LiveRules
from jobs.pipeline import JobRunner
from jobs.run_metrics import RunMetrics
from jobs.spec import JobSpec
from state.checkpoint_storage import LocalCheckpointStorage
from state.checkpoints import Checkpoints
from state.partition_store import PreparedCommit
from state.window_store import WindowStore
from windows.events import Int64Array
from windows.stream_time import NO_TIME

log = logging.getLogger("winnow.streaming")


@dataclass(frozen=True)
class OutputTopics:
    """The topics a job writes, named after the job."""

    results: str
    decisions: str
    late: str
    rejected: str

    @classmethod
    def for_job(cls, job: str) -> OutputTopics:
        return cls(f"{job}.results", f"{job}.decisions", f"{job}.late", f"{job}.rejected")

    def all(self) -> list[str]:
        return [self.results, self.decisions, self.late, self.rejected]


@dataclass
class _Pending:
    """Records gathered for one topic partition: lines with their key ids (results and decisions), and
    separate records (late and rejected ones); a topic gets only one of the two kinds."""

    key_ids: list[Int64Array] = field(default_factory=list)
    lines: list[Lines] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    headers: list[Headers] | None = None


class KafkaOutputs:
    """An ``OutputSink`` that gathers one batch's output records per topic and partition.

    Results and decisions of input partition p go to partition p of their
    topic, keyed by the event key: with the same partition count and Kafka's
    default partitioner that is where the key would land anyway. Rejected
    records keep the original key and value bytes untouched; the reason and the
    source position travel in headers.
    """

    def __init__(self, job: str, source_topic: str, topics: OutputTopics, registry: KeyRegistry) -> None:
        self.job = job
        self.source_topic = source_topic
        self.topics = topics
        self.registry = registry
        self.original_key: Callable[[int, int], bytes | None] = lambda partition, offset: None
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._origins: list[Int64Array] = []  # trace origin times (epoch ms, 0: unknown) of decisions not yet written
        self.counts: dict[str, int] = {"results": 0, "updates": 0, "decisions": 0, "late": 0, "rejected": 0}

    def _slot(self, topic: str, partition: int) -> _Pending:
        slot = self._pending.get((topic, partition))
        if slot is None:
            slot = self._pending[(topic, partition)] = _Pending()
        return slot

    def results(
        self, partition: int, emitted_at: Int64Array, key_ids: Int64Array, lines: Lines, *, final: bool
    ) -> None:
        slot = self._slot(self.topics.results, partition)
        slot.key_ids.append(key_ids)
        slot.lines.append(lines)
        self.counts["results" if final else "updates"] += len(lines)

    def decisions(self, partition: int, decisions: DecisionBlock) -> None:
        slot = self._slot(self.topics.decisions, partition)
        slot.key_ids.append(decisions.key_ids)
        slot.lines.append(decisions.lines)
        self.counts["decisions"] += len(decisions)
        self._origins.append(decisions.origins)

    def late(self, records: list[LateRecord]) -> None:
        for record in records:
            slot = self._slot(self.topics.late, record.partition)
            slot.keys.append(self.registry.utf8[record.key_id])
            slot.values.append(record.line.rstrip(b"\n"))
        self.counts["late"] += len(records)

    def rejected(self, partition: int | None, rejected: list[Rejected], lines: list[bytes]) -> None:
        p = partition or 0
        slot = self._slot(self.topics.rejected, p)
        if slot.headers is None:
            slot.headers = [()] * len(slot.values)
        for item in rejected:
            slot.keys.append(self.original_key(p, item.seq))
            slot.values.append(item.raw)
            slot.headers.append(
                (
                    ("winnow-reason", item.reason.encode()),
                    ("winnow-kind", item.kind.encode()),
                    ("winnow-job", self.job.encode()),
                    ("winnow-source", f"{self.source_topic}/{p}/{item.seq}".encode()),
                )
            )
        self.counts["rejected"] += len(rejected)

    async def write(self, writer: TopicWriter) -> int:
        """Hand every gathered record to ``writer``; return how many."""
        pending, self._pending = self._pending, {}
        if self._origins:  # the batch's decisions, observed at once: an observation costs more than its values
            origins = np.concatenate(self._origins)
            self._origins = []
            origins = origins[origins != 0]
            DECISION_LATENCY.observe(self.job, np.maximum(time.time() * 1000.0 - origins, 0.0) / 1000.0)
        total = 0
        for (topic, partition), slot in pending.items():
            if slot.lines:  # key ids become key bytes here: before any commit, so before the registry compacts
                await writer.write_lines(topic, partition, slot.lines, self.registry.utf8, slot.key_ids)
                total += sum(len(lines) for lines in slot.lines)
            if slot.values:
                await writer.write(topic, partition, slot.keys, slot.values, slot.headers)
                total += len(slot.values)
        return total


@dataclass(frozen=True)
class _Unwritten:
    """A prepared commit waiting for the acknowledgement of the outputs before it."""

    mark: int  # the writer's mark of those outputs
    prepared: list[PreparedCommit]
    positions: dict[int, int]  # the input positions it stores
    relieve: bool  # a commit to relieve memory: flush RocksDB's memtables once written


@dataclass(frozen=True)
class StreamingOptions:
    """How a worker runs its job."""

    state_dir: Path
    commit_interval: float = 1.0
    idle_timeout: float | None = None  # seconds without records before wall clock moves stream time
    checkpoint_dir: Path | None = None  # None: no checkpoints
    checkpoint_interval: float = 30.0
    checkpoint_retention: int = 3
    resident_panes: int = 1_000_000  # window panes kept in memory across partitions; the rest stay in RocksDB


class StreamingJob:
    """One worker's share of a job: the partitions it owns, their engines and stores."""

    def __init__(
        self,
        spec: JobSpec,
        writer: TopicWriter,
        options: StreamingOptions,
        clock: Callable[[], float] = time.monotonic,
        live_rules: LiveRules | None = None,
    ) -> None:
        self.spec = spec
        self.writer = writer
        self.options = options
        self.clock = clock
        self.topics = OutputTopics.for_job(spec.name)
        self.registry = KeyRegistry(spec.source.partitions)
        self.outputs = KafkaOutputs(spec.name, spec.source.topic, self.topics, self.registry)
        self.store = WindowStore(options.state_dir, spec.state_fingerprint)
        self.runner = JobRunner(spec, self.outputs, position_field="offset", store=self.store, registry=self.registry)
        self.live_rules = live_rules
        if live_rules is not None and live_rules.current is not None:
            loaded = live_rules.current
            self.runner.rules = RuleSet(spec.name, loaded.rules, loaded.revision)
            live_rules.take_pending()
            log.info(
                "rules from etcd %s at revision %d: %s",
                live_rules.location.prefix,
                loaded.revision,
                ", ".join(rule.name for rule in loaded.rules) or "(none)",
            )
        self.lock = asyncio.Lock()
        self.owned: set[int] = set()
        self._dirty: set[int] = set()
        self._last_commit = clock()
        # partition -> (wall clock, stream time) when its stream time last moved
        self._clock_marks: dict[int, tuple[float, int]] = {}
        self._batch_records: dict[int, RecordColumns] = {}
        self.outputs.original_key = self._original_key
        self.records_in = 0
        self.commits = 0  # commits written
        self.committed: dict[int, int] = {}  # the input position each partition's last written commit stored
        self._unwritten: _Unwritten | None = None  # the commit prepared last, until it is written
        self.failed: BaseException | None = None  # after a failed batch nothing more is committed
        self.checkpoints = (
            Checkpoints(
                LocalCheckpointStorage(options.checkpoint_dir),
                spec.name,
                spec.state_fingerprint,
                options.checkpoint_retention,
            )
            if options.checkpoint_dir is not None
            else None
        )
        self._uploads: dict[int, asyncio.Task[None]] = {}
        self._last_checkpoint = clock()
        self._checkpoint_serial = 0
        self.checkpoints_taken = 0
        self.gaps: dict[int, int] = {}  # partition -> offset to read again from (records skipped ahead)
        self.run_metrics = RunMetrics(spec)
        self.memory_pressure = False  # set by the memory governor: commit every batch, keep little in memory
        self._gap_seen: dict[int, tuple[int, int]] = {}

    # ---- ownership ---------------------------------------------------------------------
    async def assign(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """Own ``partitions``; return, for each, the offset to resume at (None: the beginning)."""
        async with self.lock:
            resume: dict[int, int | None] = {}
            for partition in sorted(set(partitions)):
                if not 0 <= partition < self.spec.source.partitions:
                    raise ValueError(f"partition {partition} is outside the job's {self.spec.source.partitions}")
                if partition not in self.owned:
                    await self._restore_from_checkpoint(partition)
                    engine = self.runner.engine(partition)  # opens the store and restores state
                    self.owned.add(partition)
                    self._clock_marks[partition] = (self.clock(), engine.stream_time)
                    log.info(
                        "partition %d assigned: %s",
                        partition,
                        f"resuming at offset {self.runner.positions[partition]}"
                        if partition in self.runner.positions
                        else "no stored state, reading from the beginning",
                    )
                resume[partition] = self.runner.positions.get(partition)
            return resume

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Give up ``partitions``: flush outputs, commit their state and offsets, close their stores."""
        async with self.lock:
            gone = sorted(set(partitions) & self.owned)
            if not gone:
                return
            clean = self.failed is None
            if clean:
                await self._settle()
                await self._write_outputs()
                if self.checkpoints is not None:  # so whoever gets them next restores recent state
                    self.runner.commit(gone)
                    self._checkpoint_partitions(gone)
            for partition in gone:
                self.runner.release(partition, commit=clean)
                self.owned.discard(partition)
                self.committed.pop(partition, None)
                self._dirty.discard(partition)
                self._clock_marks.pop(partition, None)
            log.info("partitions %s revoked after committing their state", gone)

    def position(self, partition: int) -> int | None:
        """The next offset to read in an owned partition (None: nothing read or stored yet)."""
        return self.runner.positions.get(partition)

    def start_at(self, partition: int, offset: int) -> None:
        """A partition with no state starts at ``offset`` (the beginning of its log)."""
        if partition in self.owned and partition not in self.runner.positions:
            self.runner.positions[partition] = offset

    # ---- processing --------------------------------------------------------------------
    def _original_key(self, partition: int, offset: int) -> bytes | None:
        records = self._batch_records.get(partition)
        return records.key_at(offset) if records is not None else None

    async def process(self, batches: Mapping[int, RecordColumns | Sequence[SourceRecord]]) -> int:
        """Run one fetched batch per partition (as columns, or record objects) through the job; return records
        applied.

        Records of partitions this worker does not own, and records before a
        partition's position (already reflected in its state), are skipped.
        """
        started = time.perf_counter()
        async with self.lock:
            await self._settle(wait=False)  # the last commit, if its outputs were acknowledged meanwhile
            self._apply_rules()
            processed = 0
            for partition, fetched in batches.items():
                if partition not in self.owned or not len(fetched):
                    continue
                records = fetched if isinstance(fetched, RecordColumns) else RecordColumns.of(fetched)
                position = self.runner.positions.get(partition, 0)
                first = int(records.offsets[0])
                if first < position:
                    records = records.since(position)
                    if not len(records):
                        continue
                elif first > position and partition in self.runner.positions:
                    gap = (position, first)
                    if self._gap_seen.get(partition) != gap:
                        # Records were fetched from past this partition's position: read again from it.
                        self._gap_seen[partition] = gap
                        self.gaps[partition] = position
                        continue
                    log.warning(
                        "partition %d: offsets %d to %d are not in the topic (retention or compaction); going on",
                        partition,
                        position,
                        first - 1,
                    )
                self._batch_records[partition] = records
                traced = self.spec.traced
                try:
                    self.runner.process(
                        records.values,
                        records.offsets,
                        partition,
                        traceparents=records.traceparents if traced else None,
                        origins=records.timestamps if traced else None,
                    )
                except BaseException as error:
                    self.failed = error
                    raise
                finally:
                    self._batch_records.pop(partition, None)
                self._dirty.add(partition)
                engine = self.runner.engines[partition]
                if engine.stream_time != self._clock_marks[partition][1]:
                    self._clock_marks[partition] = (self.clock(), engine.stream_time)
                processed += len(records)
            if processed and not self.records_in:
                log.info(
                    "first records processed at %.3f (epoch s), after %.3f s of this process's CPU time",
                    time.time(),
                    time.process_time(),
                )
            self._export_counts(processed, started)
            self.records_in += processed
            if processed:
                await self.outputs.write(self.writer)
                await self.writer.send_open()
            if self.memory_pressure or self.clock() - self._last_commit >= self.options.commit_interval:
                # at pressure the commit is written now, so that panes can leave memory
                await self._commit(behind=not self.memory_pressure)
            await self._maybe_checkpoint()
            return processed

    def _export_counts(self, consumed: int, started: float) -> None:
        """Add to the Prometheus counters what the runner counted since the last call."""
        self.run_metrics.export(self.runner)
        if consumed:
            metrics.BATCH_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)

    def _apply_rules(self) -> None:
        """Swap in a new live rule set, between two batches, and carry the staleness flag."""
        live = self.live_rules
        if live is None:
            return
        update = live.take_pending()
        if update is not None:
            previous = self.runner.rules.revision
            self.runner.rules = self.runner.rules.succeeded_by(RuleSet(self.spec.name, update.rules, update.revision))
            log.info("rules: revision %s replaced by revision %d", previous, update.revision)
        RULES_REVISION.labels(self.spec.name).set(self.runner.rules.revision or 0)
        stale = live.stale
        RULES_STALE.labels(self.spec.name).set(1 if stale else 0)
        if stale != self.runner.rules.stale:
            log.warning("rules: %s", "stale (etcd unreachable)" if stale else "fresh again")
            self.runner.rules.stale = stale

    async def tick(self) -> None:
        """Periodic work without records: rule updates, idle-partition clocks and interval commits."""
        async with self.lock:
            await self._settle()  # no records: nothing to overlap with the acknowledgements
            self._apply_rules()
            timeout = self.options.idle_timeout
            if timeout is not None:
                now = self.clock()
                for partition in sorted(self.owned):
                    since, stream_time = self._clock_marks[partition]
                    engine = self.runner.engines.get(partition)
                    if engine is None or engine.stream_time == NO_TIME or now - since < timeout:
                        continue
                    target = stream_time + int((now - since) * 1000)
                    if target > engine.stream_time:
                        emitted = self.runner.advance(partition, target)
                        self._dirty.add(partition)
                        if emitted:
                            log.info(
                                "partition %d idle for %.1f s: stream time moved to %d, %d windows emitted",
                                partition,
                                now - since,
                                target,
                                emitted,
                            )
                await self.outputs.write(self.writer)
            if self._dirty and self.clock() - self._last_commit >= self.options.commit_interval:
                await self._commit()
            await self._maybe_checkpoint()

    async def commit(self) -> dict[int, int]:
        """Flush outputs, then commit state and offsets; return the committed positions."""
        async with self.lock:
            return await self._commit()

    async def _commit(self, *, relieve: bool = False, behind: bool = False) -> dict[int, int]:
        """Commit the owned partitions' state and positions once the outputs so far are acknowledged; return
        the positions. ``behind``: return at once, the commit being written by a later ``_settle``."""
        if self.failed is not None:
            raise RuntimeError(f"not committing: a batch failed part-way ({self.failed!r})")
        with metrics.COMMIT_SECONDS.labels(self.spec.name).time():
            return await self._commit_now(relieve, behind)

    async def _write_outputs(self) -> None:
        """Write the held outputs and wait for the broker to acknowledge them. A failure loses the records
        since the last good flush, so nothing is committed after it (the job reads them again from the last
        commit when it restarts)."""
        try:
            await self.outputs.write(self.writer)
            await self.writer.flush()
        except BaseException as error:
            self.failed = error
            raise

    async def _commit_now(self, relieve: bool, behind: bool) -> dict[int, int]:
        await self._settle()  # commits are written in order, each prepared after the one before was written
        try:
            await self.outputs.write(self.writer)
            mark = await self.writer.mark()  # these outputs are acknowledged before the offsets that produced them
            # the engines hand their changes to the batches: unless these are written, no later commit may be
            prepared = self.runner.prepare_commit(sorted(self._dirty))
        except BaseException as error:
            self.failed = error
            raise
        self._dirty.clear()
        positions = {p: self.runner.positions[p] for p in sorted(self.owned) if p in self.runner.positions}
        self._unwritten = _Unwritten(mark, prepared, positions, relieve)
        self._last_commit = self.clock()
        if not behind:
            await self._settle()
        return positions

    async def _settle(self, *, wait: bool = True) -> None:
        """Write the prepared commit once the outputs before it are acknowledged (``wait``: wait for them;
        otherwise only if they already were), then trim memory to the resident budget (at pressure, to
        nothing beyond pending updates; RocksDB's memtables too when relieving)."""
        unwritten = self._unwritten
        if unwritten is None or self.failed is not None:
            return
        if not wait and not self.writer.acknowledged(unwritten.mark):
            return
        try:
            await self.writer.acknowledge(unwritten.mark)
            self._unwritten = None
            self.runner.write_commit(unwritten.prepared)  # failed: the changes it held are in no store
        except BaseException as error:
            self.failed = error
            raise
        budget = 0 if self.memory_pressure or unwritten.relieve else self.options.resident_panes
        self.runner.shrink(budget, flush=unwritten.relieve)  # evicted panes are in the store as in memory
        self.committed.update(unwritten.positions)
        self.commits += 1

    async def relieve_memory(self, *, checkpoint: bool = False) -> tuple[int, int]:
        """Commit now and keep no more window state in memory than pending updates need (the governor
        at pressure); with ``checkpoint``, also checkpoint every owned partition. Return the panes left
        in memory and the panes evicted so far (batches committed at pressure evict too)."""
        async with self.lock:
            if self.failed is None and self.owned:
                await self._commit(relieve=True)
                if checkpoint and self.checkpoints is not None:
                    self._checkpoint_partitions(sorted(self.owned))
                self.run_metrics.export(self.runner)
            resident = sum(engine.open_panes for engine in self.runner.engines.values())
            return resident, self.runner.stats.panes_evicted

    async def close(self) -> None:
        """Commit everything, checkpoint, close the stores and wait for uploads (clean shutdown)."""
        async with self.lock:
            clean = self.failed is None
            if self.owned and clean:
                await self._commit()
                if self.checkpoints is not None:
                    self._checkpoint_partitions(sorted(self.owned))
            for partition in sorted(self.owned):
                self.runner.release(partition, commit=clean)
            self.owned.clear()
            self.store.close()
        if self._uploads:
            await asyncio.gather(*self._uploads.values())

    # ---- checkpoints -------------------------------------------------------------------
    async def _restore_from_checkpoint(self, partition: int) -> None:
        """Replace missing or older local state of ``partition`` by its newest intact checkpoint."""
        checkpoints = self.checkpoints
        if checkpoints is None:
            return
        latest = await asyncio.to_thread(checkpoints.latest, partition)
        if latest is None:
            return
        local_path = self.store.root / f"partition-{partition}"
        local_position: int | None = None
        if local_path.exists():
            stored = self.store.partition(partition).meta("position")
            local_position = int(stored) if stored is not None else None
            if local_position is not None and (latest.position is None or local_position >= latest.position):
                return
        started = self.clock()
        staging = self.store.root / f".restore-partition-{partition}"
        shutil.rmtree(staging, ignore_errors=True)
        manifest = await asyncio.to_thread(checkpoints.restore, partition, staging)
        if manifest is None:
            log.warning("partition %d: no intact checkpoint to restore; using local state or the input", partition)
            return
        if local_position is not None and (manifest.position or 0) <= local_position:
            shutil.rmtree(staging, ignore_errors=True)
            return
        self.store.release(partition)
        shutil.rmtree(local_path, ignore_errors=True)
        staging.rename(local_path)
        log.info(
            "partition %d restored from checkpoint %s (offset %s, %d files, %d bytes) in %.2f s",
            partition,
            manifest.ident,
            manifest.position,
            len(manifest.files),
            manifest.total_bytes,
            self.clock() - started,
        )

    async def _maybe_checkpoint(self) -> None:
        if self.checkpoints is None or self.clock() - self._last_checkpoint < self.options.checkpoint_interval:
            return
        await self._commit()
        self._checkpoint_partitions(sorted(self.owned))
        self._last_checkpoint = self.clock()

    def _checkpoint_partitions(self, partitions: Iterable[int]) -> None:
        """RocksDB checkpoints now (hard links, quick); uploads in the background."""
        for partition in partitions:
            running = self._uploads.get(partition)
            if running is not None and not running.done():
                continue  # the previous upload of this partition is still going
            store = self.store.partition(partition)
            stored = store.meta("position")
            self._checkpoint_serial += 1
            local = self.store.root / "checkpoints" / f"partition-{partition}-{self._checkpoint_serial}"
            shutil.rmtree(local, ignore_errors=True)
            store.checkpoint(local)
            self.checkpoints_taken += 1
            position = int(stored) if stored is not None else None
            self._uploads[partition] = asyncio.create_task(self._upload(partition, local, position))

    async def _upload(self, partition: int, local: Path, position: int | None) -> None:
        assert self.checkpoints is not None
        started = self.clock()
        try:
            revision = self.runner.rules.revision
            manifest = await asyncio.to_thread(self.checkpoints.upload, partition, local, position, revision)
            metrics.CHECKPOINT_SECONDS.labels(self.spec.name).observe(self.clock() - started)
            metrics.CHECKPOINT_BYTES.labels(self.spec.name).inc(manifest.uploaded_bytes)
            metrics.CHECKPOINT_LAST.labels(self.spec.name, str(partition)).set(manifest.created_at)
            log.info(
                "checkpoint %s at offset %s: %d of %d files, %d of %d bytes uploaded in %.2f s",
                manifest.ident,
                position,
                manifest.uploaded_files,
                len(manifest.files),
                manifest.uploaded_bytes,
                manifest.total_bytes,
                self.clock() - started,
            )
        except Exception as error:  # a failed upload leaves the previous checkpoints in force
            log.error("checkpoint upload of partition %d failed: %s", partition, error)
        finally:
            await asyncio.to_thread(shutil.rmtree, local, True)

    def status(self) -> dict[str, Any]:
        """Counters for logs and metrics."""
        return {
            "owned": sorted(self.owned),
            "records_in": self.records_in,
            "commits": self.commits,
            "checkpoints": self.checkpoints_taken,
            **self.outputs.counts,
        }
