"""``winnow dev``: the streaming job on an embedded broker, fed from an event log.

Starts a local Kafka-protocol broker on a free loopback port, creates the
job's topics, starts a worker process, publishes the log into the source topic
(at N times its pace, or at once) and prints results and decisions as the
worker produces them. With ``until_done`` it stops once the worker has
committed every published event and its output has gone quiet.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.kafka_publish import PublishOptions, PublishStats, publish_log
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import committed_offsets, ensure_topics
from connectors.local_broker import LocalBroker
from jobs.spec import JobSpec
from jobs.streaming import OutputTopics
from jobs.worker import job_topics, worker_command
from windows.errors import WinnowError


@dataclass(frozen=True)
class DevOptions:
    """What ``winnow dev`` runs and shows."""

    spec_path: Path
    input: Path
    speed: float | None = None
    state_dir: Path | None = None
    until_done: bool = False
    max_print: int | None = None  # None: print every result and decision
    show_updates: bool = False


class _Printer:
    """Prints output records as they arrive and counts them."""

    def __init__(self, out: TextIO, max_print: int | None, show_updates: bool) -> None:
        self.out = out
        self.max_print = max_print
        self.show_updates = show_updates
        self.printed = 0
        self.counts: Counter[str] = Counter()
        self.last_record = time.monotonic()

    def record(self, kind: str, value: bytes) -> None:
        self.last_record = time.monotonic()
        if kind == "result":
            kind = "result" if b'"final":true' in value else "update"
        elif kind == "decision":
            self.counts[f"decision {orjson.loads(value)['rule']}"] += 1
        self.counts[kind] += 1
        if kind == "update" and not self.show_updates:
            return
        if self.max_print is not None and self.printed >= self.max_print:
            if self.printed == self.max_print:
                self.out.write(f"... (printing stops after {self.max_print} records; counting goes on)\n")
                self.printed += 1
            return
        self.out.write(f"{kind:<9}{value.decode(errors='replace')}\n")
        self.printed += 1


@dataclass
class _Following:
    """How far the follower has read the output topics."""

    at_end: bool = False  # its last fetch found nothing, at or past every partition's end offset


async def _follow(bootstrap: str, spec: JobSpec, printer: _Printer, stop: asyncio.Event, following: _Following) -> None:
    topics = OutputTopics.for_job(spec.name)
    kinds = {topics.results: "result", topics.decisions: "decision"}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in kinds for p in range(spec.source.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    printer.record(kinds[tp.topic], record.value)
            printer.out.flush()
            if batch:
                following.at_end = False
            else:  # a fetch that found nothing: is that because everything written has been read?
                ends = await consumer.end_offsets(tps)
                following.at_end = all([await consumer.position(tp) >= ends[tp] for tp in tps])
    finally:
        await consumer.stop()


async def _session(
    broker: LocalBroker, spec: JobSpec, options: DevOptions, worker: subprocess.Popen[bytes], printer: _Printer
) -> PublishStats:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    stop = asyncio.Event()
    following = _Following()
    follower = asyncio.create_task(_follow(broker.bootstrap_servers, spec, printer, stop, following))
    publish = PublishOptions(
        input=options.input,
        topic=spec.source.topic,
        key_field=spec.source.key,
        timestamp_field=spec.source.timestamp,
        timestamp_format=spec.source.timestamp_format,
        partitions=spec.source.partitions,
        speed=options.speed,
    )
    stats = await publish_log(settings, publish)
    printer.out.write(
        f"winnow dev: published {stats.events:,} events to {spec.source.topic} in {stats.seconds:.2f} s\n"
    )
    try:
        while True:
            if worker.poll() is not None:
                raise WinnowError(f"the worker exited with status {worker.returncode}; see its log.")
            if options.until_done:
                committed = await committed_offsets(
                    settings, f"winnow-{spec.name}", spec.source.topic, spec.source.partitions
                )
                caught_up = all(committed.get(p, 0) >= n for p, n in enumerate(stats.per_partition) if n)
                # the worker flushes its output before it commits; the follower must have read all of it too (a
                # quiet second alone once ended the summary 13,000 results short, the follower still behind)
                if caught_up and following.at_end and time.monotonic() - printer.last_record > 1.0:
                    return stats
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await follower


def run_dev(spec: JobSpec, options: DevOptions, out: TextIO = sys.stdout) -> int:
    """Run the streaming job end to end on an embedded broker; return an exit code."""
    work = Path(tempfile.mkdtemp(prefix="winnow-dev-"))
    state_dir = options.state_dir or work / "state"
    worker_log = work / "worker.log"
    printer = _Printer(out, options.max_print, options.show_updates)
    with LocalBroker(log_path=work / "broker.log") as broker:
        out.write(f"winnow dev: broker at {broker.bootstrap_servers}, worker log {worker_log}, state in {state_dir}\n")
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        asyncio.run(ensure_topics(settings, job_topics(spec)))
        with open(worker_log, "wb") as log:
            worker = subprocess.Popen(
                worker_command(
                    options.spec_path,
                    broker.bootstrap_servers,
                    state_dir,
                    "--session-timeout",
                    "6",
                    "--commit-interval",
                    "0.5",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            stats = asyncio.run(_session(broker, spec, options, worker, printer))
        except KeyboardInterrupt:
            out.write("\nwinnow dev: interrupted\n")
            stats = None
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    rows = [(name, count) for name, count in sorted(printer.counts.items())]
    out.write(f"winnow dev: job {spec.name} done; worker exited with status {worker.returncode}\n")
    if stats is not None:
        out.write(f"  {'events published':<28}{stats.events:>12,}\n")
    for name, count in rows:
        out.write(f"  {name + 's' if not name.startswith('decision ') else name:<28}{count:>12,}\n")
    return 0 if worker.returncode == 0 else 1
