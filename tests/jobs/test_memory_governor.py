"""The memory governor's state machine with an injected clock and memory reader."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from jobs.memory_governor import (
    CgroupMemory,
    GovernorSettings,
    Level,
    MemoryGovernor,
    ProcessMemory,
    cgroup_candidates,
    memory_cgroup,
    parse_size,
)
from windows.errors import SpecError

LIMIT = 1000


class Scripted:
    """A memory reader that returns the usages it is given, one per reading."""

    def __init__(self) -> None:
        self.value = 0

    def usage(self) -> int:
        return self.value

    def describe(self) -> str:
        return "scripted"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def governor() -> tuple[MemoryGovernor, Scripted, Clock]:
    reader, clock = Scripted(), Clock()
    return MemoryGovernor(GovernorSettings(), reader, LIMIT, clock), reader, clock


def feed(gov: MemoryGovernor, reader: Scripted, clock: Clock, usages: list[int]) -> list[Level]:
    levels = []
    for usage in usages:
        reader.value = usage
        clock.now += 1.0
        gov.update()
        levels.append(gov.level)
    return levels


def test_usage_hovering_at_a_threshold_does_not_flap() -> None:
    gov, reader, clock = governor()
    levels = feed(gov, reader, clock, [699, 700, 699, 701, 690, 660, 700, 655, 649, 651, 690])
    assert levels == [
        Level.NORMAL, Level.PRESSURE, Level.PRESSURE, Level.PRESSURE, Level.PRESSURE, Level.PRESSURE,
        Level.PRESSURE, Level.PRESSURE, Level.NORMAL, Level.NORMAL, Level.NORMAL,
    ]  # fmt: skip
    assert gov.transitions == 2


def test_levels_rise_at_once_and_fall_one_at_a_time() -> None:
    gov, reader, clock = governor()
    assert feed(gov, reader, clock, [960]) == [Level.CRITICAL]
    assert gov.paused
    levels = feed(gov, reader, clock, [500, 500, 500, 500])
    assert levels == [Level.THROTTLE, Level.PRESSURE, Level.NORMAL, Level.NORMAL]
    assert not gov.paused


def test_transitions_carry_their_figures_and_time_is_accounted_per_level() -> None:
    gov, reader, clock = governor()
    reader.value = 870
    clock.now += 5
    transition = gov.update()
    assert transition is not None and (transition.previous, transition.level) == (Level.NORMAL, Level.THROTTLE)
    assert transition.message() == "memory normal -> throttle: 0 MiB of 0 MiB (87%)"
    clock.now += 3  # three seconds paused so far, while still throttled
    assert gov.seconds_paused == pytest.approx(3.0)
    reader.value = 100
    assert gov.update() is not None  # throttle -> pressure
    clock.now += 2
    assert gov.update() is not None  # pressure -> normal
    assert gov.seconds_in[Level.NORMAL] == pytest.approx(5.0)
    assert gov.seconds_in[Level.THROTTLE] == pytest.approx(3.0)
    assert gov.seconds_in[Level.PRESSURE] == pytest.approx(2.0)
    assert gov.seconds_paused == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pressure": 0.9, "throttle": 0.85}, "must rise"),
        ({"throttle_resume": 0.9}, "throttle_resume \\(0.9\\) must be above 0 and below throttle"),
    ],
)
def test_inconsistent_thresholds_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        GovernorSettings(**settings)


def cgroup_limit(root: Path, proc: Path) -> int | None:
    found = memory_cgroup(root, proc)
    return None if found is None else found[1]


def test_the_tightest_cgroup_limit_applies_over_the_process_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/jobs/winnow\n0::/jobs/winnow\n")
    root = tmp_path / "fs"
    assert cgroup_limit(root, proc) is None
    v1 = root / "memory" / "jobs" / "winnow"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_limit(root, proc) is None  # v1's "unlimited"
    (v1.parent / "memory.limit_in_bytes").write_text("536870912\n")
    assert cgroup_limit(root, proc) == 536870912  # the parent's limit binds the child
    v2 = root / "jobs" / "winnow"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text("max\n")
    assert cgroup_limit(root, proc) == 536870912
    (v2 / "memory.max").write_text("268435456\n")
    assert cgroup_limit(root, proc) == 268435456
    (v2 / "memory.current").write_text("200000000\n")
    (v2 / "memory.stat").write_text("anon 150000000\ninactive_file 50000000\n")
    limited = memory_cgroup(root, proc)
    assert limited is not None
    assert CgroupMemory(limited[0]).usage() == 150_000_000  # reclaimable file cache does not count
    # file cache not yet on disk cannot be dropped at once: it counts, whether dirty or being written
    (v2 / "memory.stat").write_text(
        "anon 150000000\ninactive_file 50000000\nfile_dirty 8000000\nfile_writeback 2000000\n"
    )
    assert CgroupMemory(limited[0]).usage() == 160_000_000
    (v1 / "memory.usage_in_bytes").write_text("300000000\n")
    (v1 / "memory.stat").write_text("cache 90000000\ntotal_inactive_file 80000000\ntotal_dirty 30000000\n")
    v1_files = next(files for files in cgroup_candidates(root, proc) if files.usage.parent == v1)
    assert CgroupMemory(v1_files).usage() == 250_000_000
    (v1 / "memory.stat").write_text(
        "total_inactive_file 80000000\ntotal_dirty 90000000\n"
    )  # dirty pages on the active list
    assert CgroupMemory(v1_files).usage() == 300_000_000


@pytest.mark.parametrize(
    ("text", "size"), [("512M", 512 * 2**20), ("2g", 2 * 2**30), ("1.5GiB", 3 * 2**29), ("4096", 4096), ("64kb", 65536)]
)
def test_memory_sizes_parse_with_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "12X"])
def test_bad_memory_sizes_are_refused_by_name(text: str) -> None:
    with pytest.raises(SpecError, match=f"memory size {text!r}"):
        parse_size(text)


def test_the_process_reader_sees_memory_grow() -> None:
    reader = ProcessMemory()
    before = reader.usage()
    # fresh pages from the system (a heap allocation may reuse freed pages the process already holds)
    with mmap.mmap(-1, 64 * 2**20) as block:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        assert reader.usage() >= before + 60 * 2**20
