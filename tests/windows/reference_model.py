"""A slow, declarative model of Winnow's window semantics, written independently of the engine.

It follows the definitions in the README event by event: stream time is the
running maximum of event time; an event belongs to a window unless the
stream time it arrived at had already reached the window's close point; a
window is emitted (final) once stream time reaches its close point, or at the
end when closing everything. Sliding windows are the Kafka Streams ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from windows.aggregates import AggregateKind, AggregateSpec
from windows.definitions import HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec

NO_TIME = None


@dataclass(frozen=True)
class Event:
    ts: int
    key: int
    values: dict[str, float]
    seq: int


@dataclass(frozen=True)
class Accepted:
    event: Event
    arrived_at: int | None  # stream time before the event


def stream_time_before(events: list[Event]) -> list[int | None]:
    out: list[int | None] = []
    current: int | None = None
    for event in events:
        out.append(current)
        current = event.ts if current is None else max(current, event.ts)
    return out


def _late(arrived_at: int | None, close: int) -> bool:
    return arrived_at is not None and arrived_at >= close


def aggregate(spec: AggregateSpec, events: list[Event], window_end_exclusive: int) -> float | None:
    kind, field = spec.kind, spec.field
    if kind is AggregateKind.COUNT:
        return float(len(events))
    if kind is AggregateKind.DECAY:
        assert spec.half_life is not None
        total = 0.0
        for e in events:
            weight = 1.0 if field is None else e.values.get(field)
            if weight is None:
                continue
            total += weight * 2.0 ** (-(window_end_exclusive - e.ts) / spec.half_life)
        return total * math.log(2.0) / (spec.half_life / 1000.0)
    assert field is not None
    present = [e for e in events if e.values.get(field) is not None]
    values = [e.values[field] for e in present]
    if kind is AggregateKind.DISTINCT:
        return float(len(set(values)))
    if not values:
        return None
    if kind is AggregateKind.SUM:
        return math.fsum(values)
    if kind is AggregateKind.MEAN:
        return math.fsum(values) / len(values)
    if kind is AggregateKind.MIN:
        return min(values)
    if kind is AggregateKind.MAX:
        return max(values)
    if kind is AggregateKind.FIRST:
        return min(present, key=lambda e: (e.ts, e.seq)).values[field]
    if kind is AggregateKind.LAST:
        return max(present, key=lambda e: (e.ts, e.seq)).values[field]
    assert kind is AggregateKind.PERCENTILE and spec.quantile is not None
    ordered = sorted(values)
    rank = max(math.ceil(spec.quantile * len(ordered)) - 1, 0)
    return ordered[rank]


@dataclass(frozen=True)
class RefResult:
    window: str
    key: int
    start: int
    end: int  # as reported
    close: int
    values: dict[str, float | None]


def _windows_pane(
    spec: WindowSpec, events: list[Event], arrived: list[int | None]
) -> dict[tuple[int, int], list[Event]]:
    d = spec.definition
    assert isinstance(d, (TumblingWindows, HoppingWindows))
    content: dict[tuple[int, int], list[Event]] = defaultdict(list)
    for event, at in zip(events, arrived):
        for start in d.starts_containing(event.ts):
            if not _late(at, d.close_point(start)):
                content[(event.key, start)].append(event)
    return content


def _windows_sliding(
    spec: WindowSpec, events: list[Event], arrived: list[int | None]
) -> dict[tuple[int, int, int], list[Event]]:
    d = spec.definition
    assert isinstance(d, SlidingWindows)
    size = d.size
    accepted: dict[int, list[Accepted]] = defaultdict(list)
    for event, at in zip(events, arrived):
        if not _late(at, d.last_close_containing(event.ts)):
            accepted[event.key].append(Accepted(event, at))
    out: dict[tuple[int, int, int], list[Event]] = {}
    for key, records in accepted.items():
        bounds: set[tuple[int, int]] = set()
        for record in records:
            t = record.event.ts
            left = (t - size, t)
            if any(r.event.ts == t and not _late(r.arrived_at, d.close_point(t)) for r in records):
                bounds.add(left)
            right_close = d.close_point(t + 1 + size)
            if any(t < r.event.ts <= t + size and not _late(r.arrived_at, right_close) for r in records):
                bounds.add((t + 1, t + 1 + size))
        for start, end in bounds:
            close = d.close_point(end)
            members = [r.event for r in records if start <= r.event.ts <= end and not _late(r.arrived_at, close)]
            if members:
                out[(key, start, end)] = members
    return out


def reference_finals(specs: list[WindowSpec], events: list[Event], close_all: bool = True) -> list[RefResult]:
    """Every final result, in emission order: (close, window index, start, end, key)."""
    arrived = stream_time_before(events)
    final_time = max((e.ts for e in events), default=0)
    results: list[tuple[Any, ...]] = []
    for index, spec in enumerate(specs):
        d = spec.definition
        if isinstance(d, SlidingWindows):
            windows = {(k, s, e): members for (k, s, e), members in _windows_sliding(spec, events, arrived).items()}
            items = [(k, s, e, d.close_point(e), e + 1, members) for (k, s, e), members in windows.items()]
        else:
            items = [
                (k, s, s + d.size, d.close_point(s), s + d.size, members)
                for (k, s), members in _windows_pane(spec, events, arrived).items()
            ]
        for key, start, end, close, end_exclusive, members in items:
            if not close_all and close > final_time:
                continue
            values = {a.name: aggregate(a, members, end_exclusive) for a in spec.aggregates}
            results.append((close, index, start, end, key, RefResult(spec.name, key, start, end, close, values)))
    results.sort(key=lambda r: r[:5])
    return [r[-1] for r in results]


def reference_late(specs: list[WindowSpec], events: list[Event]) -> list[int]:
    """Sequence numbers of events late for every window of every definition."""
    arrived = stream_time_before(events)
    late = []
    for event, at in zip(events, arrived):
        closes = []
        for spec in specs:
            d = spec.definition
            if isinstance(d, SlidingWindows):
                closes.append(d.last_close_containing(event.ts))
            else:
                closes.append(max(d.close_point(s) for s in d.starts_containing(event.ts)))
        if all(_late(at, c) for c in closes):
            late.append(event.seq)
    return late
