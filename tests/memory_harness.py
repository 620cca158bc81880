"""Real memory limits for tests: a kernel memory cgroup where the machine allows one, and peak RSS."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A fresh memory cgroup (v1 or v2) with a hard limit: a process in it that goes over is OOM-killed."""

    def __init__(self, path: Path, limit_file: str) -> None:
        self.path = path
        self.limit_file = limit_file

    @classmethod
    def create(cls, limit: int) -> MemoryCgroup | None:
        """A new cgroup limited to ``limit`` bytes, or None when this machine does not let us make one
        (or ``WINNOW_TEST_CGROUP=0`` asks for the ``--memory-limit`` path)."""
        if os.environ.get("WINNOW_TEST_CGROUP") == "0":
            return None
        name = f"winnow-test-{secrets.token_hex(4)}"
        candidates = [(CGROUP_ROOT / "memory" / name, "memory.limit_in_bytes"), (CGROUP_ROOT / name, "memory.max")]
        for path, limit_file in candidates:
            try:
                path.mkdir()
            except OSError:
                continue
            if not (path / "cgroup.procs").exists() or not (path / limit_file).exists():
                shutil.rmtree(path, ignore_errors=True)  # a plain directory, not a cgroup with a memory controller
                continue
            try:
                (path / limit_file).write_text(str(limit))
                applied = int((path / limit_file).read_text().strip())
            except (OSError, ValueError):
                applied = -1
            if 0 < applied <= limit:
                return cls(path, limit_file)
            path.rmdir()
        return None

    def enter(self) -> Callable[[], None]:
        """A ``preexec_fn`` that moves the child process into this cgroup."""
        procs = self.path / "cgroup.procs"

        def move() -> None:
            procs.write_text(str(os.getpid()))

        return move

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for going over the limit."""
        for name in ("memory.events", "memory.oom_control"):  # v2, v1
            path = self.path / name
            if path.exists():
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def peak_usage(self) -> int | None:
        """The most memory the cgroup has been charged (page cache included), when the kernel reports it."""
        for name in ("memory.peak", "memory.max_usage_in_bytes"):  # v2, v1
            path = self.path / name
            if path.exists():
                return int(path.read_text().strip())
        return None

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of a live process's resident memory (VmHWM), in bytes."""
    return _status_bytes(pid, "VmHWM")


def current_rss(pid: int) -> int:
    """A live process's resident memory now (VmRSS), in bytes."""
    return _status_bytes(pid, "VmRSS")


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")
