"""The memory governor in a running job: reads memory, logs each change of level once, exports metrics.

``MemoryWatch`` wraps a ``MemoryGovernor`` for the worker and for replay. They
act on its level: at pressure they commit after every batch and keep no
window state in memory beyond what the batch needs (the rest stays in
RocksDB), forget unused keys and give freed memory back to the system; at
throttle the worker pauses its source partitions (Kafka keeps the data) and
replay stops reading the log until memory falls; at critical the worker also
checkpoints. No event is ever dropped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

from connectors import metrics
from jobs.memory_governor import GovernorSettings, Level, MemoryGovernor, Transition, detect_memory

log = logging.getLogger("winnow.memory")


def _glibc(name: str) -> Callable[..., int] | None:
    """The C library's function ``name``, or None where there is no such function (not glibc)."""
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    return function


def _malloc_trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``: hand freed heap pages back to the system (a no-op elsewhere)."""
    trim = _glibc("malloc_trim")
    return (lambda: None) if trim is None else (lambda: trim(0))


#: glibc ``mallopt`` parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_heap(limit: int) -> None:
    """Let glibc keep freed memory for reuse instead of handing it back to the system at once.

    A batch allocates and frees arrays and output buffers of up to several
    MiB. By default glibc maps the largest of those afresh (and unmaps them when
    freed) and trims the top of the heap often, so each batch pays page faults
    and zeroed pages again for the same sizes: about 118,000 faults in a
    1M-event replay. Here allocations below a 1/32 share of the memory limit
    (at most 64 MiB) come from the heap, and up to a 1/16 share (at most
    128 MiB) of free heap top is kept. What that keeps counts as used memory, so
    the governor sees it, and ``relieve`` (at pressure) hands every free page
    back with ``malloc_trim``. A no-op without glibc.
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, min(64 << 20, limit // 32))
    mallopt(_M_TRIM_THRESHOLD, min(128 << 20, limit // 16))


class MemoryWatch:
    """One job's memory governor, its log lines and its metrics."""

    def __init__(
        self,
        job: str,
        explicit_limit: int | None,
        settings: GovernorSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        reader, limit, source = detect_memory(explicit_limit)
        self.job = job
        self.governor = MemoryGovernor(settings or GovernorSettings(), reader, limit, clock)
        self.source = source
        self.peak = 0
        self.levels_seen: set[Level] = {Level.NORMAL}
        self.returns_to_normal = 0  # times usage fell back to normal after a higher level
        self._trim = _malloc_trim()
        keep_freed_heap(limit)
        self._totals = metrics.CounterTotals()
        metrics.MEMORY_LIMIT.labels(job).set(limit)
        metrics.MEMORY_LEVEL.labels(job).set(0)
        metrics.MEMORY_DEFERRED.labels(job).set(0)
        metrics.MEMORY_PAUSED_SECONDS.labels(job)
        for level in Level:
            metrics.MEMORY_LEVEL_SECONDS.labels(job, level.name.lower())
            metrics.MEMORY_TRANSITIONS.labels(job, level.name.lower())
        log.info(
            "memory governor: limit %.0f MiB from %s, usage read as %s",
            limit / 2**20,
            source,
            reader.describe(),
        )

    @property
    def level(self) -> Level:
        return self.governor.level

    @property
    def interval(self) -> float:
        return self.governor.settings.interval

    def poll(self) -> Transition | None:
        """Read memory once; log and count a change of level; export the figures."""
        governor = self.governor
        transition = governor.update()
        self.peak = max(self.peak, governor.usage)
        job = self.job
        metrics.MEMORY_USAGE.labels(job).set(governor.usage)
        metrics.MEMORY_LEVEL.labels(job).set(int(governor.level))
        now = governor.clock()
        ongoing = now - governor.since
        for level in Level:
            total = governor.seconds_in[level] + (ongoing if level == governor.level else 0.0)
            self._totals.set(metrics.MEMORY_LEVEL_SECONDS, (job, level.name.lower()), total)
        self._totals.set(metrics.MEMORY_PAUSED_SECONDS, (job,), governor.seconds_paused)
        if transition is not None:
            self.levels_seen.add(transition.level)
            self.returns_to_normal += transition.level == Level.NORMAL
            metrics.MEMORY_TRANSITIONS.labels(job, transition.level.name.lower()).inc()
            rising = transition.level > transition.previous
            (log.warning if rising else log.info)("job %s: %s", job, transition.message())
        return transition

    def relieve(self) -> None:
        """Collect garbage and return freed memory to the system."""
        gc.collect()
        self._trim()
