"""Replay throughput of the working tree against another revision, run in turns on one machine.

On a shared machine one replay of the 1M log varies by about 10% from one
minute to the next, so a change worth a few percent shows only when the two
versions run alternately over the same log. This script checks out ``--base``
(a git revision, HEAD by default) into a temporary worktree, builds its C
extensions there (copying the working tree's build of every module whose
Cython source is the same), and replays the benchmark log with each version
in turn, ``--runs`` times (the base first in odd turns, the working tree first
in even ones). It prints each run's events/s and CPU seconds, the medians, and
the working tree's median against the base's. The two versions' output files
are compared byte for byte after every turn: a speed change must not change
what Winnow writes, and the script exits with status 1 when it did.

    .venv/bin/python benchmarks/compare_replay.py [--base REV] [--runs 5] [--events 1000000]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.replay_benchmark import event_log  # noqa: E402

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


class CompareError(Exception):
    """The comparison cannot be made (a bad revision, a failed build or replay)."""


def run_quietly(command: list[str], cwd: Path, what: str) -> str:
    """Run ``command``; on failure raise ``CompareError`` naming ``what`` failed, with its error output."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompareError(f"{what} failed (exit status {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    return done.stdout


def git(*args: str) -> str:
    return run_quietly(["git", *args], ROOT, "git " + " ".join(args))


def build_extensions(tree: Path) -> None:
    run_quietly(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"], tree, f"building the extensions in {tree}"
    )


def prepare(tree: Path) -> list[str]:
    """Build ``tree``'s C extensions; return the modules compiled there. The others are copied from the
    working tree (built first, so its libraries match its sources) when their source, every ``.pxd`` and
    ``setup.py`` are the same in both trees."""
    build_extensions(ROOT)
    shared = [ROOT / "setup.py", *ROOT.glob("*/*.pxd")]
    build_same = all(
        (tree / f.relative_to(ROOT)).exists() and filecmp.cmp(f, tree / f.relative_to(ROOT), shallow=False)
        for f in shared
    )
    compiled = []
    for pyx in sorted(tree.glob("*/*.pyx")):
        ours = ROOT / pyx.relative_to(tree)
        built = sorted(ours.parent.glob(ours.stem + ".*.so"))
        if (
            build_same
            and built
            and ours.exists()
            and ours.with_suffix(".c").exists()
            and filecmp.cmp(ours, pyx, shallow=False)
        ):
            # the C file, then the libraries (in place, and where setuptools looks to see whether a module is
            # up to date): each copy newer than its source, so the build leaves them be
            shutil.copy(ours.with_suffix(".c"), pyx.with_suffix(".c"))
            for library in built:
                shutil.copy(library, pyx.parent / library.name)
                for build_lib in ROOT.glob("build/lib.*"):
                    target = tree / build_lib.relative_to(ROOT) / library.relative_to(ROOT)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(library, target)
        else:
            compiled.append(str(pyx.relative_to(tree).with_suffix("")).replace("/", "."))
    if compiled:
        print(f"compiling in the base's tree: {', '.join(compiled)}", flush=True)
    build_extensions(tree)
    return compiled


def replay(tree: Path, log: Path, out: Path) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    output = run_quietly([sys.executable, "-c", _ONE_RUN, str(tree), str(log), str(out)], tree, f"replay in {tree}")
    figures = json.loads(output.strip().splitlines()[-1])
    return Run(figures["events_per_s"], figures["cpu"])


def different_outputs(a: Path, b: Path) -> list[str]:
    """The output files (``*.jsonl``) that differ between two replays' output directories, or that only one
    of them wrote."""
    differ = []
    names = sorted({path.name for directory in (a, b) for path in (directory / "out").glob("*.jsonl")})
    for name in names:
        first, second = a / "out" / name, b / "out" / name
        if not (first.exists() and second.exists() and filecmp.cmp(first, second, shallow=False)):
            differ.append(name)
    return differ


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through ``finally``: the worktree is removed


def compare(revision: str, runs: int, log: Path, scratch: Path) -> tuple[dict[str, list[Run]], list[str]]:
    """Replay ``log`` ``runs`` times with each version, in turns (the base first in odd turns, the working
    tree first in even ones, so drift within a turn favours neither); return each version's runs and the
    output files that differed in any turn."""
    base_tree = scratch / "base"
    names = (f"base {revision}", "working tree")
    trees = {names[0]: base_tree, names[1]: ROOT}
    outs = {name: scratch / f"out-{i}" for i, name in enumerate(names)}
    results: dict[str, list[Run]] = {name: [] for name in names}
    differ: set[str] = set()
    try:
        git("worktree", "add", "--detach", str(base_tree), revision)
        prepare(base_tree)
        for turn in range(runs):
            for name in names if turn % 2 == 0 else names[::-1]:
                run = replay(trees[name], log, outs[name])
                results[name].append(run)
                print(
                    f"run {turn + 1} {name:>20}: {run.events_per_s:>9,.0f} events/s  {run.cpu:6.2f} s CPU", flush=True
                )
            differ.update(different_outputs(*outs.values()))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
    return results, sorted(differ)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with (default: HEAD)")
    parser.add_argument("--runs", type=int, default=5, help="replays of each version, alternating")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    if args.events < 1:
        parser.error(f"--events must be at least 1, not {args.events}")
    signal.signal(signal.SIGTERM, _terminated)
    try:
        revision = git("rev-parse", "--verify", "--short", f"{args.base}^{{commit}}").strip()
        log = event_log(args.events)
        with tempfile.TemporaryDirectory(prefix="winnow-compare-") as scratch:
            runs, differ = compare(revision, args.runs, log, Path(scratch))
    except CompareError as error:
        print(f"compare_replay: {error}", file=sys.stderr)
        return 2
    medians = {name: statistics.median(r.events_per_s for r in rs) for name, rs in runs.items()}
    cpus = {name: statistics.median(r.cpu for r in rs) for name, rs in runs.items()}
    for name in runs:
        print(f"median {name:>20}: {medians[name]:>9,.0f} events/s  {cpus[name]:6.2f} s CPU")
    base_name, work_name = runs
    print(
        f"working tree / base: {medians[work_name] / medians[base_name]:.3f}x events/s, "
        f"{cpus[work_name] / cpus[base_name]:.3f}x CPU"
    )
    if differ:
        print(f"outputs DIFFER between the versions: {', '.join(differ)}")
        return 1
    print("outputs: byte-identical in every turn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
