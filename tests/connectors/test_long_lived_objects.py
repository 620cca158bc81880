"""Freezing a process's startup objects: once, and full collections then walk only newer ones.

Each case runs in a child interpreter, so the test process's own collector is left as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json
from connectors.long_lived_objects import freeze_long_lived

startup = [[i] for i in range(200_000)]  # long-lived objects the collector tracks
first = freeze_long_lived("test")
second = freeze_long_lived("test again")
tracked = len(gc.get_objects())
cycle = []
cycle.append(cycle)  # garbage made after the freeze is still collected
del cycle
collected_later = gc.collect()
print(json.dumps({"first": first, "second": second, "frozen": gc.get_freeze_count(), "tracked": tracked,
                  "collected_later": collected_later}))
"""


def run_child() -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_first_call_freezes_every_live_object_and_later_calls_do_nothing() -> None:
    result = run_child()
    assert result["first"] >= 200_000
    assert result["second"] == 0
    assert result["frozen"] == result["first"]
    assert result["tracked"] < 1_000  # what full collections still walk


def test_garbage_made_after_the_freeze_is_still_collected() -> None:
    assert run_child()["collected_later"] >= 1
