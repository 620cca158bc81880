"""The memory governor under a real limit: a flood of distinct keys neither kills the job nor changes its output.

Each test runs the job as a real process. Where the machine lets the tests
create a memory cgroup (root with a writable cgroup v1 or v2 memory
hierarchy), the limit is the kernel's: going over it means an OOM kill. Where
it does not, the job is given ``--memory-limit`` and its peak resident memory
(the kernel's VmHWM) is held against the limit instead; the worker then gets
a wider margin, since RSS also counts shared libraries and grows by a whole
fetched batch between the governor's readings. Each test prints which one it
used; ``WINNOW_TEST_CGROUP=0`` forces the ``--memory-limit`` path.
"""

from __future__ import annotations

import math
import re
import secrets
import sys
import time
from pathlib import Path

import orjson
import pytest

from connectors.local_broker import free_port
from tests.conftest import ROOT, WinnowRunner
from tests.memory_harness import MemoryCgroup, run_with_peak

pytestmark = pytest.mark.slow

MiB = 2**20
# levels closer together than the defaults (70,85,95), so the flood reaches throttle as well as pressure
THRESHOLDS = ["--memory-thresholds", "60,70,95"]
ROOMY = 4 * 2**30  # a cgroup limit no test run comes near
NORMAL_AGAIN = ("winnow_memory_transitions_total", "normal")

FLOOD_SPEC = """
name: {name}
source: {{topic: {name}-in, key: key, timestamp: ts, partitions: 2}}
windows:
  minute: {{type: tumbling, size: 1m, grace: 0ms, emit: final, aggregate: {{n: count, total: sum(v), top: max(v)}}}}
  pair: {{type: hopping, size: 2m, step: 1m, grace: 0ms, emit: final, aggregate: {{n: count}}}}
rules:
  - {{name: heavy, window: minute, when: "top >= 95", action: flag}}
"""


def write_flood(path: Path, events: int, spacing_ms: int = 2) -> Path:
    """A log where every event has a key never seen before: the state and the key registry only grow."""
    with open(path, "wb") as out:
        for i in range(events):
            out.write(orjson.dumps({"key": f"client-{i:07d}", "ts": 1_700_000_000_000 + i * spacing_ms, "v": i % 97}))
            out.write(b"\n")
    return path


def run_measured(args: list[str], cgroup: MemoryCgroup | None = None) -> tuple[int, str, int]:
    """Run ``winnow ARGS``; return its exit status, its output and its own peak resident memory (bytes)."""
    preexec = cgroup.enter() if cgroup is not None else None
    return run_with_peak([sys.executable, "-m", "jobs.cli", *args], ROOT, preexec)


def summary_value(output: str, label: str) -> str:
    found = re.search(rf"^\s+{re.escape(label)}\s+(.+?)\s*$", output, re.MULTILINE)
    assert found is not None, f"no {label!r} in:\n{output}"
    return found.group(1)


