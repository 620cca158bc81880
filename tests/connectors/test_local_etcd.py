"""The local etcd server the tests, the benchmarks and development use."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.local_etcd import LocalEtcd


def test_the_local_server_runs_on_one_go_processor_unless_told_otherwise(tmp_path: Path) -> None:
    logs = {}
    for max_procs in (1, None):
        server = LocalEtcd(tmp_path / f"etcd-{max_procs}", max_procs=max_procs).start()
        try:
            logs[max_procs] = server.log_path.read_text()
        finally:
            server.stop()
    assert "setting maximum number of CPUs to 1," in logs[1]
    every_core = os.environ.get("GOMAXPROCS") or str(len(os.sched_getaffinity(0)))  # Go counts the CPUs it may use
    assert f"setting maximum number of CPUs to {every_core}," in logs[None]
