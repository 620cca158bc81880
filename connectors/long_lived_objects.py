"""Keeping a long-running process's startup objects out of Python's full garbage collections.

A worker or a producer holds some 85,000 objects once started (modules, Faust's services, the
Kafka clients), nearly all of them alive until it stops. Python's full collection walks every one
of them; measured in the etcd latency benchmark, each took 26-67 ms on the busy 2-core machine and
held up every batch in flight for as long. Moving them into the permanent generation
(``gc.freeze``) once the process is up leaves full collections only the objects made since,
about a millisecond's work. Objects frozen here are still freed when their last reference goes;
only a reference cycle among them would stay, which is why this is done once, at startup.
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