def test_replay_under_a_memory_limit_passes_through_the_levels_and_writes_the_same_output(
    tmp_path: Path, winnow: WinnowRunner
) -> None:
    spec = tmp_path / "flood.yaml"
    spec.write_text(FLOOD_SPEC.format(name="flood"))
    log = write_flood(tmp_path / "flood.jsonl", 500_000)
    head = tmp_path / "head.jsonl"
    head.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:50_000]))

    def replay(out: str, *extra: str, cgroup: MemoryCgroup | None = None) -> tuple[int, str, int]:
        return run_measured(["replay", "--spec", str(spec), "--out", str(tmp_path / out), "--quiet", *extra], cgroup)

    # baseline: the job over one default-sized batch; the flood without a limit grows far beyond it
    status, output, baseline = replay("head", "--input", str(head))
    assert status == 0, output
    status, output, unlimited = replay("free", "--input", str(log))
    assert status == 0, output
    limit = baseline + 56 * MiB
    assert unlimited > limit * 1.3, (baseline, unlimited)

    cgroup = MemoryCgroup.create(limit)
    try:
        how = f"kernel cgroup {cgroup.path}" if cgroup is not None else "--memory-limit (no cgroup can be made here)"
        sizes = f"baseline {baseline / MiB:.0f} MiB, unlimited {unlimited / MiB:.0f} MiB"
        print(f"limit {limit / MiB:.0f} MiB by {how}; {sizes}")
        extra = [*THRESHOLDS] + ([] if cgroup is not None else ["--memory-limit", str(limit)])
        started = time.monotonic()
        status, output, peak = replay("governed", "--input", str(log), *extra, cgroup=cgroup)
        charged = cgroup.peak_usage() if cgroup is not None else None
        print(f"governed: {time.monotonic() - started:.1f} s, peak RSS {peak / MiB:.0f} MiB", end="")
        print(f", cgroup peak charge {charged / MiB:.0f} MiB" if charged is not None else "", f"\n{output}")
        killed = f"OOM kills in the cgroup: {cgroup.oom_kills()}" if cgroup is not None else "no cgroup"
        assert status == 0, f"exit status {status} ({killed})\n{output}"  # not OOM-killed
        if cgroup is not None:
            assert cgroup.oom_kills() == 0  # the kernel held it to the limit and never had to kill
        else:
            assert peak < limit, (peak, limit)  # RSS counts shared libraries too: a stricter test than the cgroup's
    finally:
        if cgroup is not None:
            cgroup.remove()
    assert int(summary_value(output, "memory peak MiB").replace(",", "")) * MiB < limit  # as the governor saw it
    levels = summary_value(output, "memory levels").split(",")
    assert {"pressure", "throttle"} <= set(levels), levels
    assert int(summary_value(output, "back to normal").split()[0].replace(",", "")) >= 1
    assert int(summary_value(output, "panes evicted").replace(",", "")) > 0
    for name in ("results", "decisions", "late", "rejected"):
        governed, free = tmp_path / "governed" / f"{name}.jsonl", tmp_path / "free" / f"{name}.jsonl"
        assert governed.read_bytes() == free.read_bytes(), name
    assert (tmp_path / "free" / "results.jsonl").stat().st_size > 0


