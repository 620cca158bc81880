"""Running a local service (broker, etcd, Prometheus) as a child process: start, wait until ready, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from connectors.errors import ConnectorError


def start_service(
    name: str,
    args: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` with output to ``log_path`` and ``env`` added to this process's environment; return
    once ``ready()`` holds, or raise naming ``name``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConnectorError(f"{name} exited with status {process.returncode} at start; see {log_path}.")
        try:
            if ready():
                return process
        except OSError:
            pass
        time.sleep(0.05)
    stop_service(process)
    raise ConnectorError(f"{name} was not ready within {timeout:.0f} s; see {log_path}.")


def stop_service(process: subprocess.Popen[bytes] | None, *, kill: bool = False, timeout: float = 10.0) -> None:
    """Stop a service process: SIGTERM (or SIGKILL), then SIGKILL if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
