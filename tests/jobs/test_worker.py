"""Streaming workers as real processes against a real broker: equivalence with replay, restarts, crashes, scale-out."""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid
from pathlib import Path

import orjson
import pytest

from connectors.local_broker import free_port
from jobs.spec import JobSpec, load_job_spec
from tests.conftest import EXAMPLE_SPEC, SAMPLE_LOG, WinnowRunner
from tests.streaming_harness import (
    WorkerProcess,
    committed_offsets,
    distinct_finals,
    publish,
    read_topic_sync,
    replay_finals,
    split_log,
    wait_until,
    without_emit_time,
)

pytestmark = pytest.mark.slow


def job_spec(tmp_path: Path, *, source_extra: str = "") -> tuple[Path, JobSpec]:
    """The example job under a unique name and source topic, so tests sharing the broker never meet."""
    name = f"t{uuid.uuid4().hex[:10]}"
    text = EXAMPLE_SPEC.read_text()
    text = text.replace("name: api-abuse", f"name: {name}")
    text = text.replace("source: {topic: requests,", f"source: {{topic: {name}-in,{source_extra}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path, load_job_spec(path)


def wait_processed(broker: str, group: str, spec: JobSpec, counts: tuple[int, ...], timeout: float = 120.0) -> None:
    """Wait until the group's committed offsets (the stored positions) reach the end of every partition."""
    wanted = {p: n for p, n in enumerate(counts) if n}

    def done() -> bool:
        committed = committed_offsets(broker, group, spec.source.topic, spec.source.partitions)
        return all(committed.get(p, 0) >= n for p, n in wanted.items())

    wait_until(done, timeout, f"group {group} to process {sum(counts):,} events")


def replay_dir(winnow: WinnowRunner, spec_path: Path, log: Path, out: Path) -> Path:
    winnow("replay", "--spec", spec_path, "--input", log, "--out", out, "--keep-open", "--quiet")
    return out


def test_streaming_equals_replay_and_bad_and_late_events_reach_their_topics(
    tmp_path: Path, broker: str, winnow: WinnowRunner
) -> None:
    spec_path, spec = job_spec(tmp_path)
    sent = publish(broker, spec, SAMPLE_LOG)
    group = f"{spec.name}-g"
    worker = WorkerProcess(spec_path, broker, tmp_path / "state", tmp_path / "worker.log", group=group)
    metrics_port = free_port()
    worker.args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
    try:
        worker.start().wait_assigned()
        wait_processed(broker, group, spec, sent.per_partition)
        scraped = scrape(metrics_port, spec.name)
    finally:
        assert worker.stop() == 0
    out = replay_dir(winnow, spec_path, SAMPLE_LOG, tmp_path / "replay")
    parts = spec.source.partitions

    results = read_topic_sync(broker, f"{spec.name}.results", parts)
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")
    # one run without crashes: exactly the replay's records, updates included, each once, keyed by the event key
    finals = sorted(r.value for r in results if b'"final":true' in r.value)
    assert finals == sorted((out / "results.jsonl").read_bytes().splitlines())
    updates = sorted(r.value for r in results if b'"final":false' in r.value)
    assert updates == sorted((out / "updates.jsonl").read_bytes().splitlines())
    assert all(r.key == orjson.loads(r.value)["key"].encode() for r in results)
    assert all(orjson.loads(r.value)["partition"] == r.partition for r in results)

    decisions = read_topic_sync(broker, f"{spec.name}.decisions", parts)
    replay_decisions = [line.rstrip(b"\n") for line in (out / "decisions.jsonl").read_bytes().splitlines(keepends=True)]
    assert sorted(without_emit_time(r.value) for r in decisions) == sorted(map(without_emit_time, replay_decisions))

    # dead letters: original bytes untouched, reason in headers, same events as replay's rejected.jsonl
    rejected = read_topic_sync(broker, f"{spec.name}.rejected", parts)
    replay_rejected = [orjson.loads(line) for line in (out / "rejected.jsonl").read_bytes().splitlines()]
    assert len(rejected) == len(replay_rejected) > 0
    lines = _log_lines(SAMPLE_LOG)
    assert sorted(r.value for r in rejected) == sorted(lines[item["line"] - 1] for item in replay_rejected)
    reasons = {item["reason"] for item in replay_rejected}
    source_keys = {(r.partition, r.offset): r.key for r in read_topic_sync(broker, spec.source.topic, parts)}
    for record in rejected:
        headers = dict(record.headers)
        assert headers["winnow-reason"].decode() in reasons
        topic, partition, offset = headers["winnow-source"].decode().rsplit("/", 2)
        assert (topic, int(partition)) == (spec.source.topic, record.partition) and int(offset) >= 0
        assert record.key == source_keys[(record.partition, int(offset))]  # the original key, untouched
    assert any(record.key is not None for record in rejected)

    # late events: same events and reasons as replay, positioned by offset instead of line
    late = read_topic_sync(broker, f"{spec.name}.late", parts)
    replay_late = [orjson.loads(line) for line in (out / "late.jsonl").read_bytes().splitlines()]
    assert len(late) == len(replay_late) > 0

    def late_view(item: dict[str, object]) -> bytes:
        return orjson.dumps([item["event"], item["reason"], item["partition"]])

    assert sorted(late_view(orjson.loads(r.value)) for r in late) == sorted(map(late_view, replay_late))

    # the worker's metrics tell the same story
    assert scraped[("winnow_events_total", "consumed")] == 30_000
    assert scraped[("winnow_rebalances_total", "")] >= 1  # from the Faust sensor
    assert scraped[("winnow_memory_level", "")] == 0 and scraped[("winnow_memory_limit_bytes", "")] > 0
    assert scraped[("winnow_events_total", "rejected")] == len(replay_rejected)
    assert scraped[("winnow_events_total", "late")] == len(replay_late)
    assert sum(v for (name, label), v in scraped.items() if name == "winnow_results_total" and "final" in label) == (
        len(finals)
    )
    assert sum(v for (name, _), v in scraped.items() if name == "winnow_decisions_total") == len(replay_decisions)
    assert [v for (name, _), v in scraped.items() if name == "winnow_consumer_lag"] == [0.0] * spec.source.partitions
    assert sum(v for (name, _), v in scraped.items() if name == "winnow_open_panes") > 0
    assert all(r.key == orjson.dumps(orjson.loads(r.value)["event"]["client_id"])[1:-1] for r in late)


def scrape(port: int, job: str) -> dict[tuple[str, str], float]:
    """Samples of the worker's /metrics for ``job``: (metric name, its other labels) -> value."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[tuple[str, str], float] = {}
    for name, labels, value in re.findall(r"^(winnow_\w+)\{([^}]*)\} (\S+)$", text, re.M):
        if f'job="{job}"' in labels:
            other = ",".join(part for part in labels.split(",") if not part.startswith("job="))
            key = (name, other.split("=", 1)[1].strip('"') if other.count("=") == 1 else other)
            samples[key] = float(value)
    return samples


def _log_lines(path: Path) -> list[bytes]:
    import gzip

    with gzip.open(path, "rb") as handle:
        return [line.rstrip(b"\r\n") for line in handle]


def test_a_restarted_worker_resumes_after_its_stored_offsets(
    tmp_path: Path, broker: str, winnow: WinnowRunner, log_factory
) -> None:  # type: ignore[no-untyped-def]
    spec_path, spec = job_spec(tmp_path)
    log = log_factory(events=20_000, keys=300, rate=200.0, late=0.01, bad=0.002, seed=5)
    first, second = split_log(log, [12_000], tmp_path)
    group = f"{spec.name}-g"
    state = tmp_path / "state"
    worker = WorkerProcess(spec_path, broker, state, tmp_path / "worker.log", group=group)

    sent = publish(broker, spec, first)
    worker.start().wait_assigned()
    wait_processed(broker, group, spec, sent.per_partition)
    assert worker.stop() == 0
    assert (state / "partition-0").is_dir()

    more = publish(broker, spec, second)
    worker.start().wait_assigned()
    total = tuple(a + b for a, b in zip(sent.per_partition, more.per_partition))
    wait_processed(broker, group, spec, total)
    assert worker.stop() == 0

    text = worker.log_text().split("---- start")[-1]
    resumed = dict(re.findall(r"partition (\d+) assigned: resuming at offset (\d+)", text))
    assert {int(p): int(o) for p, o in resumed.items()} == {p: n for p, n in enumerate(sent.per_partition)}
    out = replay_dir(winnow, spec_path, log, tmp_path / "replay")
    results = read_topic_sync(broker, f"{spec.name}.results", spec.source.partitions)
    finals = [r.value for r in results if b'"final":true' in r.value]
    assert len(finals) == len(set(finals)), "a clean restart re-emits nothing"
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")


def test_kill_9_at_random_points_loses_and_double_counts_nothing(
    tmp_path: Path, broker: str, winnow: WinnowRunner, log_factory
) -> None:  # type: ignore[no-untyped-def]
    spec_path, spec = job_spec(tmp_path)
    log = log_factory(events=300_000, keys=2_000, rate=1_000.0, late=0.005, bad=0.001, seed=9)
    sent = publish(broker, spec, log)
    group = f"{spec.name}-g"
    worker = WorkerProcess(spec_path, broker, tmp_path / "state", tmp_path / "worker.log", group=group)
    chooser = random.Random(2026)
    progress: list[int] = []
    kills = 0
    while kills < 5:
        worker.start().wait_assigned()
        time.sleep(chooser.uniform(0.2, 1.5))
        worker.check_alive()
        worker.kill()
        kills += 1
        progress.append(sum(committed_offsets(broker, group, spec.source.topic, spec.source.partitions).values()))
    worker.start().wait_assigned()
    wait_processed(broker, group, spec, sent.per_partition, timeout=180)
    assert worker.stop() == 0
    assert progress[-1] < sum(sent.per_partition), f"every kill must interrupt the run: {progress}"
    print(f"events stored when each kill landed: {progress} of {sum(sent.per_partition):,}")

    out = replay_dir(winnow, spec_path, log, tmp_path / "replay")
    results = read_topic_sync(broker, f"{spec.name}.results", spec.source.partitions)
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")
    decisions = read_topic_sync(broker, f"{spec.name}.decisions", spec.source.partitions)
    replay_ids = {orjson.loads(line)["id"] for line in (out / "decisions.jsonl").read_bytes().splitlines(keepends=True)}
    assert {orjson.loads(r.value)["id"] for r in decisions} == replay_ids


def test_two_workers_share_the_partitions_and_survive_rebalances(
    tmp_path: Path, broker: str, winnow: WinnowRunner, log_factory
) -> None:  # type: ignore[no-untyped-def]
    spec_path, spec = job_spec(tmp_path)
    log = log_factory(events=90_000, keys=1_000, rate=500.0, late=0.005, bad=0.001, seed=21)
    thirds = split_log(log, [30_000, 60_000], tmp_path)
    group = f"{spec.name}-g"
    a = WorkerProcess(spec_path, broker, tmp_path / "state-a", tmp_path / "a.log", group=group)
    b = WorkerProcess(spec_path, broker, tmp_path / "state-b", tmp_path / "b.log", group=group)
    counts = [0] * spec.source.partitions

    def add(sent: tuple[int, ...]) -> tuple[int, ...]:
        for p, n in enumerate(sent):
            counts[p] += n
        return tuple(counts)

    try:
        add(publish(broker, spec, thirds[0]).per_partition)
        a.start().wait_assigned()
        wait_until(
            lambda: sum(committed_offsets(broker, group, spec.source.topic, spec.source.partitions).values()) > 0,
            60,
            "worker a to commit progress",
        )
        b.start().wait_assigned()  # the group rebalances: a gives up some partitions to b
        total = add(publish(broker, spec, thirds[1]).per_partition)
        wait_processed(broker, group, spec, total)
        owned_a, owned_b = _owned(a), _owned(b)
        assert owned_a and owned_b and not owned_a & owned_b, (owned_a, owned_b)
        assert owned_a | owned_b == set(range(spec.source.partitions))

        assert a.stop() == 0  # b takes every partition; those it never had are rebuilt from the beginning
        total = add(publish(broker, spec, thirds[2]).per_partition)
        wait_processed(broker, group, spec, total)
        assert _owned(b) == set(range(spec.source.partitions))
    finally:
        for worker in (a, b):
            if worker.process is not None and worker.process.poll() is None:
                worker.stop()

    out = replay_dir(winnow, spec_path, log, tmp_path / "replay")
    results = read_topic_sync(broker, f"{spec.name}.results", spec.source.partitions)
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")
    decisions = read_topic_sync(broker, f"{spec.name}.decisions", spec.source.partitions)
    replay_ids = {orjson.loads(line)["id"] for line in (out / "decisions.jsonl").read_bytes().splitlines()}
    assert {orjson.loads(r.value)["id"] for r in decisions} == replay_ids


def _owned(worker: WorkerProcess) -> set[int]:
    """Partitions a worker owns now, from its log: assignments after the last revocation."""
    text = worker.log_text().split("---- start")[-1]
    last = max(text.rfind("revoked after committing"), 0)
    return {int(p) for p in re.findall(r"partition (\d+) assigned", text[last:])}


def test_an_idle_partition_closes_its_windows_after_the_idle_timeout(tmp_path: Path, broker: str) -> None:
    """With ``idle_timeout``, wall clock moves an idle partition's stream time; without it windows wait for events."""
    name = f"idle{uuid.uuid4().hex[:8]}"
    spec_text = f"""
name: {name}
source: {{topic: {name}-in, key: k, timestamp: ts, partitions: 2, idle_timeout: 1s}}
windows:
  two_seconds: {{type: tumbling, size: 2s, grace: 0s, emit: final, aggregate: {{n: count}}}}
"""
    spec_path = tmp_path / "idle.yaml"
    spec_path.write_text(spec_text)
    spec = load_job_spec(spec_path)
    base = 1_767_225_600_000  # a multiple of 2 s
    log = tmp_path / "idle.jsonl"
    log.write_bytes(b"".join(orjson.dumps({"k": "a", "ts": base + i * 100}) + b"\n" for i in range(15)))
    group = f"{name}-g"
    worker = WorkerProcess(spec_path, broker, tmp_path / "state", tmp_path / "worker.log", group=group)
    try:
        worker.start().wait_assigned()
        started = time.monotonic()
        sent = publish(broker, spec, log)
        wait_processed(broker, group, spec, sent.per_partition)

        def emitted() -> list[dict[str, object]]:
            records = read_topic_sync(broker, f"{name}.results", 2, quiet_for=0.2)
            return [orjson.loads(r.value) for r in records]

        wait_until(lambda: bool(emitted()), 30, "the idle partition's window to close")
        waited = time.monotonic() - started
    finally:
        worker.stop()
    (result,) = emitted()
    assert (result["key"], result["start"], result["end"], result["values"]) == ("a", base, base + 2_000, {"n": 15})
    # the last event was at base + 1400: only the idle clock can have moved stream time to the window's end
    assert int(str(result["emitted_at"])) >= base + 2_000
    assert waited >= 1.0
    assert "idle for" in worker.log_text()


def test_dev_runs_the_example_job_on_an_embedded_broker_and_matches_replay(
    tmp_path: Path, winnow: WinnowRunner
) -> None:
    proc = winnow("dev", "--spec", EXAMPLE_SPEC, "--until-done", "--max-print", "3")
    out = replay_dir(winnow, EXAMPLE_SPEC, SAMPLE_LOG, tmp_path / "replay")
    summary = re.findall(r"^  (results|updates|decisions|events published)\s+([\d,]+)$", proc.stdout, re.M)
    counts = {label: int(value.replace(",", "")) for label, value in summary}
    assert counts == {
        "events published": 30_000,
        "results": len((out / "results.jsonl").read_bytes().splitlines()),
        "updates": len((out / "updates.jsonl").read_bytes().splitlines()),
        "decisions": len((out / "decisions.jsonl").read_bytes().splitlines()),
    }
    assert proc.stdout.count("\nresult   {") + proc.stdout.count("\ndecision {") == 3
    assert "worker exited with status 0" in proc.stdout


def test_a_wiped_worker_restores_its_checkpoints_and_replays_only_the_tail(
    tmp_path: Path, broker: str, winnow: WinnowRunner, log_factory
) -> None:  # type: ignore[no-untyped-def]
    spec_path, spec = job_spec(tmp_path)
    log = log_factory(events=40_000, keys=500, rate=200.0, late=0.01, bad=0.002, seed=13)
    first, second = split_log(log, [30_000], tmp_path)
    group = f"{spec.name}-g"
    state, checkpoints = tmp_path / "state", tmp_path / "checkpoints"
    worker = WorkerProcess(spec_path, broker, state, tmp_path / "worker.log", group=group)
    worker.args += ["--checkpoint-dir", str(checkpoints), "--checkpoint-interval", "1"]

    sent = publish(broker, spec, first)
    worker.start().wait_assigned()
    wait_processed(broker, group, spec, sent.per_partition)
    assert worker.stop() == 0  # a clean stop checkpoints every partition and waits for the uploads

    listing = winnow("checkpoints", "list", "--spec", spec_path, "--checkpoint-dir", checkpoints).stdout
    newest = {}
    for partition, sequence, offset in re.findall(r"^\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\d+)", listing, re.M):
        newest[int(partition)] = (int(sequence), int(offset))
    assert {p: offset for p, (_, offset) in newest.items()} == dict(enumerate(sent.per_partition))
    assert "0 damaged" in winnow("checkpoints", "verify", "--spec", spec_path, "--checkpoint-dir", checkpoints).stdout

    # damage partition 0's newest checkpoint: verify names it, the worker falls back and says so
    manifest = orjson.loads(
        winnow("checkpoints", "show", "--spec", spec_path, "--checkpoint-dir", checkpoints, "--partition", "0").stdout
    )
    victim = max((f for f in manifest["files"] if f["name"].endswith(".sst")), key=lambda f: f["size"])
    damaged = checkpoints / victim["object"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    check = winnow("checkpoints", "verify", "--spec", spec_path, "--checkpoint-dir", checkpoints, check=False)
    assert check.returncode == 1 and f"{victim['name']}: checksum mismatch" in check.stdout

    shutil.rmtree(state)
    more = publish(broker, spec, second)
    worker.start().wait_assigned()
    total = tuple(a + b for a, b in zip(sent.per_partition, more.per_partition))
    wait_processed(broker, group, spec, total)
    assert worker.stop() == 0
    text = worker.log_text().split("---- start")[-1]
    restored = {
        int(p): int(o) for p, o in re.findall(r"partition (\d+) restored from checkpoint \S+ \(offset (\d+)", text)
    }
    assert "checkpoint" in text and "is damaged" in text
    for p in range(1, spec.source.partitions):
        assert restored[p] == sent.per_partition[p], "intact partitions resume where their checkpoint ends"
    assert restored.get(0, 0) < sent.per_partition[0], "partition 0 fell back to an older checkpoint or the input"
    status = orjson.loads(re.search(r"stopped cleanly: (\{.*\})", text).group(1).replace("'", '"'))  # type: ignore[union-attr]
    replayed = sum(total) - sum(restored.values())
    assert status["records_in"] == replayed < sum(total)

    out = replay_dir(winnow, spec_path, log, tmp_path / "replay")
    results = read_topic_sync(broker, f"{spec.name}.results", spec.source.partitions)
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")
