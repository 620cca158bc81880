"""Batch replay: run a job over a JSON Lines event log, offline, with the streaming engine."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connectors.jsonl_files import ReplayFiles, read_event_chunks
from jobs.memory_governor import GovernorSettings, Level
from jobs.memory_watch import MemoryWatch
from jobs.pipeline import JobRunner, RunStats
from jobs.run_metrics import RunMetrics
from jobs.spec import JobSpec
from state.window_store import WindowStore


@dataclass(frozen=True)
class ReplayOptions:
    """How to run one replay."""

    input: Path
    out: Path
    state_dir: Path
    batch_size: int = 50_000
    commit_every: int = 500_000
    keep_open: bool = False
    progress: bool = False
    memory_limit: int | None = None  # bytes; None: the cgroup's limit, else the machine's memory
    memory_settings: GovernorSettings | None = None  # thresholds of the levels (None: 70/85/95%)
    resident_panes: int = 1_000_000  # window panes kept in memory; the rest stay in RocksDB
    throttle_wait: float = 2.0  # seconds replay stops reading on reaching throttle before going on in small batches
    export_metrics: bool = False  # update the Prometheus metrics (when they are served)


@dataclass
class MemoryReport:
    """What the memory governor saw during a replay."""

    limit: int
    source: str
    peak: int
    levels: list[str]
    seconds_throttled: float
    returns_to_normal: int


class _Progress:
    """A one-line progress display with events/s, shown only on a terminal."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, events: int, line: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.2:
            return
        self._last = now
        rate = events / max(now - self.started, 1e-9)
        self.stream.write(f"\r  {events:>12,} events  line {line:>12,}  {rate:>12,.0f} events/s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 72 + "\r")
            self.stream.flush()


#: The largest commit replay lets build up, as a share of the memory limit (see ``run_replay``). A commit takes
#: two to three times its bytes for a moment, so 5% stays well inside the room above pressure; at 2% a flood of
#: new keys under a 224 MiB limit committed 58 times instead of 16 and ran 32 s instead of 23, with no lower peak.
COMMIT_SHARE = 0.05


def run_replay(spec: JobSpec, options: ReplayOptions) -> tuple[RunStats, float, MemoryReport]:
    """Replay ``options.input`` through ``spec``; return the run's counters, wall seconds and memory report.

    The memory governor watches the run. Batches are sized to fit the memory
    left below pressure, and a commit is made whenever the state changed since
    the last one would take more than ``COMMIT_SHARE`` of the limit to write.
    At pressure, replay commits after every batch and keeps no window state in
    memory beyond the batch (the rest stays in RocksDB), holds no output lines
    in memory, and has the kernel write the output files out so their page
    cache can be dropped; at throttle it also stops
    reading the log until memory falls (for at most ``throttle_wait`` seconds
    each time it reaches throttle, since nothing but its own shrinking frees
    memory in a replay; then it goes on in the smallest batches).
    Results do not depend on batch sizes, so they are the same at every level.
    """
    WindowStore.wipe(options.state_dir)
    store = WindowStore(options.state_dir, spec.state_fingerprint)
    files = ReplayFiles(options.out)
    runner = JobRunner(spec, files, position_field="line", store=store)
    watch = MemoryWatch(spec.name, options.memory_limit, options.memory_settings)
    exporter = RunMetrics(spec) if options.export_metrics else None
    progress = _Progress(sys.stderr, options.progress)
    started = time.perf_counter()
    since_commit = 0
    throttled = 0.0
    last_relief = 0.0
    waited = False  # replay has stopped reading since it last reached throttle
    batches = _BatchSizer(watch, options.batch_size)
    # RocksDB holds a commit twice over for a moment (its write batch, then the memtable) and the write-ahead
    # log adds as much in page cache: commits stay a small share of the memory limit, however many keys
    commit_budget = int(watch.governor.limit * COMMIT_SHARE)
    # A commit due by event count waits for the next batch: after the log's last batch, the final commit
    # (after closing every window) takes its place, and the panes those windows release need no writing.
    deferred = False
    try:
        for events, lines in read_event_chunks(options.input, options.batch_size):
            at = 0
            while at < len(events):
                if deferred:
                    last_relief = _commit(runner, files, watch, options, False, last_relief)
                    deferred = False
                step = batches.next_size()
                runner.process(events[at : at + step], lines[at : at + step])
                files.settle(runner.emitting_from())
                done = min(step, len(events) - at)
                at += done
                since_commit += done
                watch.poll()
                batches.observed(done)
                pressed = watch.level >= Level.PRESSURE
                if pressed or runner.commit_size() >= commit_budget:
                    last_relief = _commit(runner, files, watch, options, pressed, last_relief)
                    since_commit = 0
                elif since_commit >= options.commit_every:
                    deferred = True
                    since_commit = 0
                if watch.level < Level.THROTTLE:
                    waited = False
                elif not waited:  # once per time at throttle: nothing but replay's own shrinking frees memory
                    throttled += _wait_for_memory(watch, options.throttle_wait)
                    waited = True
                if exporter is not None:
                    exporter.export(runner)
            progress.update(runner.stats.events, int(lines[-1]))
        if not options.keep_open:
            runner.close_all()
        runner.commit()
        if exporter is not None:
            exporter.export(runner)
    except BaseException:
        files.abort()
        store.close()
        progress.done()
        raise
    files.finish()
    store.close()
    progress.done()
    watch.poll()
    report = MemoryReport(
        watch.governor.limit,
        watch.source,
        watch.peak,
        [level.name.lower() for level in sorted(watch.levels_seen)],
        throttled,
        watch.returns_to_normal,
    )
    return runner.stats, time.perf_counter() - started, report


def _commit(
    runner: JobRunner, files: ReplayFiles, watch: MemoryWatch, options: ReplayOptions, pressed: bool, last_relief: float
) -> float:
    """Commit, then keep only the resident panes in memory (none at pressure, where output lines are spilled
    too, and at most once a second memory is handed back); return when memory was last handed back."""
    runner.commit()
    now = time.monotonic()
    relieve = pressed and now - last_relief >= 1.0
    runner.shrink(0 if pressed else options.resident_panes, flush=relieve)
    if pressed:
        files.spill()
    if relieve:
        files.write_back()
        watch.relieve()
        return now
    return last_relief


class _BatchSizer:
    """Batch sizes that fit the memory left below the pressure threshold.

    A batch costs memory in proportion to its events (decoding, new panes,
    results); the sizer learns the cost per event from the usage it sees grow
    over a batch and sizes the next batch so it should end below pressure. It
    plans with the highest cost seen lately: an unconfirmed figure halves over
    every ``HALF_LIFE`` events rather than with each batch, since the
    allocator's free lists absorb a small batch's growth and would otherwise
    talk the figure down in a few small batches before a large one.
    """

    SMALLEST = 1_000
    HALF_LIFE = 500_000  # events over which an unconfirmed cost per event halves
    LEAST_COST = 64.0  # bytes per event: an event costs at least its decoded fields

    def __init__(self, watch: MemoryWatch, largest: int) -> None:
        self.watch = watch
        self.largest = largest
        self.cost = 4096.0  # bytes per event, until measured
        watch.poll()
        self._before = watch.governor.usage

    def next_size(self) -> int:
        governor = self.watch.governor
        self._before = governor.usage  # as read after the previous batch
        room = governor.settings.pressure * governor.limit - self._before
        return max(self.SMALLEST, min(self.largest, int(room / self.cost)))

    def observed(self, events: int) -> None:
        if not events:
            return
        self.cost = max(self.LEAST_COST, self.cost * 0.5 ** (events / self.HALF_LIFE))
        grown = self.watch.governor.usage - self._before
        if grown > 0:
            self.cost = max(self.cost, grown / events)


def _wait_for_memory(watch: MemoryWatch, longest: float) -> float:
    """Stop reading while memory stays at throttle or above, for at most ``longest`` seconds."""
    started = time.monotonic()
    while watch.level >= Level.THROTTLE and time.monotonic() - started < longest:
        time.sleep(watch.interval)
        watch.poll()
    return time.monotonic() - started
