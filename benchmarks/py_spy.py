"""Recording a benchmark's worker process with py-spy (collapsed stacks, for ``--profile``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path


def record(pid: int, output: str, *options: str) -> subprocess.Popen[bytes]:
    """Start py-spy recording process ``pid`` into ``output`` in raw (collapsed) form; stop it with SIGINT.
    py-spy is taken from PATH, or from next to this interpreter (a virtualenv's bin)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [binary, "record", "--format", "raw", "-o", output, "--pid", str(pid), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(spy: subprocess.Popen[bytes]) -> None:
    """Stop a recording (py-spy writes its profile on SIGINT); say so when it failed."""
    spy.send_signal(signal.SIGINT)
    _, errors = spy.communicate(timeout=60)
    if spy.returncode != 0:
        print(
            f"py-spy failed (exit status {spy.returncode}): {errors.decode(errors='replace').strip()}", file=sys.stderr
        )
