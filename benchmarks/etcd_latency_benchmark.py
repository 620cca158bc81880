"""Latency from an etcd write to the decision it causes, at a steady write rate.

Starts a local broker and a local etcd, one ``winnow etcd-watch`` producer and
one ``winnow worker`` (a job deciding on every change), then writes changes to
distinct keys at ``--rate`` per second, each value carrying its own W3C
traceparent. A consumer reads the decisions topic and matches each decision's
``trace_id`` to the write that started the trace: latency is from the write's
acknowledgement by etcd to the decision's arrival at the consumer.

Target (issue 4): p99 under 100 ms at 1,000 changes/s.

    .venv/bin/python benchmarks/etcd_latency_benchmark.py [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aetcd
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.kafka_settings import KafkaSettings  # noqa: E402
from connectors.kafka_topics import ensure_topics  # noqa: E402
from connectors.local_broker import LocalBroker  # noqa: E402
from connectors.local_etcd import LocalEtcd  # noqa: E402
from jobs.worker import worker_command  # noqa: E402

TARGET_P99_MS = 100.0
SPEC = """
name: etcd-latency
source: {topic: etcd-changes, key: key, timestamp: observed_at, partitions: 2}
windows:
  recent: {type: tumbling, size: 200ms, grace: 0ms, emit: update, update_interval: 1ms, aggregate: {n: count}}
rules:
  - {name: changed, window: recent, when: "n >= 1", action: log}
"""


def wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {text!r} in {path}:\n{path.read_text(errors='replace')[-3000:]}")


async def measure(
    etcd: LocalEtcd, bootstrap: str, rate: float, seconds: float
) -> tuple[list[float], int, dict[str, list[float]]]:
    writes: dict[str, float] = {}
    latencies: list[float] = []
    hops: dict[str, list[float]] = {"etcd write -> producer send": [], "producer send -> worker output": []}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    tps = [TopicPartition("etcd-latency.decisions", p) for p in range(2)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    done = asyncio.Event()

    async def read() -> None:
        while not done.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for record in records:
                    decision = orjson.loads(record.value)
                    written = writes.get(decision["trace_id"])
                    if written is not None:
                        latencies.append((now - written) * 1000.0)
                        origin = decision["origin_at"]
                        hops["etcd write -> producer send"].append(origin - written * 1000.0)
                        hops["producer send -> worker output"].append(record.timestamp - origin)

    host, port = etcd.endpoint.split(":")
    client = aetcd.Client(host=host, port=int(port))

    async def put(i: int) -> None:
        trace = secrets.token_hex(16)
        value = orjson.dumps({"i": i, "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"})
        await client.put(f"/bench/k{i:07d}".encode(), value)
        writes[trace] = time.time()

    reader = asyncio.create_task(read())
    total = int(rate * seconds)
    started = time.monotonic()
    tasks = []
    for i in range(total):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(put(i)))
    await asyncio.gather(*tasks)
    for i in range(20):  # trailing changes so the last windows get their update tick
        await asyncio.sleep(0.01)
        await client.put(f"/bench/tail{i}".encode(), b"{}")
    await asyncio.sleep(3.0)
    done.set()
    await reader
    await client.close()
    await consumer.stop()
    return latencies, total, hops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", metavar="FILE", help="record the worker with py-spy (collapsed stacks) into FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        work = Path(tmp)
        spec = work / "job.yaml"
        spec.write_text(SPEC)
        etcd = LocalEtcd(work / "etcd").start()
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        asyncio.run(ensure_topics(settings, {"etcd-changes": 2}))
        common = [sys.executable, "-m", "jobs.cli"]
        with open(work / "producer.log", "wb") as plog, open(work / "worker.log", "wb") as wlog:
            producer = subprocess.Popen(
                [*common, "etcd-watch", "--etcd", etcd.endpoint, "--prefix", "/bench/", "--topic", "etcd-changes",
                 "--partitions", "2", "--position-file", str(work / "position.json"),
                 "--bootstrap", broker.bootstrap_servers],
                cwd=ROOT, stdout=plog, stderr=subprocess.STDOUT,
            )  # fmt: skip
            worker = subprocess.Popen(
                worker_command(spec, broker.bootstrap_servers, work / "state", "--session-timeout", "6"),
                cwd=ROOT, stdout=wlog, stderr=subprocess.STDOUT,
            )  # fmt: skip
        spy = None
        try:
            wait_for(work / "producer.log", "watching", 30)
            wait_for(work / "worker.log", "Worker ready", 60)
            if args.profile:
                spy = subprocess.Popen(
                    ["py-spy", "record", "--format", "raw", "-o", args.profile, "--pid", str(worker.pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            latencies, total, hops = asyncio.run(measure(etcd, broker.bootstrap_servers, args.rate, args.seconds))
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
        finally:
            for process in (worker, producer):
                process.terminate()
                process.wait(timeout=60)
            etcd.stop()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    print(f"changes written:        {total:,} at {args.rate:,.0f}/s for {args.seconds:.0f} s (distinct keys)")
    print(f"decisions matched:      {len(latencies):,} by trace id")
    print(f"etcd write -> decision: p50 {pct(0.50):.1f} ms   p99 {pct(0.99):.1f} ms   max {latencies[-1]:.1f} ms")
    for hop, values in hops.items():
        values.sort()
        if values:
            middle, high = values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
            print(f"  {hop + ':':<30} p50 {middle:.1f} ms   p99 {high:.1f} ms  (Kafka record timestamps)")
    verdict = "met" if pct(0.99) < TARGET_P99_MS else "NOT met"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
