"""Prometheus metrics: one registry per process, served over HTTP on a configurable address.

Names follow Prometheus conventions: a ``winnow_`` prefix, base units
(seconds, bytes), ``_total`` for counters, and bounded label sets (job,
window, rule, partition).
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from connectors.errors import ConnectorError
from windows.events import Float64Array

REGISTRY = CollectorRegistry()


class ArrayHistogram(Collector):
    """A histogram with one label that observes a whole array of values at a time.

    prometheus-client's ``Histogram.observe`` takes about a microsecond per value, and a busy job
    produces a decision or more per input event. This one counts an array's values into buckets with
    one ``searchsorted`` and ``bincount``, and exports the series a ``Histogram`` would: cumulative
    ``_bucket`` counts by ``le`` (a value equal to a bound counts in that bound's bucket), ``_count``,
    ``_sum`` and ``_created``. A label value's series exists from its first ``observe``, even of no values.
    """

    def __init__(
        self, name: str, documentation: str, label: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if not bounds or any(not math.isfinite(b) for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError(f"histogram {name} takes finite, increasing bucket bounds, got {list(buckets)}.")
        self.name, self.documentation, self.label = name, documentation, label
        self._bounds = np.asarray(bounds, dtype=np.float64)
        self._le = [floatToGoString(bound) for bound in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()  # the metrics server thread collects while the job observes
        registry.register(self)

    def observe(self, label_value: str, values: Float64Array) -> None:
        """Count ``values`` in the series of ``label_value``."""
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=self._bounds.shape[0] + 1)
        total = float(values.sum())
        with self._lock:
            if label_value not in self._counts:
                self._counts[label_value] = np.zeros(self._bounds.shape[0] + 1, dtype=np.int64)
                self._sums[label_value] = 0.0
                self._created[label_value] = time.time()
            self._counts[label_value] += counts
            self._sums[label_value] += total

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            series = [
                (value, np.cumsum(counts).tolist(), self._sums[value], self._created[value])
                for value, counts in self._counts.items()
            ]
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, cumulative, total, created in series:
            family.add_metric([value], list(zip(self._le, cumulative)), total)
            family.add_sample(f"{self.name}_created", {self.label: value}, created)
        yield family


#: Origin (etcd commit as observed, or the source record's timestamp) to decision produced.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

DECISION_LATENCY = ArrayHistogram(
    "winnow_decision_latency_seconds",
    "Time from the origin of the event that made a rule fire to the decision being produced.",
    "job",
    LATENCY_BUCKETS,
    REGISTRY,
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


EVENTS = Counter(
    "winnow_events_total",
    "Source events by outcome: consumed, applied (to at least one window), rejected, late (for every window).",
    ["job", "outcome"],
    registry=REGISTRY,
)
LATE_BY_WINDOW = Counter(
    "winnow_late_events_total",
    "Events late for at least one window of a definition.",
    ["job", "window"],
    registry=REGISTRY,
)
REJECTED_BY_KIND = Counter(
    "winnow_rejected_events_total", "Events sent to the dead-letter topic, by kind.", ["job", "kind"], registry=REGISTRY
)
RESULTS = Counter(
    "winnow_results_total", "Window results emitted (final or update).", ["job", "window", "kind"], registry=REGISTRY
)
DECISIONS = Counter("winnow_decisions_total", "Decisions produced.", ["job", "rule", "action"], registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "winnow_batch_seconds",
    "Time to process one fetched batch (decode, windows, rules, hand-off of outputs).",
    ["job"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "winnow_commit_seconds",
    "Time of one commit: outputs acknowledged, then state and offsets written to RocksDB.",
    ["job"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
STATE_BYTES_WRITTEN = Counter(
    "winnow_state_written_bytes_total", "Bytes of window state written to RocksDB.", ["job"], registry=REGISTRY
)
OPEN_PANES = Gauge(
    "winnow_open_panes",
    "Panes (slices of open window state) held, per partition.",
    ["job", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "winnow_consumer_lag",
    "Records between a partition's position and its high watermark.",
    ["job", "partition"],
    registry=REGISTRY,
)
CHECKPOINT_SECONDS = Histogram(
    "winnow_checkpoint_upload_seconds",
    "Time to upload one partition checkpoint.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
CHECKPOINT_BYTES = Counter(
    "winnow_checkpoint_uploaded_bytes_total", "Bytes copied to the checkpoint location.", ["job"], registry=REGISTRY
)
CHECKPOINT_LAST = Gauge(
    "winnow_checkpoint_last_timestamp_seconds",
    "When the newest complete checkpoint of a partition was written (epoch seconds).",
    ["job", "partition"],
    registry=REGISTRY,
)

MEMORY_LEVEL = Gauge(
    "winnow_memory_level",
    "Memory governor level: 0 normal, 1 pressure, 2 throttle (input paused), 3 critical.",
    ["job"],
    registry=REGISTRY,
)
MEMORY_USAGE = Gauge(
    "winnow_memory_usage_bytes", "Memory in use as the governor measures it.", ["job"], registry=REGISTRY
)
MEMORY_LIMIT = Gauge(
    "winnow_memory_limit_bytes", "Memory limit the governor works against.", ["job"], registry=REGISTRY
)
MEMORY_LEVEL_SECONDS = Counter(
    "winnow_memory_level_seconds_total", "Time spent at each governor level.", ["job", "level"], registry=REGISTRY
)
MEMORY_TRANSITIONS = Counter(
    "winnow_memory_transitions_total",
    "Governor level changes, by the level entered.",
    ["job", "level"],
    registry=REGISTRY,
)
MEMORY_PAUSED_SECONDS = Counter(
    "winnow_memory_paused_seconds_total",
    "Time input was paused by the governor (throttle and critical).",
    ["job"],
    registry=REGISTRY,
)
MEMORY_DEFERRED = Gauge(
    "winnow_memory_deferred_events",
    "Events left in the input (consumer lag of paused partitions) while the governor pauses input.",
    ["job"],
    registry=REGISTRY,
)
STATE_EVICTED = Counter(
    "winnow_state_evicted_panes_total",
    "Panes dropped from memory after being written to RocksDB (read back when needed).",
    ["job"],
    registry=REGISTRY,
)
STATE_LOADED = Counter(
    "winnow_state_loaded_panes_total", "Panes read back from RocksDB into memory.", ["job"], registry=REGISTRY
)

STATE_SIZE = Gauge(
    "winnow_state_size_bytes",
    "Size of a partition's RocksDB window state (files on disk plus memtables).",
    ["job", "partition"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "winnow_rebalances_total",
    "Consumer-group rebalances this worker went through (from Faust).",
    ["job"],
    registry=REGISTRY,
)
REBALANCE_SECONDS = Histogram(
    "winnow_rebalance_seconds",
    "Time from a rebalance starting to this worker having its partitions positioned (from Faust).",
    ["job"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)


class CounterTotals:
    """Keeps Prometheus counters equal to running totals counted elsewhere: each ``set`` adds what the
    total grew by since the last one for the same counter and labels."""

    def __init__(self) -> None:
        self._exported: dict[tuple[Any, tuple[str, ...]], float] = {}

    def set(self, counter: Any, labels: tuple[str, ...], total: float) -> None:
        key = (counter, labels)
        delta = total - self._exported.get(key, 0)
        if delta > 0:
            counter.labels(*labels).inc(delta)
            self._exported[key] = total


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


#: Where each command serves its metrics unless told otherwise (loopback only).
DEFAULT_ADDRESSES = {"worker": "127.0.0.1:9464", "etcd-watch": "127.0.0.1:9465", "replay": "127.0.0.1:9466"}


def serve(address: str, *, fallback: bool = False) -> tuple[str, int]:
    """Serve ``REGISTRY`` at ``http://ADDRESS/metrics``; ``host:0`` picks a free port. Returns (host, port).

    With ``fallback`` (the default address, not one the user gave), a port in
    use is replaced by a free one on the same host instead of failing.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectorError(f"metrics address {address!r} is not host:port.")
    try:
        server, _thread = start_http_server(int(port), addr=host, registry=REGISTRY)
    except OSError as error:
        if fallback and error.errno == errno.EADDRINUSE:
            return serve(f"{host}:0")
        raise ConnectorError(f"cannot serve metrics on {address}: {error.strerror or error}.") from None
    return host, int(server.server_port)
