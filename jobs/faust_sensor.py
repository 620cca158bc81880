"""Faust's own events worth watching, as Winnow metrics: consumer-group rebalances and their duration.

Winnow bypasses Faust's per-event stream machinery, so Faust's message and
event sensors would count nothing; what Faust still does for a worker is group
membership, so its rebalance events are exported.
"""

from __future__ import annotations

import time
from typing import Any

from faust import Sensor

from connectors import metrics


class RebalanceSensor(Sensor):
    """Counts rebalances and times each one, from its start to the end of Faust's handling."""

    def __init__(self, job: str, **kwargs: Any) -> None:
        self.job = job
        metrics.REBALANCES.labels(job)
        metrics.REBALANCE_SECONDS.labels(job)
        super().__init__(**kwargs)

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        metrics.REBALANCES.labels(self.job).inc()
        return {"time_start": time.monotonic()}

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        started = state.get("time_start")
        if started is not None:
            metrics.REBALANCE_SECONDS.labels(self.job).observe(time.monotonic() - started)
