"""Turn a window's aggregate specs into state columns and read results from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from windows import sketch_counts
from windows.aggregates import AggregateKind, AggregateSpec
from windows.events import Float64Array, Int64Array
from windows.pane_state import (
    TRACE_HI,
    TRACE_LO,
    TRACE_ORIGIN,
    ArrivalColumn,
    CountColumn,
    DecayColumn,
    DistinctColumn,
    ExtremeColumn,
    MergedSum,
    MergePlan,
    SketchColumn,
    StateColumn,
    SumColumn,
    TraceColumn,
)

_TRACE_KEY: StateKey = ("__trace", None, None)

StateKey = tuple[str, "str | None", "int | None"]
Values = dict[str, "Int64Array | Float64Array"]

#: Which windows keep their trace links, given the windows' values and their number: a boolean mask over them, or
#: None for none.
#: A job asks for the windows its rules may fire on, the only ones whose links anybody reads (a decision
#: carries them); merging every window's links would cost more than all its other values together.
TracedRows = Callable[[Values, int], "np.ndarray | None"]


@dataclass(frozen=True)
class Merged:
    """Windows' values, and the trace links of those asked for: ``traces`` holds their newest entries,
    shape (traced, links, 5), and ``trace_rows`` each window's index into it (-1: not traced). Both are
    None without trace links (see ``WindowResults``)."""

    values: Values
    trace_rows: Int64Array | None = None
    traces: Int64Array | None = None


def _column_for(spec: AggregateSpec) -> StateColumn:
    kind, field = spec.kind, spec.field
    if kind is AggregateKind.COUNT:
        return CountColumn()
    assert field is not None or kind is AggregateKind.DECAY
    if kind in (AggregateKind.SUM, AggregateKind.MEAN):
        return SumColumn(str(field))
    if kind in (AggregateKind.MIN, AggregateKind.MAX):
        return ExtremeColumn(str(field), maximum=kind is AggregateKind.MAX)
    if kind in (AggregateKind.FIRST, AggregateKind.LAST):
        return ArrivalColumn(str(field), latest=kind is AggregateKind.LAST)
    if kind is AggregateKind.DISTINCT:
        return DistinctColumn(str(field))
    if kind is AggregateKind.PERCENTILE:
        return SketchColumn(str(field))
    assert spec.half_life is not None
    return DecayColumn(field, spec.half_life)


def _reader_for(spec: AggregateSpec) -> Callable[[Any], Int64Array | Float64Array]:
    kind = spec.kind
    if kind is AggregateKind.SUM:
        return lambda merged: np.where(merged.count > 0, merged.total, np.nan)
    if kind is AggregateKind.MEAN:

        def mean(merged: MergedSum) -> Float64Array:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(merged.count > 0, merged.total / np.maximum(merged.count, 1), np.nan)

        return mean
    if kind is AggregateKind.PERCENTILE:
        q = float(spec.quantile or 0.0)

        def percentile(merged: sketch_counts.MergedSketches) -> Float64Array:
            return merged.quantiles(q)

        return percentile
    return lambda merged: merged


class Aggregation:
    """The state columns a window needs and the outputs it reads from them."""

    def __init__(self, specs: Sequence[AggregateSpec], trace_links: int = 0) -> None:
        self.specs = tuple(specs)
        self.trace_links = trace_links
        self.columns: dict[StateKey, StateColumn] = {}
        for spec in self.specs:
            if spec.state_key not in self.columns:
                self.columns[spec.state_key] = _column_for(spec)
        self._readers: list[tuple[str, StateKey, Callable[[Any], Any]]] = [
            (spec.name, spec.state_key, _reader_for(spec)) for spec in self.specs
        ]
        self.trace_column = TraceColumn(trace_links) if trace_links > 0 else None
        if self.trace_column is not None:
            self.columns[_TRACE_KEY] = self.trace_column

    def batch_fields(self) -> tuple[frozenset[str], frozenset[str]]:
        """The columns of an event batch these aggregates read: its ``numbers`` and its ``hashes`` (the trace
        columns among them when the window keeps trace links)."""
        numbers = {s.field for s in self.specs if s.field is not None and s.kind is not AggregateKind.DISTINCT}
        hashes = {s.field for s in self.specs if s.field is not None and s.kind is AggregateKind.DISTINCT}
        if self.trace_column is not None:
            hashes |= {TRACE_HI, TRACE_LO, TRACE_ORIGIN}
        return frozenset(numbers), frozenset(hashes)

    def fresh(self) -> Aggregation:
        """Empty columns for the same aggregates."""
        return Aggregation(self.specs, self.trace_links)

    def values(self, plan: MergePlan, traced: TracedRows | None = None) -> Merged:
        """Merge panes into windows as ``plan`` says and read every output; merge the trace links of the
        windows ``traced`` picks from their values (without it, of every window)."""
        merged = {key: column.merge(plan) for key, column in self.columns.items() if key != _TRACE_KEY}
        values = {name: reader(merged[key]) for name, key, reader in self._readers}
        if self.trace_column is None:
            return Merged(values)
        n = plan.n_groups
        if traced is None:
            return Merged(values, np.arange(n, dtype=np.int64), self.trace_column.merge(plan))
        mask = traced(values, n)
        rows = np.zeros(0, dtype=np.int64) if mask is None else np.flatnonzero(mask)
        trace_rows = np.full(n, -1, dtype=np.int64)
        trace_rows[rows] = np.arange(rows.shape[0], dtype=np.int64)
        return Merged(values, trace_rows, self.trace_column.merge(plan, None if rows.shape[0] == n else rows))
