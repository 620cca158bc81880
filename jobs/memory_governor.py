"""The memory governor's state machine: levels with hysteresis over measured memory use.

The governor reads the memory limit (cgroup v2 ``memory.max``, v1
``memory.limit_in_bytes``, or a configured limit) and the usage (the cgroup's
``memory.current`` when a cgroup limit applies, otherwise the process's RSS),
and moves between four levels:

1. normal;
2. pressure: shrink what can shrink (flush, smaller batches, collect garbage);
3. throttle: stop reading input (Kafka or the log keeps it) while windows drain;
4. critical: stay stopped, checkpoint, report. Events are never dropped.

A level is entered as soon as usage reaches its threshold (several at once if
usage jumps) and left one level at a time, only when usage falls below that
level's resume threshold, which sits below its entry threshold so a usage
hovering at a threshold does not flap. This module only decides; the worker
and replay act on the level.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from windows.errors import SpecError


class Level(IntEnum):
    NORMAL = 0
    PRESSURE = 1
    THROTTLE = 2
    CRITICAL = 3


@dataclass(frozen=True)
class GovernorSettings:
    """Entry and resume thresholds of each level, as fractions of the limit."""

    pressure: float = 0.70
    throttle: float = 0.85
    critical: float = 0.95
    pressure_resume: float = 0.65
    throttle_resume: float = 0.80
    critical_resume: float = 0.90
    interval: float = 0.25  # seconds between readings

    def __post_init__(self) -> None:
        entries = (self.pressure, self.throttle, self.critical)
        resumes = (self.pressure_resume, self.throttle_resume, self.critical_resume)
        if not 0 < entries[0] < entries[1] < entries[2] <= 1:
            raise SpecError(f"memory thresholds must rise within (0, 1]: pressure, throttle, critical = {entries}.")
        for name, entry, resume in zip(("pressure", "throttle", "critical"), entries, resumes):
            if not 0 < resume < entry:
                raise SpecError(f"memory {name}_resume ({resume}) must be above 0 and below {name} ({entry}).")

    def entry(self, level: Level) -> float:
        return {Level.PRESSURE: self.pressure, Level.THROTTLE: self.throttle, Level.CRITICAL: self.critical}[level]

    def resume(self, level: Level) -> float:
        return {
            Level.PRESSURE: self.pressure_resume,
            Level.THROTTLE: self.throttle_resume,
            Level.CRITICAL: self.critical_resume,
        }[level]


class MemoryReader(Protocol):
    """Where the governor reads memory use and its limit, in bytes."""

    def usage(self) -> int: ...

    def limit(self) -> int | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Transition:
    """One change of level, with the figures that caused it."""

    previous: Level
    level: Level
    usage: int
    limit: int
    at: float

    def message(self) -> str:
        return (
            f"memory {self.previous.name.lower()} -> {self.level.name.lower()}: "
            f"{self.usage / 2**20:,.0f} MiB of {self.limit / 2**20:,.0f} MiB ({self.usage / self.limit:.0%})"
        )


@dataclass
class MemoryGovernor:
    """Tracks the level; ``update`` reads memory once and returns a transition when the level changes."""

    settings: GovernorSettings
    reader: MemoryReader
    limit: int
    clock: Callable[[], float] = time.monotonic
    level: Level = Level.NORMAL
    usage: int = 0
    seconds_in: dict[Level, float] = field(default_factory=lambda: dict.fromkeys(Level, 0.0))
    transitions: int = 0
    _since: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise SpecError(f"memory limit must be positive, got {self.limit} bytes.")
        self._since = self.clock()

    @property
    def paused(self) -> bool:
        """Whether input should not be read (throttle and critical)."""
        return self.level >= Level.THROTTLE

    @property
    def seconds_paused(self) -> float:
        now = self.clock()
        ongoing = now - self._since if self.paused else 0.0
        return self.seconds_in[Level.THROTTLE] + self.seconds_in[Level.CRITICAL] + ongoing

    def _target(self, ratio: float) -> Level:
        level = self.level
        for candidate in (Level.CRITICAL, Level.THROTTLE, Level.PRESSURE):
            if candidate > level and ratio >= self.settings.entry(candidate):
                return candidate  # up at once, as far as the usage says
        if level > Level.NORMAL and ratio < self.settings.resume(level):
            return Level(level - 1)  # down one level at a time
        return level

    def update(self) -> Transition | None:
        self.usage = self.reader.usage()
        target = self._target(self.usage / self.limit)
        if target == self.level:
            return None
        now = self.clock()
        self.seconds_in[self.level] += now - self._since
        self._since = now
        transition = Transition(self.level, target, self.usage, self.limit, now)
        self.level = target
        self.transitions += 1
        return transition


class ProcessMemory:
    """This process's resident set size, and the cgroup limit when one applies."""

    def __init__(self, cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        self.cgroup_root = cgroup_root
        self._page = os.sysconf("SC_PAGE_SIZE")

    def usage(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def limit(self) -> int | None:
        return cgroup_limit(self.cgroup_root)

    def describe(self) -> str:
        return "process RSS"


def cgroup_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit of this process's cgroup (v2, else v1), or None when unlimited or unknown."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return value if value < 2**60 else None  # v1 reports "unlimited" as a huge number
    return None
