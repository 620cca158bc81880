"""End-to-end streaming throughput through a local broker, against a bare consumer floor in the same run.

Publishes a seeded log (default 1M events) to a 4-partition topic on a local
Tansu broker, then measures:

* the floor: a bare aiokafka consumer reading the topic with ``getmany`` and
  JSON-decoding every value (nothing else);
* one ``winnow worker`` running the example job (tumbling + hopping + sliding
  + percentiles, two rules): events/s from the first record it processed to the
  last output record it produced (the output records' Kafka timestamps).

Target (issue 3): at least 100,000 events/s per worker on one core, within 3.5x of the floor.

    .venv/bin/python benchmarks/streaming_benchmark.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import py_spy  # noqa: E402
from benchmarks.process_cpu import cpu_seconds  # noqa: E402
from benchmarks.replay_benchmark import event_log  # noqa: E402
from connectors.kafka_publish import PublishOptions, publish_log  # noqa: E402
from connectors.kafka_settings import KafkaSettings  # noqa: E402
from connectors.kafka_topics import committed_offsets, ensure_topics  # noqa: E402
from connectors.local_broker import LocalBroker  # noqa: E402
from jobs.spec import load_job_spec  # noqa: E402
from jobs.streaming import OutputTopics  # noqa: E402
from jobs.worker import job_topics, worker_command  # noqa: E402

TARGET_EVENTS_PER_S = 100_000
TARGET_RATIO = 3.5


async def floor(bootstrap: str, topic: str, partitions: int, total: int) -> float:
    """events/s of getmany + orjson.loads over the whole topic, from first record to last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=20_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, started = 0, 0.0
        loads = orjson.loads
        while count < total:
            batch = await consumer.getmany(timeout_ms=1000)
            if count == 0 and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    loads(record.value)
                count += sum(len(records) for records in batch.values())
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def last_output_time(bootstrap: str, topics: list[str], partitions: int) -> float:
    """Kafka timestamp (epoch s) of the newest record in ``topics``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:  # a window before the reported end (the local broker reports the last batch's start)
            consumer.seek(tp, max(ends[tp] - 5_000, 0))
        newest, quiet = 0, time.monotonic()
        while time.monotonic() - quiet < 1.0:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                if records:
                    quiet = time.monotonic()
                    newest = max(newest, max(r.timestamp for r in records))
        return newest / 1000.0
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--spec", default=str(ROOT / "jobs" / "examples" / "api-abuse.yaml"))
    parser.add_argument("--profile", metavar="FILE", help="record the worker with py-spy (collapsed stacks) into FILE")
    parser.add_argument(
        "--commit-interval",
        type=float,
        help="seconds between the worker's state+offset commits (default: the worker's own)",
    )
    args = parser.parse_args()
    spec = load_job_spec(args.spec)
    path = event_log(args.events)
    parts = spec.source.partitions
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        bootstrap = broker.bootstrap_servers
        settings = KafkaSettings(bootstrap_servers=bootstrap)
        asyncio.run(ensure_topics(settings, job_topics(spec)))
        options = PublishOptions(
            input=path,
            topic=spec.source.topic,
            key_field=spec.source.key,
            timestamp_field=spec.source.timestamp,
            timestamp_format=spec.source.timestamp_format,
            partitions=parts,
        )
        published = asyncio.run(publish_log(settings, options))
        floor_rate = asyncio.run(floor(bootstrap, spec.source.topic, parts, published.events))

        log_path = Path(tmp) / "worker.log"
        group = f"bench-{spec.name}"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                worker_command(
                    Path(args.spec),
                    bootstrap,
                    Path(tmp) / "state",
                    "--group",
                    group,
                    "--session-timeout",
                    "6",
                    *(["--commit-interval", str(args.commit_interval)] if args.commit_interval is not None else []),
                ),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        spy = None
        if args.profile:
            spy = py_spy.record(worker.pid, args.profile, "--rate", "50")
        try:
            while (
                sum(asyncio.run(committed_offsets(settings, group, spec.source.topic, parts)).values())
                < published.events
            ):
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited early:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            topics = OutputTopics.for_job(spec.name)
            last = asyncio.run(last_output_time(bootstrap, [topics.results, topics.decisions], parts))
            if not last:
                raise SystemExit(
                    f"the worker wrote no results or decisions: {published.events:,} events closed no window "
                    "(try --events 10000 or more)."
                )
            cpu_at_end = cpu_seconds(worker.pid)
            if spy is not None:
                py_spy.stop(spy)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        text = log_path.read_text()
        started = re.search(r"first records processed at ([\d.]+) \(epoch s\), after ([\d.]+) s", text)
        assert started is not None, f"the worker never logged its first records:\n{text[-3000:]}"
        first, cpu_at_first = float(started.group(1)), float(started.group(2))
        status = re.search(r"stopped cleanly: (\{.*\})", text)
        worker_rate = published.events / (last - first)

    print(f"events:                          {published.events:,} in {parts} partitions")
    print(f"publish (aiokafka send_batch):   {published.events / published.seconds:>12,.0f} events/s")
    print(f"floor (getmany + orjson):        {floor_rate:>12,.0f} events/s")
    print(f"winnow worker (first in -> last out): {worker_rate:>7,.0f} events/s   ({last - first:.1f} s)")
    cpu = cpu_at_end - cpu_at_first
    print(f"worker CPU time (all threads):   {cpu:>12.1f} s   ({cpu / published.events * 1e6:.2f} µs per event)")
    ratio = floor_rate / worker_rate
    print(f"floor / worker:                  {ratio:>11.1f}x   (target <= {TARGET_RATIO}x)")
    if status:
        print(f"worker output:                   {status.group(1)}")
    verdict = "met" if worker_rate >= TARGET_EVENTS_PER_S and ratio <= TARGET_RATIO else "NOT met"
    print(f"target {TARGET_EVENTS_PER_S:,} events/s, within {TARGET_RATIO}x of the floor: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
