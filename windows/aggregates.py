"""Aggregate specifications: what a window computes, parsed from the job spec.

An aggregate is written as ``count``, ``sum(field)``, ``min(field)``,
``max(field)``, ``mean(field)``, ``first(field)``, ``last(field)``,
``distinct(field)``, ``pNN(field)`` (a percentile, e.g. ``p99`` or ``p99.9``)
or ``decay(30s)`` / ``decay(field, 30s)`` (an exponentially decayed rate per
second with the given half-life). Several outputs may share one piece of state
(``p50(x)`` and ``p99(x)`` read the same sketch); ``state_key`` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from windows.durations import parse_duration_ms
from windows.errors import SpecError


class AggregateKind(str, Enum):
    """The aggregation functions Winnow knows."""

    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    MEAN = "mean"
    FIRST = "first"
    LAST = "last"
    DISTINCT = "distinct"
    PERCENTILE = "percentile"
    DECAY = "decay"


#: Kinds whose field must hold a number; ``distinct`` takes any JSON scalar.
NUMERIC_KINDS = frozenset(
    {
        AggregateKind.SUM,
        AggregateKind.MIN,
        AggregateKind.MAX,
        AggregateKind.MEAN,
        AggregateKind.FIRST,
        AggregateKind.LAST,
        AggregateKind.PERCENTILE,
        AggregateKind.DECAY,
    }
)

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\((.*)\))?\s*$")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class AggregateSpec:
    """One named output of a window: its function, input field and parameters."""

    name: str
    kind: AggregateKind
    field: str | None = None
    quantile: float | None = None
    half_life: int | None = None

    @property
    def state_key(self) -> tuple[str, str | None, int | None]:
        """Identity of the state this output reads; outputs with equal keys share it."""
        if self.kind in (AggregateKind.SUM, AggregateKind.MEAN):
            return ("sum", self.field, None)
        if self.kind is AggregateKind.PERCENTILE:
            return ("sketch", self.field, None)
        if self.kind is AggregateKind.DECAY:
            return ("decay", self.field, self.half_life)
        return (self.kind.value, self.field, None)


def parse_aggregate(name: str, expression: object, *, where: str = "") -> AggregateSpec:
    """Parse one ``name: expression`` entry of a window's ``aggregate`` map."""
    label = f"{where}aggregate {name!r}"
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise SpecError(f"{label}: names must be identifiers (letters, digits, underscore).")
    if not isinstance(expression, str):
        raise SpecError(f"{label}: expected an expression such as 'count' or 'sum(bytes)', got {expression!r}.")
    match = _CALL.match(expression)
    if not match:
        raise SpecError(
            f"{label}: cannot parse {expression!r}; write e.g. 'count', 'max(latency_ms)', 'p99(latency_ms)'."
        )
    function, raw_args = match.group(1), match.group(2)
    args = [a.strip() for a in raw_args.split(",")] if raw_args is not None and raw_args.strip() else []

    if function == "count":
        if args:
            raise SpecError(f"{label}: count takes no field, got {expression!r}.")
        return AggregateSpec(name, AggregateKind.COUNT)
    if function == "decay":
        if len(args) == 1:
            return AggregateSpec(name, AggregateKind.DECAY, None, half_life=_half_life(args[0], label))
        if len(args) == 2:
            field = _field(args[0], label)
            return AggregateSpec(name, AggregateKind.DECAY, field, half_life=_half_life(args[1], label))
        raise SpecError(f"{label}: write decay(HALF_LIFE) or decay(field, HALF_LIFE), got {expression!r}.")

    percentile = _PERCENTILE.match(function)
    if percentile:
        quantile = float(percentile.group(1)) / 100.0
        if not 0.0 < quantile <= 1.0:
            raise SpecError(f"{label}: a percentile must lie in (0, 100], got {function!r}.")
        return AggregateSpec(name, AggregateKind.PERCENTILE, _single_field(args, label, function), quantile=quantile)
    try:
        kind = AggregateKind(function)
    except ValueError:
        known = "count, sum, min, max, mean, first, last, distinct, pNN, decay"
        raise SpecError(f"{label}: unknown function {function!r}; known: {known}.") from None
    if kind is AggregateKind.PERCENTILE:
        raise SpecError(f"{label}: write a percentile as pNN(field), e.g. p99(latency_ms).")
    return AggregateSpec(name, kind, _single_field(args, label, function))


def _single_field(args: list[str], label: str, function: str) -> str:
    if len(args) != 1:
        raise SpecError(f"{label}: {function} takes exactly one field, e.g. {function}(latency_ms).")
    return _field(args[0], label)


def _field(raw: str, label: str) -> str:
    if not _FIELD.match(raw):
        raise SpecError(f"{label}: {raw!r} is not a field name.")
    return raw


def _half_life(raw: str, label: str) -> int:
    half_life = parse_duration_ms(raw, field=f"{label} half-life")
    if half_life <= 0:
        raise SpecError(f"{label}: the half-life must be positive.")
    return half_life
