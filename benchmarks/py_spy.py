"""Recording a benchmark's worker process with py-spy (collapsed stacks, for ``--profile``)."""

from __future__ import annotations

import shutil
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
        stderr=subprocess.DEVNULL,
    )
