"""Real memory limits for tests: a kernel memory cgroup where the machine allows one, and peak RSS."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
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


# Linux keeps, in a process's ru_maxrss, the high-water mark of the memory it had before exec: a child
# forked from the test process reports at least the test process's own RSS. This launcher, small itself,
# forks and execs the command and reports the grandchild's peak, which then counts the command alone.
_LAUNCHER = """
import os, signal, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    handle.write(str(usage.ru_maxrss * 1024))
if os.WIFSIGNALED(status):  # die the same way (SIGKILL's handler is always the default, and cannot be set)
    if os.WTERMSIG(status) != signal.SIGKILL:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_with_peak(argv: list[str], cwd: Path, preexec: Callable[[], None] | None = None) -> tuple[int, str, int]:
    """Run ``argv``; return its exit status, its output (stdout and stderr) and its own peak resident
    memory in bytes (the kernel's ru_maxrss of that process alone)."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as report:
        process = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report.name, *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            check=False,
        )
        text = report.read()
    assert text, f"the launcher reported no peak for {argv} (exit status {process.returncode})"
    return process.returncode, process.stdout.decode(), int(text)
