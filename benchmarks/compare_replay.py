"""Replay throughput of the working tree against another revision, run in turns on one machine.

On a shared machine one replay of the 1M log varies by about 10% from one
minute to the next, so a change worth a few percent shows only when the two
versions run alternately over the same log. This script checks out ``--base``
(a git revision, HEAD by default) into a temporary worktree, builds its C
extensions there (copying the working tree's build of every module whose
Cython source is the same), and replays the benchmark log with each version
in turn, ``--runs`` times. It prints each run's events/s and CPU seconds, the
medians, and the working tree's median against the base's. The two versions'
output files are compared byte for byte after the first pair: a speed change
must not change what Winnow writes.

    .venv/bin/python benchmarks/compare_replay.py [--base REV] [--runs 5] [--events 1000000]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.replay_benchmark import event_log  # noqa: E402

OUTPUTS = ("results.jsonl", "updates.jsonl", "decisions.jsonl", "late.jsonl", "rejected.jsonl")

# Run in a fresh interpreter with the version's tree first on sys.path: one replay, its figures as JSON.
_ONE_RUN = """
import json, sys, time
tree, log, out = sys.argv[1:4]
sys.path.insert(0, tree)
from pathlib import Path
from jobs.replay import ReplayOptions, run_replay
from jobs.spec import load_job_spec
spec = load_job_spec(Path(tree) / "jobs" / "examples" / "api-abuse.yaml")
options = ReplayOptions(input=Path(log), out=Path(out) / "out", state_dir=Path(out) / "state")
cpu = time.process_time()
stats, seconds, _ = run_replay(spec, options)
cpu = time.process_time() - cpu
print(json.dumps({"events_per_s": stats.events / seconds, "cpu": cpu, "results": stats.results,
                  "decisions": stats.decisions}))
"""


@dataclass(frozen=True)
class Run:
    events_per_s: float
    cpu: float


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def build(tree: Path) -> list[str]:
    """Build ``tree``'s C extensions; return the modules compiled there (the others are copied from the
    working tree, whose build of the same source is the same)."""
    sources = sorted(ROOT.glob("*/*.pyx"))
    headers_same = all(
        (tree / h.relative_to(ROOT)).exists() and filecmp.cmp(h, tree / h.relative_to(ROOT), shallow=False)
        for h in ROOT.glob("*/*.pxd")
    )
    compiled = []
    for pyx in sources:
        theirs = tree / pyx.relative_to(ROOT)
        if not theirs.exists():
            continue
        built = sorted(pyx.parent.glob(pyx.stem + ".*.so"))
        if headers_same and built and filecmp.cmp(pyx, theirs, shallow=False):
            # the C file, then the libraries (in place, and where setuptools looks to see whether a module is
            # up to date): each copy newer than its source, so the build leaves them be
            shutil.copy(pyx.with_suffix(".c"), theirs.with_suffix(".c"))
            for library in built:
                shutil.copy(library, theirs.parent / library.name)
                for build_lib in ROOT.glob("build/lib.*"):
                    target = tree / build_lib.relative_to(ROOT) / library.relative_to(ROOT)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(library, target)
        else:
            compiled.append(str(pyx.relative_to(ROOT).with_suffix("")).replace("/", "."))
    if compiled:
        print(f"compiling in the base's tree: {', '.join(compiled)}", flush=True)
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=tree, check=True, capture_output=True
    )
    return compiled


def replay(tree: Path, log: Path, out: Path) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", _ONE_RUN, str(tree), str(log), str(out)],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(figures["events_per_s"], figures["cpu"])


def different_outputs(a: Path, b: Path) -> list[str]:
    return [name for name in OUTPUTS if not filecmp.cmp(a / "out" / name, b / "out" / name, shallow=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with (default: HEAD)")
    parser.add_argument("--runs", type=int, default=5, help="replays of each version, alternating")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    log = event_log(args.events)
    revision = git("rev-parse", "--short", args.base).strip()
    with tempfile.TemporaryDirectory(prefix="winnow-compare-") as scratch:
        base_tree = Path(scratch) / "base"
        git("worktree", "add", "--detach", str(base_tree), revision)
        try:
            build(base_tree)
            versions = {f"base {revision}": base_tree, "working tree": ROOT}
            runs: dict[str, list[Run]] = {name: [] for name in versions}
            outs = {name: Path(scratch) / f"out-{i}" for i, name in enumerate(versions)}
            for turn in range(args.runs):
                for name, tree in versions.items():
                    run = replay(tree, log, outs[name])
                    runs[name].append(run)
                    print(
                        f"run {turn + 1} {name:>20}: {run.events_per_s:>9,.0f} events/s  {run.cpu:6.2f} s CPU",
                        flush=True,
                    )
                if turn == 0:
                    differ = different_outputs(*outs.values())
                    print("outputs: " + (f"DIFFERENT ({', '.join(differ)})" if differ else "byte-identical"))
        finally:
            git("worktree", "remove", "--force", str(base_tree))
    medians = {name: statistics.median(r.events_per_s for r in rs) for name, rs in runs.items()}
    cpus = {name: statistics.median(r.cpu for r in rs) for name, rs in runs.items()}
    for name in versions:
        print(f"median {name:>20}: {medians[name]:>9,.0f} events/s  {cpus[name]:6.2f} s CPU")
    base_name, work_name = versions
    print(
        f"working tree / base: {medians[work_name] / medians[base_name]:.3f}x events/s, "
        f"{cpus[work_name] / cpus[base_name]:.3f}x CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
