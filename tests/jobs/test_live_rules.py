"""Live rules from a real etcd: revision stamps, atomic updates, rejection, rollback, outages, tenants."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import aetcd
import orjson
import pytest

from connectors.local_etcd import LocalEtcd
from jobs.live_rules import RulesLocation, rollback, rule_history
from jobs.spec import load_job_spec
from tests.conftest import EXAMPLE_SPEC, WinnowRunner
from tests.streaming_harness import (
    WorkerProcess,
    committed_offsets,
    publish,
    read_topic_sync,
    split_log,
    wait_until,
)

pytestmark = pytest.mark.slow

BURST = b"{window: last_10s, when: 'requests > 50', action: throttle}"
EVERY_MINUTE = b"{window: per_minute, when: 'requests > 0', action: note}"
BUSY_MINUTE = b"{window: per_minute, when: 'requests > 100', action: alert}"


def etcd_call(etcd: LocalEtcd, work):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        host, port = etcd.endpoint.split(":")
        client = aetcd.Client(host=host, port=int(port))
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(run())


def put(etcd: LocalEtcd, values: dict[str, bytes | None]) -> int:
    """Write (or delete, for None) keys in one transaction; return its revision."""

    async def work(client):  # type: ignore[no-untyped-def]
        ops = client.transactions
        success = [ops.delete(k.encode()) if v is None else ops.put(k.encode(), v) for k, v in values.items()]
        await client.transaction(compare=[], success=success, failure=[])
        return int((await client.get_prefix(b"/", keys_only=True)).header.revision)

    return int(etcd_call(etcd, work))


def job(tmp_path: Path) -> tuple[Path, str]:
    name = f"r{uuid.uuid4().hex[:8]}"
    text = EXAMPLE_SPEC.read_text().replace("name: api-abuse", f"name: {name}")
    text = text.replace("source: {topic: requests,", f"source: {{topic: {name}-in,")
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path, name


def test_a_worker_follows_its_live_rules(tmp_path: Path, etcd: LocalEtcd, broker: str, log_factory) -> None:  # type: ignore[no-untyped-def]
    spec_path, name = job(tmp_path)
    spec = load_job_spec(spec_path)
    prefix = f"/winnow/acme/jobs/{name}/rules/"
    other_tenant = f"/winnow/globex/jobs/{name}/rules/"
    first = put(etcd, {prefix + "burst": BURST, other_tenant + "every": EVERY_MINUTE})
    log = log_factory(events=16_000, keys=200, rate=100.0, seed=3)
    parts = split_log(log, [4_000, 8_000, 12_000], tmp_path)
    group = f"{name}-g"
    worker = WorkerProcess(spec_path, broker, tmp_path / "state", tmp_path / "worker.log", group=group)
    worker.args += ["--rules-from", f"etcd://{etcd.endpoint}{prefix}", "--rules-stale-after", "2"]
    counts = [0] * spec.source.partitions

    def feed(part: Path) -> None:
        for p, n in enumerate(publish(broker, spec, part).per_partition):
            counts[p] += n
        wait_until(
            lambda: all(
                committed_offsets(broker, group, spec.source.topic, 4).get(p, 0) >= n for p, n in enumerate(counts)
            ),
            60,
            "the worker to process the part",
        )

    def decisions() -> list[dict[str, object]]:
        return [orjson.loads(r.value) for r in read_topic_sync(broker, f"{name}.decisions", 4)]

    worker.start().wait_assigned()
    feed(parts[0])
    assert {(d["rule"], d["rules_revision"], d["stale_rules"]) for d in decisions()} == {("burst", first, False)}

    # two rules in one transaction: the worker never holds one without the other
    second = put(etcd, {prefix + "every": EVERY_MINUTE, prefix + "busy": BUSY_MINUTE})
    wait_until(lambda: f"replaced by revision {second}" in worker.log_text(), 30, "the new rule set")
    put(etcd, {other_tenant + "every": None, other_tenant + "busy": BUSY_MINUTE})  # another tenant: ignored
    invalid = put(etcd, {prefix + "broken": b"{window: per_minute, when: 'requests >>> 1', action: x}"})
    wait_until(lambda: f"rules at revision {invalid} rejected" in worker.log_text(), 30, "the rejection")
    feed(parts[1])
    later = [d for d in decisions() if d["rules_revision"] == second]
    assert {d["rule"] for d in later} == {"burst", "every", "busy"}
    assert {d["rules_revision"] for d in decisions()} == {first, second}
    loaded = re.findall(r"rules at revision (\d+): (.*)", worker.log_text())
    assert all(("every" in names) == ("busy" in names) for _, names in loaded), loaded
    assert not any(int(revision) == invalid for revision, _ in loaded)

    # etcd goes away: decisions go on with the last good rules, flagged stale after 2 s; then it catches up
    etcd.stop()
    time.sleep(3.0)
    feed(parts[2])
    assert any(d["stale_rules"] and d["rules_revision"] == second for d in decisions())
    etcd.start()
    put(etcd, {prefix + "broken": None})
    wait_until(lambda: "fresh again" in worker.log_text(), 30, "fresh rules after the outage")
    feed(parts[3])
    assert worker.stop() == 0
    assert "broken" not in {d["rule"] for d in decisions()}


def test_history_and_a_guarded_rollback(tmp_path: Path, etcd: LocalEtcd) -> None:
    spec_path, name = job(tmp_path)
    spec = load_job_spec(spec_path)
    prefix = f"/winnow/acme/jobs/{name}/rules/"
    location = RulesLocation.parse(f"etcd://{etcd.endpoint}{prefix}", name)
    one = put(etcd, {prefix + "burst": BURST})
    two = put(etcd, {prefix + "every": EVERY_MINUTE})
    three = put(etcd, {prefix + "burst": None, prefix + "busy": BUSY_MINUTE})
    history, oldest = asyncio.run(rule_history(location))
    assert oldest == 1
    assert [(revision, sorted(rules)) for revision, rules in history] == [
        (one, ["burst"]),
        (two, ["burst", "every"]),
        (three, ["busy", "every"]),
    ]
    written = asyncio.run(rollback(location, spec, one))

    async def current(client):  # type: ignore[no-untyped-def]
        return {bytes(kv.key).decode(): bytes(kv.value) for kv in (await client.get_prefix(prefix.encode())).kvs}

    assert etcd_call(etcd, current) == {prefix + "burst": BURST}
    history, _ = asyncio.run(rule_history(location))
    assert history[-1] == (written, {"burst": BURST})

    async def compact(client):  # type: ignore[no-untyped-def]
        await client.compact(written)

    etcd_call(etcd, compact)
    with pytest.raises(Exception, match="not in etcd's history"):
        asyncio.run(rollback(location, spec, two))


def test_a_worker_with_an_invalid_rule_set_stops_before_any_output(
    tmp_path: Path, etcd: LocalEtcd, broker: str, winnow: WinnowRunner
) -> None:
    spec_path, name = job(tmp_path)
    prefix = f"/winnow/acme/jobs/{name}/rules/"
    put(etcd, {prefix + "burst": b"{window: nowhere, when: 'requests > 1', action: x}"})
    proc = winnow(
        "worker", "--spec", spec_path, "--bootstrap", broker, "--state-dir", tmp_path / "state",
        "--rules-from", f"etcd://{etcd.endpoint}{prefix}", check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"etcd key {prefix}burst" in proc.stderr and "no window named 'nowhere'" in proc.stderr
    wrong = winnow(
        "worker",
        "--spec",
        spec_path,
        "--rules-from",
        f"etcd://{etcd.endpoint}/winnow/acme/jobs/other/rules/",
        check=False,
    )
    assert wrong.returncode == 2 and "names job 'other'" in wrong.stderr
    assert not (tmp_path / "state").exists()
