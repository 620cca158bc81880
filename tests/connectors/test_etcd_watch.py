"""The etcd-watch producer against a real etcd and a real broker: exactly once, compaction, outages."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import aetcd
import orjson
import pytest

from connectors.local_etcd import LocalEtcd
from tests.streaming_harness import read_topic_sync, wait_until

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3

pytestmark = pytest.mark.slow


class Producer:
    """``winnow etcd-watch`` as a real process."""

    def __init__(self, etcd: LocalEtcd, broker: str, prefix: str, topic: str, work: Path) -> None:
        self.args = [
            sys.executable, "-m", "jobs.cli", "etcd-watch", "--etcd", etcd.endpoint, "--prefix", prefix,
            "--topic", topic, "--partitions", str(PARTITIONS), "--position-file", str(work / "position.json"),
            "--bootstrap", broker,
        ]  # fmt: skip
        self.log_path = work / "producer.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Producer:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: "watching" in self.log_text().split("---")[-1], 30, "the producer to start watching")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, kill: bool = False) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        assert self.process.wait(timeout=30) in (0, -9)
        with open(self.log_path, "a") as log:
            log.write("---\n")


class Writer(threading.Thread):
    """Writes changes under a prefix at a steady pace and records their (revision, key, type)."""

    def __init__(self, etcd: LocalEtcd, prefix: str, changes: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.etcd, self.prefix, self.changes, self.rate = etcd, prefix, changes, rate
        self.written: list[tuple[int, str, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._write())
        except BaseException as error:  # surfaced by the test
            self.error = error

    async def _write(self) -> None:
        host, port = self.etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        chooser = random.Random(7)
        try:
            for i in range(self.changes):
                key = f"{self.prefix}k{chooser.randrange(40):02d}"
                roll = chooser.random()
                if roll < 0.1:
                    response = await client.delete(key.encode())
                    if response is not None:  # deleting a missing key is no change
                        self.written.append((response.header.revision, key, "DELETE"))
                elif roll < 0.2:
                    other = f"{self.prefix}pair{i % 5}"
                    ops = client.transactions
                    _, responses = await client.transaction(
                        compare=[],
                        success=[ops.put(key.encode(), b"t%d" % i), ops.put(other.encode(), b"u%d" % i)],
                        failure=[],
                    )
                    revision = responses[0].response_put.header.revision
                    self.written += [(revision, key, "PUT"), (revision, other, "PUT")]
                else:
                    response = await client.put(key.encode(), orjson.dumps({"n": i}))
                    self.written.append((response.header.revision, key, "PUT"))
                await asyncio.sleep(1 / self.rate)
        finally:
            await client.close()


def produced(broker: str, topic: str) -> list[dict[str, object]]:
    records = read_topic_sync(broker, topic, PARTITIONS, quiet_for=1.0)
    events = []
    for record in records:
        event = orjson.loads(record.value)
        event["_partition"], event["_offset"] = record.partition, record.offset
        event["_headers"] = dict(record.headers)
        events.append(event)
    return events


def test_every_change_arrives_exactly_once_in_order_across_restarts_and_a_kill(
    tmp_path: Path, etcd: LocalEtcd, broker: str
) -> None:
    prefix, topic = f"/winnow/t/{uuid.uuid4().hex[:6]}/", f"etcd-{uuid.uuid4().hex[:8]}"
    producer = Producer(etcd, broker, prefix, topic, tmp_path).start()
    writer = Writer(etcd, prefix, changes=900, rate=150.0)
    writer.start()
    for kill in (False, False, True, False):
        time.sleep(1.0)
        producer.stop(kill=kill)
        time.sleep(0.3)  # changes keep coming while the producer is down
        producer.start()
    writer.join(timeout=60)
    assert writer.error is None and not writer.is_alive()
    last = max(revision for revision, _, _ in writer.written)
    wait_until(lambda: max((int(e["revision"]) for e in produced(broker, topic)), default=0) >= last, 30, "catch-up")
    producer.stop()

    events = produced(broker, topic)
    seen = Counter((int(e["revision"]), str(e["key"]), str(e["type"])) for e in events)
    assert [change for change, count in seen.items() if count > 1] == [], "no change is produced twice"
    assert set(seen) == set(writer.written), "every change is produced"
    by_key: dict[str, list[tuple[int, int]]] = {}
    for event in events:
        by_key.setdefault(str(event["key"]), []).append((int(event["_offset"]), int(event["revision"])))
    for key, pairs in by_key.items():
        revisions = [revision for _, revision in sorted(pairs)]
        assert revisions == sorted(revisions), f"changes of {key} out of revision order"
    for event in events:
        headers = event["_headers"]
        assert isinstance(headers, dict)
        version, trace, span, flags = headers["traceparent"].decode().split("-")
        assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
        assert event["snapshot"] is False
    starts = [int(r) for r in re.findall(r"watching \S+ from revision (\d+)", producer.log_text())]
    assert len(starts) == 5 and starts == sorted(starts) and starts[-1] > 1, starts


def test_a_value_carrying_a_traceparent_continues_its_trace(tmp_path: Path, etcd: LocalEtcd, broker: str) -> None:
    prefix, topic = f"/winnow/t/{uuid.uuid4().hex[:6]}/", f"etcd-{uuid.uuid4().hex[:8]}"
    producer = Producer(etcd, broker, prefix, topic, tmp_path).start()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def write() -> None:
        host, port = etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        await client.put(f"{prefix}traced".encode(), orjson.dumps({"traceparent": parent, "x": 1}))
        await client.put(f"{prefix}plain".encode(), b"\xff\xfe not utf-8")
        await client.close()

    asyncio.run(write())
    wait_until(lambda: len(produced(broker, topic)) == 2, 30, "both changes")
    producer.stop()
    events = {str(e["key"]).rsplit("/", 1)[-1]: e for e in produced(broker, topic)}
    traced = events["traced"]["_headers"]["traceparent"].decode()  # type: ignore[index]
    assert traced.split("-")[1] == parent.split("-")[1] and traced.split("-")[2] != parent.split("-")[2]
    plain = events["plain"]
    assert plain["value_base64"] and "value" not in plain
    assert plain["_headers"]["traceparent"].decode().split("-")[1] != parent.split("-")[1]  # type: ignore[index]


def test_a_compacted_resume_revision_becomes_a_flagged_snapshot(tmp_path: Path, etcd: LocalEtcd, broker: str) -> None:
    prefix, topic = f"/winnow/t/{uuid.uuid4().hex[:6]}/", f"etcd-{uuid.uuid4().hex[:8]}"
    producer = Producer(etcd, broker, prefix, topic, tmp_path).start()
    host, port = etcd.endpoint.split(":")

    async def write(keys: range, compact: bool = False) -> int:
        client = aetcd.Client(host=host, port=int(port))
        revision = 0
        for i in keys:
            revision = (await client.put(f"{prefix}k{i % 7}".encode(), b"v%d" % i)).header.revision
        if compact:
            await client.compact(revision)
        await client.close()
        return revision

    first = asyncio.run(write(range(10)))
    wait_until(lambda: len(produced(broker, topic)) == 10, 30, "the first changes")
    producer.stop()
    compacted_at = asyncio.run(write(range(10, 30), compact=True))  # produced by nobody, then compacted away
    producer.start()
    wait_until(lambda: any(e["snapshot"] for e in produced(broker, topic)), 30, "the snapshot")
    after = asyncio.run(write(range(30, 33)))
    wait_until(lambda: max(int(e["revision"]) for e in produced(broker, topic)) == after, 30, "changes after it")
    producer.stop()

    events = produced(broker, topic)
    snapshot = [e for e in events if e["snapshot"]]
    assert sorted(str(e["key"]) for e in snapshot) == sorted(f"{prefix}k{i}" for i in range(7))
    assert {int(e["revision"]) for e in snapshot} == {compacted_at}
    assert {str(e["value"]) for e in snapshot} == {f"v{i}" for i in range(23, 30)}
    assert sorted(int(e["revision"]) for e in events if not e["snapshot"] and int(e["revision"]) > first) == [
        compacted_at + 1,
        compacted_at + 2,
        compacted_at + 3,
    ]
    # the position ended inside revision `first` (the watch cannot tell a revision is complete until the next)
    assert f"revisions {first} to {compacted_at - 1} of {prefix} were compacted before they were produced" in (
        producer.log_text()
    )


def test_an_etcd_restart_is_ridden_out_without_losing_place(tmp_path: Path, etcd: LocalEtcd, broker: str) -> None:
    prefix, topic = f"/winnow/t/{uuid.uuid4().hex[:6]}/", f"etcd-{uuid.uuid4().hex[:8]}"
    producer = Producer(etcd, broker, prefix, topic, tmp_path).start()
    host, port = etcd.endpoint.split(":")

    async def write(keys: range) -> list[int]:
        client = aetcd.Client(host=host, port=int(port))
        revisions = [(await client.put(f"{prefix}k{i}".encode(), b"v")).header.revision for i in keys]
        await client.close()
        return revisions

    before = asyncio.run(write(range(5)))
    wait_until(lambda: len(produced(broker, topic)) == 5, 30, "the first changes")
    etcd.stop()
    wait_until(lambda: "unavailable" in producer.log_text(), 30, "the producer to notice the outage")
    time.sleep(1.5)  # a few retries with backoff
    etcd.start()
    after = asyncio.run(write(range(5, 10)))
    wait_until(lambda: len(produced(broker, topic)) >= 10, 60, "the changes after the restart")
    producer.stop()
    revisions = sorted(int(e["revision"]) for e in produced(broker, topic))
    assert revisions == before + after
    assert producer.process is not None and producer.process.returncode == 0


def test_a_queued_change_record_holds_only_its_text(etcd: LocalEtcd) -> None:
    # a snapshot of a large prefix queues a record per key: orjson's bytes keep a 4 KiB buffer each
    import tracemalloc

    from connectors.etcd_watch import change_event

    async def read_back() -> object:
        host, port = etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        await client.put(b"/winnow/size/one", b'{"limit": 10}')
        got = await client.get(b"/winnow/size/one")
        await client.close()
        return got

    kv = asyncio.run(read_back())
    tracemalloc.start()
    try:
        records = [change_event("PUT", kv, 7, 1_700_000_000.0, False) for _ in range(2_000)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert orjson.loads(records[0][1])["value"] == '{"limit": 10}'
    assert held < 2_000 * 1_024, f"{held / 2_000:.0f} bytes a record"
