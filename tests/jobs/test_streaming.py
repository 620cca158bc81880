"""The streaming job against a real broker that goes away: no commit after output that was lost."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from connectors.bare_records import RecordColumns
from connectors.errors import ConnectorError
from connectors.kafka_output import TopicWriter
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from connectors.local_broker import LocalBroker
from jobs.spec import parse_job_spec
from jobs.streaming import OutputTopics, StreamingJob, StreamingOptions
from state.errors import StateError
from state.window_store import WindowStore

JOB = """
name: lost
source: {topic: lost-in, key: k, timestamp: ts, partitions: 1}
windows:
  per_second: {type: tumbling, size: 1s, grace: 0ms, emit: final, aggregate: {n: count}}
"""


@dataclass(frozen=True)
class _Record:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


def _records(first: int, count: int) -> list[_Record]:
    return [
        _Record(offset, b"a", orjson.dumps({"k": "a", "ts": 1_700_000_000_000 + 1_000 * offset}))
        for offset in range(first, first + count)
    ]


SPEC = parse_job_spec(JOB)
OUTPUTS = OutputTopics.for_job(SPEC.name).all()
TOPICS = {SPEC.source.topic: 1, **dict.fromkeys(OUTPUTS, 1)}


async def _started(
    broker: LocalBroker, options: StreamingOptions, *, request_timeout_ms: int = 40_000
) -> tuple[TopicWriter, StreamingJob]:
    """The job's topics created on ``broker``, its output writer started, and the job (no partitions yet)."""
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    await ensure_topics(settings, TOPICS)
    writer = TopicWriter(settings, request_timeout_ms=request_timeout_ms)
    await writer.start(OUTPUTS)
    return writer, StreamingJob(SPEC, writer, options)


def test_after_output_the_broker_lost_nothing_more_is_committed(tmp_path: Path) -> None:
    async def scenario(broker: LocalBroker) -> tuple[dict[int, int], str, str]:
        options = StreamingOptions(state_dir=tmp_path / "state", commit_interval=3600)
        writer, job = await _started(broker, options, request_timeout_ms=1500)
        try:
            await job.assign([0])
            await job.process({0: _records(0, 5)})
            committed = await job.commit()
            broker.stop()
            await job.process({0: _records(5, 5)})  # closes windows: results to write
            with pytest.raises(ConnectorError) as lost:
                await asyncio.wait_for(job.commit(), 60)
            broker.start()  # back, and empty: the results since the last commit are gone
            await ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers), TOPICS)
            with pytest.raises(RuntimeError) as refused:
                await job.commit()
            return committed, str(lost.value), str(refused.value)
        finally:
            await job.close()  # after a failure: closes the stores without committing
            await writer.stop()

    with LocalBroker() as broker:
        committed, lost, refused = asyncio.run(scenario(broker))
    assert committed == {0: 5}
    assert lost.startswith("the broker did not acknowledge output records")
    assert refused.startswith("not committing: a batch failed part-way")


def test_after_rocksdb_failed_to_write_a_commit_no_later_commit_is_made(tmp_path: Path) -> None:
    async def scenario(broker: LocalBroker) -> tuple[dict[int, int], str, str]:
        writer, job = await _started(broker, StreamingOptions(state_dir=tmp_path / "state", commit_interval=3600))
        try:
            await job.assign([0])
            await job.process({0: _records(0, 5)})
            committed = await job.commit()
            await job.process({0: _records(5, 5)})
            job.store.partition(0).close()  # the database goes away under the job: its next write fails
            with pytest.raises(StateError) as failed:
                await job.commit()
            # the failed batch held the changes of offsets 5-9: a later commit would store position 10 without them
            with pytest.raises(RuntimeError) as refused:
                await job.commit()
            return committed, str(failed.value), str(refused.value)
        finally:
            await job.close()
            await writer.stop()

    with LocalBroker() as broker:
        committed, failed, refused = asyncio.run(scenario(broker))
    assert committed == {0: 5}
    assert failed.startswith("cannot write window state")
    assert refused.startswith("not committing: a batch failed part-way")
    store = WindowStore(tmp_path / "state", SPEC.state_fingerprint)
    try:
        assert store.partition(0).meta("position") == b"5"
    finally:
        store.close()


def test_records_already_applied_are_skipped_whether_objects_or_columns(tmp_path: Path) -> None:
    async def scenario(broker: LocalBroker) -> tuple[int, dict[int, int], int]:
        writer, job = await _started(broker, StreamingOptions(state_dir=tmp_path / "state"))
        try:
            await job.assign([0])
            await job.process({0: _records(0, 6)})
            # fetched again from offset 3 (as after a seek back): only 6 and 7 are new, as objects then columns
            await job.process({0: _records(3, 5)})
            await job.process({0: RecordColumns.of(_records(5, 5))})
            positions = await job.commit()
            return job.records_in, positions, job.outputs.counts["results"]
        finally:
            await job.close()
            await writer.stop()

    with LocalBroker() as broker:
        records_in, positions, results = asyncio.run(scenario(broker))
    assert records_in == 10 and positions == {0: 10}
    assert results == 9  # one event a second, 0 ms grace: the windows of offsets 0-8 closed


def test_a_commit_between_batches_waits_for_its_outputs_and_never_gets_ahead_of_them(tmp_path: Path) -> None:
    async def scenario(broker: LocalBroker) -> tuple[tuple[int, bytes | None], bytes | None]:
        options = StreamingOptions(state_dir=tmp_path / "state", commit_interval=0)
        writer, job = await _started(broker, options, request_timeout_ms=1500)
        try:
            await job.assign([0])
            await job.process({0: _records(0, 5)})  # commits after the batch without waiting for the broker
            behind = (job.commits, job.store.partition(0).meta("position"))
            broker.stop()
            with pytest.raises(ConnectorError):  # the second batch's outputs never arrive
                await job.process({0: _records(5, 5)})
                await asyncio.wait_for(job.commit(), 60)
            return behind, job.store.partition(0).meta("position")
        finally:
            await job.close()
            with contextlib.suppress(ConnectorError):  # the batches still on their way when the job failed
                await writer.stop()

    with LocalBroker() as broker:
        behind, stored = asyncio.run(scenario(broker))
    assert behind == (0, None)  # prepared, not written: its outputs were not acknowledged yet
    # the first commit is on disk if its outputs arrived before the broker went; the second never is
    assert stored in (None, b"5")
