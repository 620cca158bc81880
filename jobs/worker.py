"""Start a streaming worker: check the topics, then run the Faust app until it is stopped."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import faust

from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics
from jobs.app import GroupOptions, WinnowApp
from jobs.live_rules import LiveRules
from jobs.memory_governor import GovernorSettings
from jobs.memory_watch import MemoryWatch
from jobs.spec import JobSpec
from jobs.streaming import OutputTopics, StreamingOptions


def job_topics(spec: JobSpec) -> dict[str, int]:
    """Every topic a job reads or writes, with its partition count (outputs mirror the source)."""
    partitions = spec.source.partitions
    return {spec.source.topic: partitions, **{name: partitions for name in OutputTopics.for_job(spec.name).all()}}


def worker_command(spec_path: Path, bootstrap: str, state_dir: Path, *options: str) -> list[str]:
    """The command line that runs ``winnow worker`` in a child process with this interpreter."""
    return [
        sys.executable, "-m", "jobs.cli", "worker", "--spec", str(spec_path), "--bootstrap", bootstrap,
        "--state-dir", str(state_dir), *options,
    ]  # fmt: skip


def run_worker(
    spec: JobSpec,
    settings: KafkaSettings,
    streaming: StreamingOptions,
    group: GroupOptions,
    *,
    log_level: str = "info",
    live_rules: LiveRules | None = None,
    memory_limit: int | None = None,
    memory_settings: GovernorSettings | None = None,
) -> int:
    """Run one worker of ``spec`` in the foreground; return its exit code."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if live_rules is not None:
        loop.run_until_complete(live_rules.load())  # a bad rule set stops the worker before any output
    loop.run_until_complete(ensure_topics(settings, job_topics(spec)))
    app = WinnowApp(spec, settings, streaming, group, live_rules, MemoryWatch(spec.name, memory_limit, memory_settings))
    worker = faust.Worker(app, loglevel=log_level, quiet=True, loop=loop)
    logging.getLogger("winnow").setLevel(log_level.upper())
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        return int(done.code or 0)
    return 0
