"""A local etcd server process on free loopback ports, for development and tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from connectors.errors import ConnectorError
from connectors.local_broker import free_port
from connectors.local_process import start_service, stop_service


class LocalEtcd:
    """Debian's ``etcd`` on 127.0.0.1 with its data in ``data_dir``; it can be stopped and started again.

    ``max_procs`` is the Go runtime's processor count for the server (``GOMAXPROCS``), one by default: a local
    etcd shares a small machine with the broker and the pipeline, and with every core its runtime's idle
    threads spin for work and its garbage collector runs on all cores at once, taking them from the rest
    (the README's latency section has the measurements). ``None`` gives it every core.
    """

    def __init__(self, data_dir: Path, client_port: int | None = None, max_procs: int | None = 1) -> None:
        self.data_dir = data_dir
        self.max_procs = max_procs
        self.client_port = client_port or free_port()
        self.peer_port = free_port()
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for CPU accounting in benchmarks)."""
        return self._process.pid if self._process is not None else None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 15.0) -> LocalEtcd:
        binary = shutil.which("etcd")
        if binary is None:
            raise ConnectorError("etcd is not installed; run scripts/setup-services (Debian package etcd-server).")
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._process = start_service(
            "etcd",
            [
                binary,
                "--name=winnow-test",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=winnow-test={peer}",
            ],
            self.log_path,
            self._serving,
            timeout,
            env={"GOMAXPROCS": str(self.max_procs)} if self.max_procs is not None else None,
        )
        return self

    def _serving(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
            time.sleep(0.2)  # the port opens just before the server serves
            return True

    def stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        stop_service(process, kill=kill)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
