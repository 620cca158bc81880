"""Replay throughput against the bare floor, measured in the same run.

Prints events/s of ``winnow replay`` over the example job (tumbling + hopping
+ sliding + percentiles) on a seeded 1M-event log, and events/s of the floor
(read the same file and JSON-decode every line, nothing else), with the ratio.
Targets (issue 2): at least 500,000 events/s, within 4x of the floor.

    .venv/bin/python benchmarks/replay_benchmark.py [--events 1000000] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.event_generator import GeneratorOptions, write_log  # noqa: E402
from jobs.replay import ReplayOptions, run_replay  # noqa: E402
from jobs.spec import load_job_spec  # noqa: E402

TARGET_EVENTS_PER_S = 500_000
TARGET_RATIO = 4.0


def event_log(events: int) -> Path:
    """The seeded benchmark log, generated once and cached under benchmarks/data."""
    path = ROOT / "benchmarks" / "data" / f"events-{events}.jsonl"
    if not path.exists():
        print(f"generating {events:,} events into {path} ...", flush=True)
        write_log(path, GeneratorOptions(events=events, keys=10_000, rate=2_000.0, seed=7))
    return path


def floor(path: Path) -> tuple[float, float]:
    """Best of three: (wall, CPU) events/s of reading the file and decoding every line with orjson."""
    best_wall = best_cpu = 0.0
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        count = 0
        loads = orjson.loads
        with open(path, "rb", buffering=1 << 20) as handle:
            for line in handle:
                loads(line)
                count += 1
        best_wall = max(best_wall, count / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, count / (time.process_time() - cpu))
    return best_wall, best_cpu


def replay(path: Path, spec_path: Path, profile: bool) -> tuple[float, float, dict[str, int]]:
    spec = load_job_spec(spec_path)
    with tempfile.TemporaryDirectory() as tmp:
        options = ReplayOptions(input=path, out=Path(tmp) / "out", state_dir=Path(tmp) / "state")
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        cpu = time.process_time()
        stats, seconds, _ = run_replay(spec, options)
        cpu = time.process_time() - cpu
        if profile:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        counts = {
            "results": stats.results,
            "updates": stats.updates,
            "decisions": stats.decisions,
            "late": stats.late,
            "rejected": stats.rejected,
        }
        return stats.events / seconds, stats.events / cpu, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--spec", default=str(ROOT / "jobs" / "examples" / "api-abuse.yaml"))
    parser.add_argument("--profile", action="store_true", help="profile the replay with pyinstrument")
    args = parser.parse_args()
    path = event_log(args.events)
    floor_wall, floor_cpu = floor(path)
    replay_wall, replay_cpu, counts = replay(path, Path(args.spec), args.profile)
    print(f"events:                 {args.events:,}")
    print("                        wall-clock events/s   CPU-time events/s")
    print(f"floor (read + decode):  {floor_wall:>19,.0f}   {floor_cpu:>17,.0f}   (best of 3)")
    print(f"winnow replay:          {replay_wall:>19,.0f}   {replay_cpu:>17,.0f}")
    wall_ratio, cpu_ratio = floor_wall / replay_wall, floor_cpu / replay_cpu
    print(f"floor / replay:         {wall_ratio:>18.1f}x   {cpu_ratio:>16.1f}x   (target <= {TARGET_RATIO}x)")
    print("output:                 " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    verdict = "met" if replay_wall >= TARGET_EVENTS_PER_S and wall_ratio <= TARGET_RATIO else "NOT met"
    print(f"target {TARGET_EVENTS_PER_S:,} events/s, within {TARGET_RATIO}x of the floor: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
