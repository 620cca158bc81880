"""Prometheus export of a job's run counters, shared by the worker and replay."""

from __future__ import annotations

import time
from typing import Any

from connectors import metrics
from jobs.pipeline import JobRunner
from jobs.spec import JobSpec


class RunMetrics:
    """Adds to the Prometheus counters what a ``JobRunner`` counted since the last export."""

    def __init__(self, spec: JobSpec) -> None:
        self.job = spec.name
        self._totals = metrics.CounterTotals()
        for outcome in ("consumed", "applied", "rejected", "late"):  # exported (as 0) from the start
            metrics.EVENTS.labels(spec.name, outcome)
        for window in spec.windows:
            metrics.LATE_BY_WINDOW.labels(spec.name, window.name)
            for kind in ("final", "update"):
                metrics.RESULTS.labels(spec.name, window.name, kind)
        metrics.STATE_EVICTED.labels(spec.name)
        metrics.STATE_LOADED.labels(spec.name)
        self._sized_at = -1.0  # RocksDB sizes are read at most once a second

    def export(self, runner: JobRunner) -> None:
        job, stats = self.job, runner.stats
        totals: list[tuple[Any, tuple[str, ...], int]] = [
            (metrics.EVENTS, (job, "consumed"), stats.events),
            (metrics.EVENTS, (job, "applied"), stats.applied),
            (metrics.EVENTS, (job, "rejected"), stats.rejected),
            (metrics.EVENTS, (job, "late"), stats.late),
            (metrics.STATE_BYTES_WRITTEN, (job,), stats.state_bytes_written),
            (metrics.STATE_EVICTED, (job,), stats.panes_evicted),
            (metrics.STATE_LOADED, (job,), runner.panes_loaded),
        ]
        totals += [(metrics.LATE_BY_WINDOW, (job, w), n) for w, n in stats.late_by_window.items()]
        totals += [(metrics.REJECTED_BY_KIND, (job, kind), n) for kind, n in stats.rejected_by_reason.items()]
        totals += [
            (metrics.RESULTS, (job, w, "final" if final else "update"), n)
            for (w, final), n in stats.results_by_window.items()
        ]
        totals += [(metrics.DECISIONS, (job, rule, action), n) for (rule, action), n in runner.rules.fired.items()]
        for metric, labels, total in totals:
            self._totals.set(metric, labels, total)
        now = time.monotonic()
        sizes = runner.store is not None and now - self._sized_at >= 1.0
        if sizes:
            self._sized_at = now
        for partition, engine in runner.engines.items():
            metrics.OPEN_PANES.labels(job, str(partition)).set(engine.open_panes)
            if sizes and runner.store is not None:
                metrics.STATE_SIZE.labels(job, str(partition)).set(runner.store.partition(partition).size_bytes())
