"""Latency from an etcd write to the decision it causes, at a steady write rate.

Starts a local broker and a local etcd, one ``winnow etcd-watch`` producer and
one ``winnow worker`` (a job deciding on every change: ``update_interval: 0``,
an update after every event), then writes changes to distinct keys at
``--rate`` per second, each value carrying its own W3C traceparent. A consumer,
in a process of its own, reads the decisions topic; each decision's
``trace_id`` is matched to the write that started the trace. Latency is from
sending the write to etcd (so it includes etcd's own commit) to the decision's
arrival at the consumer. The CPU each process used while measuring is printed
too: on a small machine the five processes compete for the cores.

Target (issue 4): p99 under 100 ms at 1,000 changes/s.

    .venv/bin/python benchmarks/etcd_latency_benchmark.py [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
  recent: {type: tumbling, size: 200ms, grace: 0ms, emit: update, update_interval: 0ms, aggregate: {n: count}}
rules:
  - {name: changed, window: recent, when: "n >= 1", action: log}
"""


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process (all its threads) has used so far, from /proc."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_reference(seconds: float = 0.5) -> float:
    """Decodes per second of a small JSON object on one core: how fast this (shared) machine is right now."""
    line = b'{"key":"/bench/k0000001","type":"PUT","revision":12345,"observed_at":1763771234567,"value":{"i":1}}'
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            orjson.loads(line)
        count += 1000
    return count / (time.perf_counter() - started)


def wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {text!r} in {path}:\n{path.read_text(errors='replace')[-3000:]}")


Arrival = tuple[str, float, float, float]  # trace id, arrival (epoch s), origin_at (epoch ms), record timestamp (ms)


def read_decisions(bootstrap: str, ready: Any, stop: Any, out: Any) -> None:
    """The reader, in a process of its own so the writer's event loop does not delay it: every decision's
    trace id and arrival time, sent to ``out`` when ``stop`` is set."""

    async def read() -> list[Arrival]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
        await consumer.start()
        tps = [TopicPartition("etcd-latency.decisions", p) for p in range(2)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ready.set()
        arrivals: list[Arrival] = []
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for record in records:
                    decision = orjson.loads(record.value)
                    arrivals.append((decision["trace_id"], now, decision["origin_at"], record.timestamp))
        await consumer.stop()
        return arrivals

    out.put(asyncio.run(read()))


async def write_changes(etcd: LocalEtcd, rate: float, seconds: float) -> dict[str, float]:
    """Put ``rate`` changes per second to distinct keys; return when each was sent, by trace id."""
    writes: dict[str, float] = {}
    host, port = etcd.endpoint.split(":")
    client = aetcd.Client(host=host, port=int(port))

    async def put(i: int) -> None:
        trace = secrets.token_hex(16)
        value = orjson.dumps({"i": i, "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"})
        writes[trace] = time.time()  # when the write is sent (its acknowledgement may come after the decision)
        await client.put(f"/bench/k{i:07d}".encode(), value)

    total = int(rate * seconds)
    started = time.monotonic()
    tasks = []
    for i in range(total):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(put(i)))
    await asyncio.gather(*tasks)
    await client.close()
    return writes


def measure(
    etcd: LocalEtcd, bootstrap: str, rate: float, seconds: float
) -> tuple[list[float], int, dict[str, list[float]]]:
    """Write changes while the reader process collects decisions; match them by trace id."""
    context = multiprocessing.get_context("spawn")
    ready, stop, out = context.Event(), context.Event(), context.Queue()
    reader = context.Process(target=read_decisions, args=(bootstrap, ready, stop, out), daemon=True)
    reader.start()
    if not ready.wait(60):
        raise SystemExit("the decision reader did not start")
    writes = asyncio.run(write_changes(etcd, rate, seconds))
    time.sleep(3.0)  # the last decisions on their way
    stop.set()
    arrivals: list[Arrival] = out.get(timeout=60)
    reader.join(timeout=60)
    latencies: list[float] = []
    hops: dict[str, list[float]] = {"etcd write -> producer send": [], "producer send -> worker output": []}
    for trace, arrived, origin, produced in arrivals:
        written = writes.get(trace)
        if written is not None:
            latencies.append((arrived - written) * 1000.0)
            hops["etcd write -> producer send"].append(origin - written * 1000.0)
            hops["producer send -> worker output"].append(produced - origin)
    return latencies, len(writes), hops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", metavar="FILE", help="record the worker with py-spy (collapsed stacks) into FILE")
    args = parser.parse_args()
    reference = cpu_reference()
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
            pids = {
                "worker": worker.pid,
                "etcd-watch producer": producer.pid,
                "etcd": etcd.pid,
                "broker": broker.pid,
                "benchmark writer": os.getpid(),
            }
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            wall = time.monotonic()
            latencies, total, hops = measure(etcd, broker.bootstrap_servers, args.rate, args.seconds)
            wall = time.monotonic() - wall
            cpu = {name: (cpu_seconds(pid) - before[name]) / wall for name, pid in pids.items()}
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
    print(f"CPU reference before starting: {reference / 1e6:.2f}M small JSON decodes/s on one core")
    print(f"CPU use while measuring ({os.cpu_count()} cores): " + ", ".join(f"{n} {c:.0%}" for n, c in cpu.items()))
    verdict = "met" if pct(0.99) < TARGET_P99_MS else "NOT met"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
