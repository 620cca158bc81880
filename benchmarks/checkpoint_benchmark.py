"""Incremental checkpoint size and restore speed for a partition with 1M open window keys.

In one run:

1. rebuild: a partition's state built from its input, 1M JSON events of 1M
   distinct keys through the job pipeline (decode, window, persist to RocksDB);
   this is what a worker without a checkpoint must do;
2. checkpoint 1 of that state, then 1% of the keys change, then checkpoint 2:
   bytes uploaded by each (target: the second at most ~5% of the first);
3. restore: checkpoint 2 copied back with checksums, the store opened and the
   engine attached to it, ready to process (target: at least 10x faster than
   the rebuild). The engine reads panes back from RocksDB when events touch
   them (or their window closes), so the benchmark also times a first batch of
   50,000 events on restored keys, each of which reads its pane back.

    .venv/bin/python benchmarks/checkpoint_benchmark.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.keys import KeyRegistry  # noqa: E402
from jobs.pipeline import JobRunner  # noqa: E402
from jobs.spec import parse_job_spec  # noqa: E402
from state.checkpoint_storage import LocalCheckpointStorage  # noqa: E402
from state.checkpoints import Checkpoints  # noqa: E402
from state.engine_state import restore  # noqa: E402
from state.key_encoding import window_prefix  # noqa: E402
from state.window_store import WindowStore  # noqa: E402
from windows.engine import PartitionEngine  # noqa: E402

SPEC = """
name: checkpoint-bench
source: {key: k, timestamp: ts, partitions: 1}
windows:
  hourly: {type: tumbling, size: 1h, grace: 1m, emit: final,
           aggregate: {n: count, total: sum(v), high: max(v), p99: p99(v)}}
"""
BASE = 1_767_225_600_000
TARGET_SIZE_RATIO = 0.05
TARGET_SPEEDUP = 10.0


class _Discard:
    def results(self, *args: object, **kwargs: object) -> None: ...
    def decisions(self, *args: object) -> None: ...
    def late(self, *args: object) -> None: ...
    def rejected(self, *args: object) -> None: ...


def events(keys: range, value: int) -> list[bytes]:
    return [orjson.dumps({"k": f"key-{i:07d}", "ts": BASE + i % 3_000_000, "v": value + i % 97}) for i in keys]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    spec = parse_job_spec(SPEC, "benchmark spec")
    keys = args.keys
    changed = keys // 100
    first_input = events(range(keys), 1)
    second_input = events(range(0, keys, 100), 1000)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = WindowStore(work / "state", spec.state_fingerprint)
        runner = JobRunner(spec, _Discard(), position_field="offset", store=store)  # type: ignore[arg-type]

        started = time.perf_counter()
        for at in range(0, keys, 50_000):
            chunk = first_input[at : at + 50_000]
            runner.process(chunk, list(range(at, at + len(chunk))), 0)
        runner.commit()
        rebuild_seconds = time.perf_counter() - started
        open_keys = runner.engines[0].open_panes

        checkpoints = Checkpoints(LocalCheckpointStorage(work / "checkpoints"), spec.name, spec.state_fingerprint)
        partition = store.partition(0)
        partition.checkpoint(work / "local-1")
        first = checkpoints.upload(0, work / "local-1", keys)

        runner.process(second_input, list(range(keys, keys + changed)), 0)
        runner.commit()
        partition.checkpoint(work / "local-2")
        second = checkpoints.upload(0, work / "local-2", keys + changed)
        store.close()
        shutil.rmtree(work / "local-1")
        shutil.rmtree(work / "local-2")

        started = time.perf_counter()
        manifest = checkpoints.restore(0, work / "restored" / "partition-0")
        files_seconds = time.perf_counter() - started
        restored_store = WindowStore(work / "restored", spec.state_fingerprint)
        registry = KeyRegistry(1)
        engine = PartitionEngine(spec.windows, 0, key_order=registry.ranks)
        restore(restored_store.partition(0), engine, registry.ids_of, registry.key_bytes)
        restore_seconds = time.perf_counter() - started
        restored_keys = restored_store.partition(0).count(window_prefix(0))
        resumed = JobRunner(spec, _Discard(), position_field="offset", store=restored_store, registry=registry)  # type: ignore[arg-type]
        resumed.engines[0] = engine
        tail = events(range(1, keys, max(1, keys // 50_000)), 2)
        started = time.perf_counter()
        resumed.process(tail, list(range(keys + changed, keys + changed + len(tail))), 0)
        tail_seconds = time.perf_counter() - started
        read_back = engine.panes_loaded
        restored_store.close()

    assert manifest is not None and manifest.sequence == 2 and restored_keys == open_keys
    size_ratio = second.uploaded_bytes / first.uploaded_bytes
    speedup = rebuild_seconds / restore_seconds
    print(f"open window keys:                 {open_keys:,} (one tumbling window, count/sum/max/p99)")
    print(f"checkpoint 1 uploaded:            {first.uploaded_bytes:>12,} bytes in {first.uploaded_files} files")
    print(
        f"checkpoint 2 uploaded:            {second.uploaded_bytes:>12,} bytes in {second.uploaded_files} files "
        f"after {changed:,} keys changed ({len(second.files) - second.uploaded_files} files shared)"
    )
    print(f"second / first:                   {size_ratio:>12.2%}   (target <= {TARGET_SIZE_RATIO:.0%})")
    print(f"rebuild from input:               {rebuild_seconds:>12.2f} s   ({keys:,} events decoded, windowed, stored)")
    print(f"restore from checkpoint:          {restore_seconds:>12.2f} s   (copy + verify + open + attach engine)")
    print(f"  of which files copied+verified: {files_seconds:>12.2f} s   ({manifest.total_bytes:,} bytes)")
    print(f"rebuild / restore:                {speedup:>12.1f}x   (target >= {TARGET_SPEEDUP:.0f}x)")
    print(
        f"first batch after restore:        {tail_seconds:>12.2f} s   ({len(tail):,} events on restored keys, "
        f"{read_back:,} panes read back from RocksDB)"
    )
    met = size_ratio <= TARGET_SIZE_RATIO and speedup >= TARGET_SPEEDUP
    print(f"targets: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
