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

    @classmethod
    def from_percentages(cls, text: str) -> GovernorSettings:
        """Settings from ``PRESSURE,THROTTLE,CRITICAL`` percentages of the limit (each resumes 5 points below)."""
        parts = text.split(",")
        try:
            values = [float(part) / 100 for part in parts]
        except ValueError:
            values = []
        if len(values) != 3:
            raise SpecError(f"memory thresholds {text!r} must be three percentages, e.g. 70,85,95.")
        pressure, throttle, critical = values
        return cls(pressure, throttle, critical, pressure - 0.05, throttle - 0.05, critical - 0.05)

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
    since: float = field(default=-1.0)  # when the current level was entered

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise SpecError(f"memory limit must be positive, got {self.limit} bytes.")
        self.since = self.clock()

    @property
    def paused(self) -> bool:
        """Whether input should not be read (throttle and critical)."""
        return self.level >= Level.THROTTLE

    @property
    def seconds_paused(self) -> float:
        now = self.clock()
        ongoing = now - self.since if self.paused else 0.0
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
        self.seconds_in[self.level] += now - self.since
        self.since = now
        transition = Transition(self.level, target, self.usage, self.limit, now)
        self.level = target
        self.transitions += 1
        return transition


class ProcessMemory:
    """This process's resident set size."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")

    def usage(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def describe(self) -> str:
        return "process RSS"


@dataclass(frozen=True)
class CgroupFiles:
    """The files of one cgroup that hold its memory limit, usage and statistics."""

    limit: Path
    usage: Path
    stat: Path
    inactive_file: str  # the memory.stat field of file cache not used lately
    dirty: tuple[str, str]  # the memory.stat fields of file cache not yet written and being written


def _v2(directory: Path) -> CgroupFiles:
    return CgroupFiles(
        directory / "memory.max",
        directory / "memory.current",
        directory / "memory.stat",
        "inactive_file",
        ("file_dirty", "file_writeback"),
    )


def _v1(directory: Path) -> CgroupFiles:
    return CgroupFiles(
        directory / "memory.limit_in_bytes",
        directory / "memory.usage_in_bytes",
        directory / "memory.stat",
        "total_inactive_file",
        ("total_dirty", "total_writeback"),
    )


def cgroup_candidates(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> list[CgroupFiles]:
    """This process's memory cgroup and its ancestors (v2 and v1), innermost first."""
    found: list[CgroupFiles] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = Path(path.lstrip("/"))
        chain = [relative, *relative.parents] if str(relative) != "." else [Path(".")]
        if hierarchy == "0" and controllers == "":
            for base in (root, root / "unified"):
                found += [_v2(base / part) for part in chain]
        elif "memory" in controllers.split(","):
            found += [_v1(root / "memory" / part) for part in chain]
    found += [_v2(root), _v1(root / "memory")]  # a container's namespace roots at its own cgroup
    return found


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if value < 2**60 else None  # v1 reports "unlimited" as a huge number


def memory_cgroup(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> tuple[CgroupFiles, int] | None:
    """The cgroup with the tightest memory limit over this process's cgroups, and that limit."""
    best: tuple[CgroupFiles, int] | None = None
    for files in cgroup_candidates(root, proc_cgroup):
        limit = _read_limit(files.limit)
        if limit is not None and (best is None or limit < best[1]):
            best = (files, limit)
    return best


class CgroupMemory:
    """A cgroup's working set: its usage less the file cache the kernel can drop at once (inactive and
    clean). Dirty pages and pages being written count as used: the kernel cannot reclaim them until
    they reach the disk, and a cgroup v1 that fills with them is OOM-killed like one full of heap."""

    def __init__(self, files: CgroupFiles) -> None:
        self.files = files

    def usage(self) -> int:
        files = self.files
        try:
            usage = int(files.usage.read_text())
            stat: dict[str, int] = {}
            for line in files.stat.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == files.inactive_file or name in files.dirty:
                    stat[name] = int(value)
        except (OSError, ValueError):
            return ProcessMemory().usage()
        # unwritten pages sit on either list; taking them all from the inactive one errs toward more usage
        unwritten = sum(stat.get(name, 0) for name in files.dirty)
        droppable = max(0, stat.get(files.inactive_file, 0) - unwritten)
        return max(0, usage - droppable)

    def describe(self) -> str:
        return f"cgroup working set ({self.files.usage.parent})"


def physical_memory() -> int:
    """The machine's memory (MemTotal), the limit when nothing tighter is known."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError("no MemTotal in /proc/meminfo")


def detect_memory(explicit_limit: int | None) -> tuple[MemoryReader, int, str]:
    """The reader and limit to govern by, and where the limit came from.

    A cgroup limit is read as the cgroup's working set; ``--memory-limit`` (if
    tighter) is held against the process's RSS; with neither, the machine's memory.
    """
    cgroup = memory_cgroup()
    if cgroup is not None and (explicit_limit is None or cgroup[1] <= explicit_limit):
        files, limit = cgroup
        return CgroupMemory(files), limit, f"cgroup limit {files.limit}"
    if explicit_limit is not None:
        return ProcessMemory(), explicit_limit, "--memory-limit"
    return ProcessMemory(), physical_memory(), "machine memory (no cgroup limit, no --memory-limit)"


_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes from a size such as ``512M``, ``2G``, ``1.5g`` or ``1048576`` (binary units)."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS and not cleaned[-1:].isdigit() else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise SpecError(f"memory size {text!r} is not a number with an optional K, M, G or T unit.") from None
    if value <= 0:
        raise SpecError(f"memory size {text!r} must be positive.")
    return int(value)
