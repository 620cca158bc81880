"""Keeping a long-running process's startup objects out of Python's full garbage collections.

Once started, a worker holds about 84,000 objects and the etcd-watch producer about 48,000 (modules,
Faust's services, the Kafka and etcd clients), nearly all of them alive until the process stops.
Python's full collection walks every one of them: in the etcd latency benchmark each took 26-67 ms in
the worker on the busy 2-core machine, and held up every batch in flight for as long. Moving them into
the permanent generation (``gc.freeze``) once the process is up leaves full collections only the
objects made since, about a millisecond's work there.

A frozen object is still freed when its last reference goes, but a garbage cycle that includes one is
never collected, not even by an explicit ``gc.collect()`` (the memory governor's relief included).
Freezing once, at startup, after a collection, limits that to objects alive then.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("winnow.gc")

_frozen = False


def freeze_long_lived(what: str) -> int:
    """Collect once, then move every object alive now to the permanent generation; the first call in a
    process does it, later calls do nothing. Return how many objects were frozen (0 on later calls)."""
    global _frozen
    if _frozen:
        return 0
    _frozen = True
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    count = gc.get_freeze_count()
    log.info(
        "%s: %d long-lived objects kept out of garbage collection (%.0f ms)",
        what,
        count,
        (time.perf_counter() - started) * 1000.0,
    )
    return count
