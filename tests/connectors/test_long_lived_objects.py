"""Freezing a process's startup objects: once, after a collection, and full collections then walk only
newer ones.

The case runs in a child interpreter, so the test process's own collector is left as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json, weakref
from connectors.long_lived_objects import freeze_long_lived

class Node:
    pass

startup = [[i] for i in range(200_000)]  # long-lived objects the collector tracks
garbage = Node()
garbage.self = garbage  # a garbage cycle alive at the freeze: it must be collected, not frozen
dead_before = weakref.ref(garbage)
del garbage
first = freeze_long_lived("test")
collections = gc.get_stats()[2]["collections"]
second = freeze_long_lived("test again")
later = Node()
later.self = later  # garbage made after the freeze is still collected
dead_after = weakref.ref(later)
del later
gc.collect()
print(json.dumps({
    "first": first,
    "second": second,
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "cycle_before_collected": dead_before() is None,
    "cycle_after_collected": dead_after() is None,
    "second_collected": gc.get_stats()[2]["collections"] - collections - 1,
    "enabled": gc.isenabled(),
}))
"""


def test_the_first_call_collects_then_freezes_every_live_object_and_later_calls_do_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"] >= 200_000
    assert result["frozen"] == result["first"]
    assert result["tracked"] < 1_000  # what full collections still walk
    assert result["cycle_before_collected"]  # collected before the freeze, not kept forever
    assert result["second"] == 0
    assert result["second_collected"] == 0  # the second call did not collect either
    assert result["cycle_after_collected"]
    assert result["enabled"]
