"""Prometheus metrics: one registry per process, served over HTTP on a configurable address.

Names follow Prometheus conventions: a ``winnow_`` prefix, base units
(seconds, bytes), ``_total`` for counters, and bounded label sets (job,
window, rule, partition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from connectors.errors import ConnectorError

REGISTRY = CollectorRegistry()

#: Origin (etcd commit as observed, or the source record's timestamp) to decision produced.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

DECISION_LATENCY = Histogram(
    "winnow_decision_latency_seconds",
    "Time from the origin of the event that made a rule fire to the decision being produced.",
    ["job"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
RULES_REVISION = Gauge(
    "winnow_rules_revision",
    "etcd revision of the rule set in force (0: rules from the spec).",
    ["job"],
    registry=REGISTRY,
)
RULES_STALE = Gauge(
    "winnow_rules_stale",
    "1 while the rule source has been unreachable for longer than allowed.",
    ["job"],
    registry=REGISTRY,
)
RULES_REJECTED = Counter(
    "winnow_rules_rejected_total", "Rule sets read from etcd and rejected as invalid.", ["job"], registry=REGISTRY
)
RULES_RELOADS = Counter(
    "winnow_rules_reloads_total", "New rule sets read from etcd and put in force.", ["job"], registry=REGISTRY
)


class StatusCollector(Collector):
    """Exports counters and gauges read from a status object at scrape time."""

    def __init__(self, prefix: str, read: Callable[[], dict[str, tuple[str, float, str]]]) -> None:
        self.prefix = prefix
        self.read = read

    def collect(self) -> Iterator[Any]:
        for name, (kind, value, help_text) in self.read().items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            metric_name = f"{self.prefix}_{name}"
            yield family(
                metric_name.removesuffix("_total") if kind == "counter" else metric_name, help_text, value=value
            )


def serve(address: str) -> tuple[str, int]:
    """Serve ``REGISTRY`` at ``http://ADDRESS/metrics``; ``host:0`` picks a free port. Returns (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectorError(f"metrics address {address!r} is not host:port.")
    try:
        server, _thread = start_http_server(int(port), addr=host, registry=REGISTRY)
    except OSError as error:
        raise ConnectorError(f"cannot serve metrics on {address}: {error.strerror or error}.") from None
    return host, int(server.server_port)
