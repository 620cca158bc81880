"""A local Prometheus server process scraping given targets, for tests and local runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.errors import ConnectorError
from connectors.local_broker import free_port


class LocalPrometheus:
    """Debian's ``prometheus`` on 127.0.0.1, scraping ``targets`` every second, with ``rule_files``."""

    def __init__(self, work: Path, targets: dict[str, list[str]], rule_files: list[Path] | None = None) -> None:
        self.work = work
        self.port = free_port()
        self.targets = targets
        self.rule_files = rule_files or []
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise ConnectorError("prometheus is not installed; run scripts/setup-services (Debian package prometheus).")
        self.work.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": targets}]} for name, targets in self.targets.items()
            ],
        }
        config_path = self.work / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        with open(self.work / "prometheus.log", "ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConnectorError(f"prometheus exited with status {self._process.returncode}; see {self.work}.")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ConnectorError(f"prometheus was not ready on port {self.port} within {timeout:.0f} s.")

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise ConnectorError(f"prometheus query {expression!r} failed: {body}")
        return list(body["data"]["result"])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
