"""One trace from an etcd write to a decision: etcd -> etcd-watch producer -> Kafka -> worker -> decision."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import aetcd
import orjson
import pytest

from connectors.local_broker import free_port
from connectors.local_etcd import LocalEtcd
from tests.deploy.test_prometheus import check_alert_metrics_are_exported
from tests.streaming_harness import ROOT, WorkerProcess, read_topic_sync, wait_until

pytestmark = pytest.mark.slow


def test_a_trace_travels_from_an_etcd_write_to_the_decision_it_causes(
    tmp_path: Path, etcd: LocalEtcd, broker: str
) -> None:
    name = f"trace{uuid.uuid4().hex[:8]}"
    topic, prefix = f"{name}-changes", f"/apps/{name}/"
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(
        f"""
name: {name}
source: {{topic: {topic}, key: key, timestamp: observed_at, partitions: 2}}
windows:
  recent: {{type: tumbling, size: 200ms, grace: 0ms, emit: update, update_interval: 0ms, aggregate: {{n: count}}}}
"""
    )
    rules_prefix = f"/winnow/acme/jobs/{name}/rules/"

    async def put_rule() -> None:
        host, port = etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        await client.put(f"{rules_prefix}seen".encode(), b"{window: recent, when: 'n >= 1', action: log}")
        await client.close()

    asyncio.run(put_rule())
    producer_port = free_port()
    producer_log_path = tmp_path / "producer.log"
    producer_log = open(producer_log_path, "wb")
    producer = subprocess.Popen(
        [
            sys.executable, "-m", "jobs.cli", "etcd-watch", "--etcd", etcd.endpoint, "--prefix", prefix,
            "--topic", topic, "--partitions", "2", "--position-file", str(tmp_path / "position.json"),
            "--bootstrap", broker, "--metrics-address", f"127.0.0.1:{producer_port}",
        ],
        cwd=ROOT, stdout=producer_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    metrics_port = free_port()
    worker = WorkerProcess(spec_path, broker, tmp_path / "state", tmp_path / "worker.log", group=f"{name}-g")
    worker.args += [
        "--metrics-address",
        f"127.0.0.1:{metrics_port}",
        "--rules-from",
        f"etcd://{etcd.endpoint}{rules_prefix}",
    ]
    worker.args += ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--checkpoint-interval", "1"]
    parents = {f"{prefix}k{i:02d}": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01" for i in range(0, 30, 3)}
    try:
        worker.start().wait_assigned()
        host, port = etcd.endpoint.split(":")

        async def write() -> None:
            client = aetcd.Client(host=host, port=int(port))
            for i in range(30):
                key = f"{prefix}k{i:02d}"
                value = {"i": i, "traceparent": parents[key]} if key in parents else {"i": i}
                await client.put(key.encode(), orjson.dumps(value))
                await asyncio.sleep(0.02)
            await client.close()  # no later changes: with update_interval 0 the last ones decide all the same

        asyncio.run(write())
        keys = [f"{prefix}k{i:02d}" for i in range(30)]

        def decided() -> dict[str, dict[str, object]]:
            records = read_topic_sync(broker, f"{name}.decisions", 2, quiet_for=0.3)
            return {str(d["key"]): d for d in (orjson.loads(r.value) for r in records)}

        try:
            wait_until(lambda: set(keys) <= set(decided()), 60, "a decision for every written key")
        except AssertionError as timeout:
            missing = sorted(set(keys) - set(decided()))
            logs = f"worker log:\n{worker.log_text()[-3000:]}\nproducer log:\n{producer_log_path.read_text()[-2000:]}"
            raise AssertionError(f"{timeout}; no decision for {missing}\n{logs}") from None
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        # the alert rules shipped in deploy/prometheus work against these real processes
        check_alert_metrics_are_exported(
            tmp_path / "prometheus",
            {"winnow-worker": [f"127.0.0.1:{metrics_port}"], "winnow-etcd-watch": [f"127.0.0.1:{producer_port}"]},
        )
    finally:
        worker.stop()
        producer.terminate()
        producer.wait(timeout=30)
        producer_log.close()

    changes = {}
    for record in read_topic_sync(broker, topic, 2):
        headers = dict(record.headers)
        changes[record.key.decode()] = (headers["traceparent"].decode(), record.timestamp_ms)  # type: ignore[union-attr]
    decisions = decided()
    for key in keys:
        decision, (traceparent, timestamp) = decisions[key], changes[key]
        trace = traceparent.split("-")[1]
        assert decision["trace_id"] == trace, key
        if key in parents:  # the etcd value's own trace continues all the way
            assert trace == parents[key].split("-")[1]
        _, trace_again, span, _ = str(decision["traceparent"]).split("-")
        assert trace_again == trace and span not in traceparent
        assert decision["origin_at"] == timestamp
    count = re.search(rf'winnow_decision_latency_seconds_count{{job="{name}"}} (\d+)', metrics)
    assert count is not None and int(float(count.group(1))) >= len(keys)
