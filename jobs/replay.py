"""Batch replay: run a job over a JSON Lines event log, offline, with the streaming engine."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connectors.jsonl_files import ReplayFiles, read_event_chunks
from jobs.pipeline import JobRunner, RunStats
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


def run_replay(spec: JobSpec, options: ReplayOptions) -> tuple[RunStats, float]:
    """Replay ``options.input`` through ``spec``; return the run's counters and wall seconds."""
    WindowStore.wipe(options.state_dir)
    store = WindowStore(options.state_dir, spec.state_fingerprint)
    files = ReplayFiles(options.out)
    runner = JobRunner(spec, files, position_field="line", store=store)
    progress = _Progress(sys.stderr, options.progress)
    started = time.perf_counter()
    since_commit = 0
    try:
        for events, lines in read_event_chunks(options.input, options.batch_size):
            runner.process(events, lines)
            since_commit += len(events)
            if since_commit >= options.commit_every:
                runner.commit()
                since_commit = 0
            progress.update(runner.stats.events, lines[-1])
        if not options.keep_open:
            runner.close_all()
        runner.commit()
    except BaseException:
        files.abort()
        store.close()
        progress.done()
        raise
    files.finish()
    store.close()
    progress.done()
    return runner.stats, time.perf_counter() - started
