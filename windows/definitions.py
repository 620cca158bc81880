"""Frozen window definitions and their pure time arithmetic.

All times are integer epoch milliseconds. Tumbling and hopping windows are
epoch-aligned half-open intervals ``[start, end)``; sliding windows follow
Kafka Streams' ``SlidingWindows`` and are closed intervals ``[start, end]``.
A window *closes* when its partition's stream time reaches its close point:
``end + grace`` for ``[start, end)`` windows and ``end + 1 + grace`` for sliding
windows, whose end is inclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Union

from windows.errors import SpecError

if TYPE_CHECKING:
    from windows.aggregates import AggregateSpec


class EmitMode(str, Enum):
    """When a window's result leaves the engine."""

    FINAL = "final"  # once, when the window closes
    UPDATE = "update"  # at every update tick while it changes, and once more when it closes


@dataclass(frozen=True)
class TumblingWindows:
    """Fixed-size, non-overlapping, epoch-aligned windows ``[start, start + size)``."""

    size: int
    grace: int = 0

    def __post_init__(self) -> None:
        _check_positive("size", self.size)
        _check_non_negative("grace", self.grace)

    @property
    def step(self) -> int:
        """Distance between consecutive window starts (equal to the size)."""
        return self.size

    @property
    def pane(self) -> int:
        """Length of the slices state is kept in; each window is a whole number of panes."""
        return self.size

    def starts_containing(self, ts: int) -> list[int]:
        """Starts of the windows that contain ``ts``, oldest first."""
        return [ts - ts % self.size]

    def close_point(self, start: int) -> int:
        """Stream time at which the window starting at ``start`` closes."""
        return start + self.size + self.grace


@dataclass(frozen=True)
class HoppingWindows:
    """Fixed-size windows that start every ``step`` ms and overlap when ``step < size``."""

    size: int
    step: int
    grace: int = 0

    def __post_init__(self) -> None:
        _check_positive("size", self.size)
        _check_positive("step", self.step)
        _check_non_negative("grace", self.grace)
        if self.step > self.size:
            raise SpecError(
                f"step ({self.step} ms) must not exceed size ({self.size} ms): "
                "hopping windows with gaps would silently skip events."
            )

    @property
    def pane(self) -> int:
        """Length of the slices state is kept in: the gcd of size and step."""
        return math.gcd(self.size, self.step)

    def starts_containing(self, ts: int) -> list[int]:
        """Starts of the windows that contain ``ts``, oldest first."""
        last = ts - ts % self.step
        first = last - ((self.size - 1) // self.step) * self.step
        return [s for s in range(first, last + 1, self.step) if s <= ts < s + self.size]

    def close_point(self, start: int) -> int:
        """Stream time at which the window starting at ``start`` closes."""
        return start + self.size + self.grace


@dataclass(frozen=True)
class SlidingWindows:
    """Kafka Streams sliding windows: ``[t - size, t]`` for each record time ``t``,
    plus ``[t + 1, t + 1 + size]`` once a later record falls inside it."""

    size: int
    grace: int = 0

    def __post_init__(self) -> None:
        _check_positive("size", self.size)
        _check_non_negative("grace", self.grace)

    def close_point(self, end: int) -> int:
        """Stream time at which the window ending (inclusively) at ``end`` closes."""
        return end + 1 + self.grace

    def last_close_containing(self, ts: int) -> int:
        """Close point of the latest window that can contain a record at ``ts``."""
        return self.close_point(ts + self.size)


WindowDefinition = Union[TumblingWindows, HoppingWindows, SlidingWindows]


@dataclass(frozen=True)
class WindowSpec:
    """A named window: its definition, what it aggregates and when it emits."""

    name: str
    definition: WindowDefinition
    aggregates: tuple[AggregateSpec, ...]
    emit: EmitMode = EmitMode.FINAL
    update_interval: int = 1_000  # stream time between update ticks; 0: a tick after every event
    trace_links: int = 0  # keep the traces of this many newest events per window (0: none)

    def __post_init__(self) -> None:
        if not self.aggregates:
            raise SpecError(f"window {self.name!r}: at least one aggregate is required.")
        names = [a.name for a in self.aggregates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"window {self.name!r}: aggregate names repeat: {', '.join(duplicates)}.")
        _check_non_negative("update_interval", self.update_interval)


def _check_positive(field: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"{field} must be a positive number of milliseconds, got {value!r}.")


def _check_non_negative(field: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{field} must be zero or a positive number of milliseconds, got {value!r}.")
