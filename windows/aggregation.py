"""Turn a window's aggregate specs into state columns and read results from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from windows import sketch_counts
from windows.aggregates import AggregateKind, AggregateSpec
from windows.events import Float64Array, Int64Array
from windows.pane_state import (
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

#: The output (in ``WindowResults.values``) holding each result's newest traces, shape (n, links, 4).
LINKS = "__links"
_TRACE_KEY: StateKey = ("__trace", None, None)

StateKey = tuple[str, "str | None", "int | None"]
Values = dict[str, "Int64Array | Float64Array"]


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

        def percentile(merged: list[dict[int, int]]) -> Float64Array:
            return sketch_counts.quantiles(merged, q)

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
        if trace_links > 0:
            self.columns[_TRACE_KEY] = TraceColumn(trace_links)
            self._readers.append((LINKS, _TRACE_KEY, lambda merged: merged))

    def fresh(self) -> Aggregation:
        """Empty columns for the same aggregates."""
        return Aggregation(self.specs, self.trace_links)

    def values(self, plan: MergePlan) -> Values:
        """Merge panes into windows as ``plan`` says and read every output."""
        merged = {key: column.merge(plan) for key, column in self.columns.items()}
        return {name: reader(merged[key]) for name, key, reader in self._readers}
