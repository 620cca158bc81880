"""Helpers for tests that run real workers against a real (local Tansu) broker."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.kafka_publish import PublishOptions, PublishStats, publish_log
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import committed_offsets as group_offsets
from connectors.kafka_topics import ensure_topics
from jobs.spec import JobSpec

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int = 0


async def read_topic(bootstrap: str, topic: str, partitions: int, quiet_for: float = 0.6) -> list[Record]:
    """Every record of ``topic``, read until no partition has anything new for ``quiet_for`` seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=50_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        while loop.time() - idle_since < quiet_for:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, items in batch.items():
                records.extend(
                    Record(tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp) for r in items
                )
                if items:
                    idle_since = loop.time()
        return records
    finally:
        await consumer.stop()


def read_topic_sync(bootstrap: str, topic: str, partitions: int, quiet_for: float = 0.6) -> list[Record]:
    return asyncio.run(read_topic(bootstrap, topic, partitions, quiet_for))


def split_log(log: Path, cuts: list[int], out_dir: Path) -> list[Path]:
    """The log's lines split at the given line counts into files ``part0.jsonl``, ``part1.jsonl``, ..."""
    lines = log.read_bytes().splitlines(keepends=True)
    bounds = [0, *cuts, len(lines)]
    parts = []
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        part = out_dir / f"part{i}.jsonl"
        part.write_bytes(b"".join(lines[start:end]))
        parts.append(part)
    return parts


def publish(bootstrap: str, spec: JobSpec, log: Path) -> PublishStats:
    """Create the job's source topic if needed and publish ``log`` into it, as fast as possible."""
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    options = PublishOptions(
        input=log,
        topic=spec.source.topic,
        key_field=spec.source.key,
        timestamp_field=spec.source.timestamp,
        timestamp_format=spec.source.timestamp_format,
        partitions=spec.source.partitions,
    )

    async def run() -> PublishStats:
        await ensure_topics(settings, {options.topic: options.partitions})
        return await publish_log(settings, options)

    return asyncio.run(run())


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets in ``topic`` (partition -> offset), read without joining the group."""
    return asyncio.run(group_offsets(KafkaSettings(bootstrap_servers=bootstrap), group, topic, partitions))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class WorkerProcess:
    """A ``winnow worker`` as a real process, with its log in a file."""

    def __init__(
        self,
        spec_path: Path,
        bootstrap: str,
        state_dir: Path,
        log_path: Path,
        *,
        group: str,
        commit_interval: float = 0.5,
        session_timeout: float = 6.0,
    ) -> None:
        self.log_path = log_path
        self.group = group
        self.args = [
            sys.executable,
            "-m",
            "jobs.cli",
            "worker",
            "--spec",
            str(spec_path),
            "--bootstrap",
            bootstrap,
            "--state-dir",
            str(state_dir),
            "--group",
            group,
            "--commit-interval",
            str(commit_interval),
            "--session-timeout",
            str(session_timeout),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.preexec: Callable[[], None] | None = None  # run in the child before exec (e.g. enter a cgroup)

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            log.write(f"---- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=self.preexec,
            )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_assigned(self, timeout: float = 60.0) -> None:
        """Wait for this run's first assignment."""
        marker = self.log_text().count("---- start")

        def assigned() -> bool:
            self.check_alive()
            text = self.log_text()
            return "Worker ready" in text.split("---- start")[marker]

        wait_until(assigned, timeout, f"worker {self.group} to get its partitions")

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                tail = self.log_text()[-4000:]
                raise AssertionError(f"worker did not stop within {timeout:.0f} s:\n{tail}") from None
        return self.process.returncode


def without_emit_time(value: bytes) -> bytes:
    """A record without the fields that depend on when things ran (emit time, origin time of the trace)."""
    record = orjson.loads(value)
    record.pop("emitted_at", None)
    record.pop("origin_at", None)
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def distinct_finals(records: list[Record]) -> dict[tuple[object, ...], bytes]:
    """Final results by (window, key, start, end); fails if two copies of one window differ."""
    finals: dict[tuple[object, ...], bytes] = {}
    for record in records:
        result = orjson.loads(record.value)
        if not result["final"]:
            continue
        ident = (result["window"], result["key"], result["start"], result["end"])
        text = without_emit_time(record.value)
        assert finals.setdefault(ident, text) == text, f"two different final results for {ident}"
        finals[ident] = text
    return finals


def replay_finals(path: Path) -> dict[tuple[object, ...], bytes]:
    finals: dict[tuple[object, ...], bytes] = {}
    for line in path.read_bytes().splitlines():
        result = orjson.loads(line)
        finals[(result["window"], result["key"], result["start"], result["end"])] = without_emit_time(line)
    return finals
