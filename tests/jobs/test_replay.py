"""``winnow replay`` end to end, as a real process over real files and RocksDB."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from connectors.partitioner import partition_for
from state.key_encoding import PANE_PREFIX
from state.partition_store import PartitionStore
from tests.conftest import EXAMPLE_SPEC, SAMPLE_LOG, WinnowRunner

OUTPUTS = ("results", "updates", "decisions", "late", "rejected")
SHORT_WINDOWS = """
name: short
source: {key: client_id, timestamp: ts, partitions: 3}
windows:
  tumbling: {type: tumbling, size: 10s, grace: 1s, emit: update, update_interval: 3s,
             aggregate: {n: count, p90: p90(latency_ms), b: sum(bytes), first: first(bytes), rate: decay(5s)}}
  hopping:  {type: hopping, size: 30s, step: 10s, grace: 2s, aggregate: {n: count, paths: distinct(path)}}
  sliding:  {type: sliding, size: 5s, grace: 1s, emit: update, aggregate: {n: count, top: max(latency_ms)}}
rules:
  - {name: busy, window: sliding, when: "n > 20", action: throttle}
  - {name: slow, window: tumbling, when: "p90 > 60 and n >= 10", action: alert}
"""


def read(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replaying_the_bundled_sample(tmp_path: Path, winnow: WinnowRunner) -> None:
    proc = winnow("replay", "--spec", EXAMPLE_SPEC, "--input", SAMPLE_LOG, "--out", tmp_path / "out")
    out = tmp_path / "out"
    summary = dict(
        (label.strip(), value.strip().replace(",", ""))
        for label, value in (line.rsplit("  ", 1) for line in proc.stdout.splitlines()[1:])
    )
    results, decisions, rejected = (
        read(out / "results.jsonl"),
        read(out / "decisions.jsonl"),
        read(out / "rejected.jsonl"),
    )
    assert int(summary["final results"]) == len(results) > 0
    assert int(summary["decisions"]) == len(decisions) > 0
    assert int(summary["rejected"]) == len(rejected) > 0
    assert int(summary["events read"]) == sum(1 for _ in gzip.open(SAMPLE_LOG))
    assert {r["window"] for r in results} == {"per_minute", "rolling_5m", "last_10s"}
    for r in results[:2000]:
        assert r["partition"] == partition_for(r["key"].encode(), 4)
        assert r["final"] is True and r["start"] < r["end"]
    assert {d["rule"] for d in decisions} == {"burst"}
    assert all(d["values"]["requests"] > 50 and len(d["id"]) == 32 for d in decisions)
    assert len({d["id"] for d in decisions}) == len(decisions)  # each (rule, key, window) decided once
    assert all(isinstance(r["line"], int) and r["reason"] for r in rejected)
    # results of one partition come out in emission order
    times = [r["emitted_at"] for r in results if r["partition"] == 0]
    assert times == sorted(times)
    # every window closed at the end of the log, so RocksDB holds no window state
    for partition in range(4):
        store = PartitionStore(out / "state" / f"partition-{partition}")
        assert store.count(PANE_PREFIX) == 0
        store.close()


def test_output_is_byte_identical_whatever_the_batch_size(
    tmp_path: Path, winnow: WinnowRunner, log_factory: Callable[..., Path]
) -> None:
    log = log_factory(events=4_000, keys=40, rate=100.0, late=0.03, bad=0.01, seed=3)
    spec = tmp_path / "short.yaml"
    spec.write_text(SHORT_WINDOWS)
    runs = {}
    for size in (1, 13, 4_000):
        out = tmp_path / f"out-{size}"
        winnow("replay", "--spec", spec, "--input", log, "--out", out, "--batch-size", size)
        runs[size] = {name: (out / f"{name}.jsonl").read_bytes() for name in OUTPUTS}
    assert runs[1] == runs[13] == runs[4_000]
    assert all(runs[1][name] for name in OUTPUTS)  # every kind of output was exercised


def test_bad_input_goes_to_rejected_with_line_and_reason(tmp_path: Path, winnow: WinnowRunner) -> None:
    good = {"client_id": "c1", "ts": 1_767_225_600_000, "bytes": 1, "latency_ms": 2.0}
    lines = [
        orjson.dumps(good),
        b'{"client_id": "c1", "ts": 17',
        orjson.dumps({**good, "client_id": None}),
        orjson.dumps({**good, "latency_ms": "fast"}),
        orjson.dumps({**good, "ts": 946_684_799_999}),
        orjson.dumps({**good, "ts": 1_767_225_600_000 + 2 * 86_400_000}),
        b'{"client_id": "c\xff", "ts": 1767225600000}',
        b'{"client_id": "c1", "ts": 1767225600000, "bytes": NaN}',
        b"",
        orjson.dumps({**good, "ts": 1_767_225_601_000}),
    ]
    log = tmp_path / "bad.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    proc = winnow("replay", "--spec", EXAMPLE_SPEC, "--input", log, "--out", tmp_path / "out")
    rejected = read(tmp_path / "out" / "rejected.jsonl")
    assert [(r["line"], r["reason"].split(" ")[0]) for r in rejected] == [
        (2, "malformed"),
        (3, "missing"),
        (4, "field"),
        (5, "timestamp"),
        (6, "timestamp"),
        (7, "not"),
        (8, "malformed"),
    ]
    assert "ahead of partition" in rejected[4]["reason"]
    assert rejected[5]["raw_base64"] and rejected[1]["event"]["client_id"] is None
    assert re.search(r"^  rejected\s+7$", proc.stdout, re.MULTILINE)
    results = read(tmp_path / "out" / "results.jsonl")
    assert sum(r["values"]["requests"] for r in results if r["window"] == "per_minute") == 2


def test_late_events_are_written_with_their_reason(tmp_path: Path, winnow: WinnowRunner) -> None:
    base = 1_767_225_600_000
    events = [{"client_id": "c", "ts": base + t} for t in (0, 400_000, 1_000)]  # 1_000 is 6m40s behind
    log = tmp_path / "late.jsonl"
    log.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    winnow("replay", "--spec", EXAMPLE_SPEC, "--input", log, "--out", tmp_path / "out")
    late = read(tmp_path / "out" / "late.jsonl")
    assert [(e["line"], e["event"]["ts"]) for e in late] == [(3, base + 1_000)]
    assert late[0]["reason"].startswith("late for every window")


def test_keep_open_leaves_open_windows_in_rocksdb(tmp_path: Path, winnow: WinnowRunner) -> None:
    winnow("replay", "--spec", EXAMPLE_SPEC, "--input", SAMPLE_LOG, "--out", tmp_path / "open", "--keep-open")
    winnow("replay", "--spec", EXAMPLE_SPEC, "--input", SAMPLE_LOG, "--out", tmp_path / "closed")
    kept = read(tmp_path / "open" / "results.jsonl")
    closed = read(tmp_path / "closed" / "results.jsonl")
    assert 0 < len(kept) < len(closed)
    assert kept == closed[: len(kept)] or {orjson.dumps(r) for r in kept} <= {orjson.dumps(r) for r in closed}
    open_panes = 0
    for partition in range(4):
        store = PartitionStore(tmp_path / "open" / "state" / f"partition-{partition}")
        open_panes += store.count(PANE_PREFIX)
        store.close()
    assert open_panes > 0


@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        (
            "name: x\nsource: {key: k, timestamp: ts}\n"
            "windows:\n  w: {type: tumbling, size: ten, aggregate: {n: count}}\n",
            "line 4: windows.w.size",
        ),
        ("name: x\nsource: {key: k}\nwindows: {}\n", "missing required field 'timestamp'"),
    ],
)
def test_a_bad_spec_stops_before_any_output(tmp_path: Path, winnow: WinnowRunner, spec_text: str, message: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text)
    proc = winnow("replay", "--spec", spec, "--input", SAMPLE_LOG, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_progress_shows_on_a_terminal_and_nowhere_else(tmp_path: Path, winnow: WinnowRunner) -> None:
    import os
    import pty
    import subprocess
    import sys

    quiet = winnow("replay", "--spec", EXAMPLE_SPEC, "--input", SAMPLE_LOG, "--out", tmp_path / "piped")
    assert quiet.stderr == ""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobs.cli",
                "replay",
                "--spec",
                str(EXAMPLE_SPEC),
                "--input",
                str(SAMPLE_LOG),
                "--out",
                str(tmp_path / "tty"),
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=300,
            check=True,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert b"events/s" in shown and b"events  line" in shown
    assert b"events/s" in proc.stdout  # the summary still goes to stdout


def test_replay_commits_before_a_commit_outgrows_its_share_of_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RocksDB holds a commit's bytes twice over for a moment: however many keys change between two commits,
    # replay commits once what changed would take more than COMMIT_SHARE of the memory limit to write
    from jobs import replay
    from jobs.memory_governor import GovernorSettings, detect_memory
    from jobs.pipeline import JobRunner
    from jobs.spec import load_job_spec

    spec_path = tmp_path / "distinct.yaml"
    spec_path.write_text(
        "name: distinct\nsource: {key: key, timestamp: ts, partitions: 2}\n"
        "windows: {minute: {type: tumbling, size: 1m, grace: 0ms, aggregate: {n: count, top: max(v)}}}\n"
    )
    log = tmp_path / "distinct.jsonl"  # a new key every event, all in one window: every pane stays open
    events = [{"key": f"k{i}", "ts": 1_700_000_000_000 + i, "v": i} for i in range(12_000)]
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    spec = load_job_spec(spec_path)
    sizes: list[int] = []
    learned: list[tuple[float, float]] = []  # bytes per pane put and deleted, as each commit left them
    commit = JobRunner.commit

    def counted(self: JobRunner, partitions: list[int] | None = None) -> None:
        sizes.append(self.commit_size())
        commit(self, partitions)
        learned.append((self._put_bytes, self._delete_bytes))

    monkeypatch.setattr(JobRunner, "commit", counted)

    def run(out: str) -> bytes:
        # levels out of reach, however full this machine is: only the share may cause commits
        levels = GovernorSettings(0.97, 0.98, 0.99, 0.96, 0.97, 0.98)
        options = replay.ReplayOptions(
            log, tmp_path / out, tmp_path / f"{out}-state", batch_size=1_000, memory_settings=levels
        )
        replay.run_replay(spec, options)
        return (tmp_path / out / "results.jsonl").read_bytes()

    whole = run("whole")
    assert len(sizes) == 1  # the default share of this machine's memory: one commit, at the end
    budget = 60_000
    monkeypatch.setattr(replay, "COMMIT_SHARE", budget / detect_memory(None)[1])
    sizes.clear()
    assert run("shared") == whole
    assert len(sizes) >= 10, sizes  # about one commit per batch of 1,000 new panes
    per_batch = max(b - a for a, b in zip([0, *sizes], sizes))  # the most one batch added to a commit
    assert max(sizes[:-1]) < budget + per_batch, sizes
    # puts (about 90 bytes here) and deletions (the final commit's, a key each) are learned apart
    assert learned[-1][0] != 128.0 and learned[-1][1] != 32.0, learned  # both measured, neither the default
    assert 40 < learned[-1][0] < 120 and 8 < learned[-1][1] < 32, learned


def test_a_commit_due_by_count_after_the_last_batch_gives_way_to_the_final_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the final commit follows the last batch at once: a commit due then would only write panes that
    # closing every window deletes again
    from jobs import replay
    from jobs.pipeline import JobRunner
    from jobs.spec import load_job_spec

    spec = load_job_spec(EXAMPLE_SPEC)
    log = tmp_path / "events.jsonl"
    events = [{"client_id": f"c{i % 50}", "ts": 1_700_000_000_000 + 7 * i, "latency_ms": i % 300} for i in range(4_000)]
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    commits: list[int] = []  # events read when each commit was made
    commit = JobRunner.commit

    def counted(self: JobRunner, partitions: list[int] | None = None) -> None:
        commits.append(self.stats.events)
        commit(self, partitions)

    monkeypatch.setattr(JobRunner, "commit", counted)

    def run(out: str, every: int) -> dict[str, bytes]:
        options = replay.ReplayOptions(
            log, tmp_path / out, tmp_path / f"{out}-state", batch_size=1_000, commit_every=every
        )
        replay.run_replay(spec, options)
        return {kind: (tmp_path / out / f"{kind}.jsonl").read_bytes() for kind in OUTPUTS}

    once = run("once", 1_000_000)
    assert commits == [4_000]
    commits.clear()
    assert run("twice", 2_000) == once
    # due after the 2nd batch: made before the 3rd; due after the 4th and last: the final commit instead
    assert commits == [2_000, 4_000]
