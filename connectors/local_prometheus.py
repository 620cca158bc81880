"""A local Prometheus server process scraping given targets, for tests and local runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.errors import ConnectorError
from connectors.local_broker import free_port
from connectors.local_process import start_service, stop_service


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
        self._process = start_service(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            self.work / "prometheus.log",
            self._ready,
            timeout,
        )
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
            return bool(response.status == 200)

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
        stop_service(process)

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