def test_a_worker_under_a_memory_limit_pauses_its_input_and_emits_what_replay_does(
    tmp_path: Path, broker: str, winnow: WinnowRunner
) -> None:
    from jobs.spec import JobSpec, load_job_spec
    from tests.jobs.test_worker import scrape, wait_processed
    from tests.memory_harness import current_rss, peak_rss
    from tests.streaming_harness import (
        WorkerProcess,
        distinct_finals,
        publish,
        read_topic_sync,
        replay_finals,
        wait_until,
    )

    def job(name: str) -> tuple[Path, JobSpec]:
        spec_path = tmp_path / f"{name}.yaml"
        spec_path.write_text(FLOOD_SPEC.format(name=name))
        return spec_path, load_job_spec(spec_path)

    def worker(spec_path: Path, label: str, *extra: str) -> tuple[WorkerProcess, int]:
        group = f"{spec_path.stem}-{label}"
        process = WorkerProcess(spec_path, broker, tmp_path / f"state-{label}", tmp_path / f"{label}.log", group=group)
        port = free_port()
        process.args += ["--metrics-address", f"127.0.0.1:{port}", *extra]
        return process, port

    log = write_flood(tmp_path / "flood.jsonl", 300_000)
    # the worker's baseline: its peak over one default-sized batch per partition, with no memory limit; in a
    # roomy cgroup where this machine allows one, so that its governor reads memory as the limited one will
    head = tmp_path / "head.jsonl"
    head.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:40_000]))
    base_path, base_spec = job(f"base{secrets.token_hex(4)}")
    base_sent = publish(broker, base_spec, head)
    roomy = MemoryCgroup.create(ROOMY)
    free, base_port = worker(base_path, "baseline")
    if roomy is not None:
        free.preexec = roomy.enter()
    try:
        free.start().wait_assigned()
        wait_processed(broker, free.group, base_spec, base_sent.per_partition)
        assert free.process is not None
        baseline = peak_rss(free.process.pid)
        time.sleep(1)
        # what an idle worker keeps after its batches, as the limited worker's governor will read it: the
        # cgroup's working set (this one's governor reads it too), or else the process's RSS
        if roomy is not None:
            floor = int(scrape(base_port, base_spec.name)[("winnow_memory_usage_bytes", "")])
        else:
            floor = current_rss(free.process.pid)
    finally:
        assert free.stop() == 0
        if roomy is not None:
            roomy.remove()
    spec_path, spec = job(f"flood{secrets.token_hex(4)}")
    name = spec.name
    sent = publish(broker, spec, log)

    limit = baseline + 64 * MiB
    cgroup = MemoryCgroup.create(limit) if roomy is not None else None
    if cgroup is None:
        # held against RSS instead, which also counts shared libraries and moves between the governor's
        # readings by a whole fetched batch: a wider margin
        limit = baseline + 128 * MiB
    # Pressure alone (commit and evict every batch, fetch a tenth) holds this flood near one batch's
    # worth of memory, so throttle sits just above pressure: a default-sized batch arriving at normal and
    # the flood at pressure both cross it. Pressure's resume point (5 below its start) sits above the
    # idle worker's memory, so that pressure can end once the flood is over.
    pressure = math.ceil((floor + 16 * MiB) / limit * 100) + 5
    thresholds = ["--memory-thresholds", f"{pressure},{pressure + 3},95"]
    assert pressure + 3 < 95, (floor, limit)
    limited = [] if cgroup is not None else ["--memory-limit", str(limit)]
    governed, port = worker(spec_path, "governed", *thresholds, *limited)
    if cgroup is not None:
        governed.preexec = cgroup.enter()
    how = f"kernel cgroup {cgroup.path}" if cgroup is not None else "--memory-limit (no cgroup can be made here)"
    sizes = f"worker baseline {baseline / MiB:.0f} MiB, idle {floor / MiB:.0f} MiB; {thresholds[1]}"
    print(f"limit {limit / MiB:.0f} MiB by {how}; {sizes}")
    try:
        started = time.monotonic()
        governed.start().wait_assigned()
        wait_processed(broker, governed.group, spec, sent.per_partition, timeout=300)
        print(f"governed worker: {sum(sent.per_partition):,} events in {time.monotonic() - started:.1f} s")
        # once the flood is over, the governor's next relief (every 2 s at pressure) brings memory down
        wait_until(lambda: scrape(port, name).get(NORMAL_AGAIN, 0) >= 1, 30, "memory back to normal")
        scraped = scrape(port, name)
        assert governed.process is not None
        peak = peak_rss(governed.process.pid)
        assert governed.stop() == 0  # not OOM-killed, and a clean stop
        if cgroup is not None:
            assert cgroup.oom_kills() == 0
            charged = cgroup.peak_usage()
            print(f"peak RSS {peak / MiB:.0f} MiB, cgroup peak charge {(charged or 0) / MiB:.0f} MiB")
        else:
            print(f"peak RSS {peak / MiB:.0f} MiB")
            assert peak < limit, (peak, limit)
    finally:
        governed.stop()
        if cgroup is not None:
            cgroup.remove()
    text = governed.log_text()
    print("\n".join(line for line in text.splitlines() if "memory" in line or "input" in line)[-3000:])
    assert scraped[("winnow_memory_transitions_total", "pressure")] >= 1
    assert scraped[("winnow_memory_usage_bytes", "")] < limit
    assert scraped[("winnow_state_evicted_panes_total", "")] > 0
    assert scraped[("winnow_memory_limit_bytes", "")] == limit
    assert scraped[("winnow_memory_transitions_total", "throttle")] >= 1
    assert "input paused" in text and "input resumed" in text  # Kafka kept the records meanwhile
    assert scraped[("winnow_memory_paused_seconds_total", "")] > 0
    assert scraped[NORMAL_AGAIN] >= 1  # back to normal when pressure fell

    out = tmp_path / "replay"
    winnow("replay", "--spec", spec_path, "--input", log, "--out", out, "--keep-open", "--quiet")
    results = read_topic_sync(broker, f"{name}.results", spec.source.partitions)
    assert distinct_finals(results) == replay_finals(out / "results.jsonl")
    assert len(results) >= len((out / "results.jsonl").read_bytes().splitlines()) > 100_000
