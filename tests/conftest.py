"""Shared fixtures: paths, and a runner for the ``winnow`` command as a real process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from connectors.local_etcd import LocalEtcd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPEC = ROOT / "jobs" / "examples" / "api-abuse.yaml"
SAMPLE_LOG = ROOT / "data" / "sample" / "api-events.jsonl.gz"

WinnowRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def winnow() -> WinnowRunner:
    """Run ``winnow ARGS...`` in a subprocess; returns the completed process."""

    def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli", *map(str, args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"winnow {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def log_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write a generated event log with the given generator options; returns its path."""
    from connectors.event_generator import GeneratorOptions, write_log

    def make(name: str = "events.jsonl", **options: object) -> Path:
        path = tmp_path / name
        write_log(path, GeneratorOptions(**options))  # type: ignore[arg-type]
        return path

    return make


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A local Kafka-protocol broker (Tansu, memory only) for the whole session; yields bootstrap servers."""
    from connectors.local_broker import LocalBroker

    with LocalBroker() as running:
        yield running.bootstrap_servers


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[LocalEtcd]:
    """A real etcd server on free loopback ports, with its data in the test's temporary directory."""
    from connectors.local_etcd import LocalEtcd

    server = LocalEtcd(tmp_path / "etcd-data").start()
    try:
        yield server
    finally:
        server.stop()
