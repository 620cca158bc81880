"""Replay output files: lines of several partitions merged by (emission time, partition) as the run goes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.jsonl_files import ReplayFiles
from connectors.line_blocks import LineBlock, PendingLines
from connectors.line_source import WrittenRows

# Per partition, the emission times of its lines (each partition's times never go down).
partition_times = st.lists(st.integers(0, 40), max_size=30).map(sorted)


@st.composite
def emission_runs(draw: st.DrawFn) -> tuple[dict[int, list[int]], list[tuple[int, int, int]]]:
    """Lines of up to four partitions, and the order they reach the output in: (partition, first, end) slices.

    Each slice is what one batch of a partition emitted."""
    times = {p: draw(partition_times) for p in range(draw(st.integers(1, 4)))}
    pending = {p: 0 for p in times}
    slices: list[tuple[int, int, int]] = []
    while any(pending[p] < len(t) for p, t in times.items()):
        p = draw(st.sampled_from([p for p, t in times.items() if pending[p] < len(t)]))
        end = draw(st.integers(pending[p] + 1, len(times[p])))
        slices.append((p, pending[p], end))
        pending[p] = end
    return times, slices


def _results(files: ReplayFiles, partition: int, times: list[int], lines: list[bytes], pending: bool = False) -> None:
    """Hand ``files`` final results of ``partition`` emitted at ``times`` (lines given without breaks), written
    or (``pending``) to be written by their source."""
    at = np.asarray(times, dtype=np.int64)
    block = LineBlock.of(lines)
    files.results(
        partition,
        at,
        np.zeros_like(at),
        PendingLines(WrittenRows(block.data, block.starts)) if pending else block,
        final=True,
    )


def replay_output(
    out: Path,
    times: dict[int, list[int]],
    slices: list[tuple[int, int, int]],
    hold: int,
    write_back: int = 0,
    pending: frozenset[int] = frozenset(),
) -> bytes:
    """Feed the slices to ``ReplayFiles``, settling after each one as far as every partition's progress allows
    (and, with ``write_back`` N, having the files written back after every Nth slice); the slices numbered in
    ``pending`` come as lines still to be written."""
    files = ReplayFiles(out, hold_bytes=hold)
    sent = {p: 0 for p in times}
    for step, (p, first, end) in enumerate(slices, 1):
        if write_back and step % write_back == 0:
            files.write_back()
        lines = [b'{"p":%d,"i":%d,"t":%d}' % (p, i, times[p][i]) for i in range(first, end)]
        _results(files, p, times[p][first:end], lines, step in pending)
        sent[p] = end
        # a partition emits nothing earlier than its next line (or ever again, once done)
        next_times = [t[sent[q]] for q, t in times.items() if sent[q] < len(t)]
        if next_times:
            files.settle(min(next_times))
    files.finish()
    assert not (out / ".parts").exists()
    assert files.held_bytes == 0  # every line handed back counted off, whole chunks or parts of them
    return (out / "results.jsonl").read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    run=emission_runs(),
    hold=st.sampled_from([0, 100, 1 << 20]),
    write_back=st.integers(0, 3),
    pending=st.frozensets(st.integers(1, 30)),
)
def test_lines_come_out_by_time_then_partition_however_they_arrive(
    tmp_path_factory: pytest.TempPathFactory,
    run: tuple[dict[int, list[int]], list[tuple[int, int, int]]],
    hold: int,
    write_back: int,
    pending: frozenset[int],
) -> None:
    times, slices = run
    out = tmp_path_factory.mktemp("out")
    written = replay_output(out, times, slices, hold, write_back, pending)
    expected = sorted((t, p, i) for p, ts in times.items() for i, t in enumerate(ts))
    assert written == "".join(f'{{"p":{p},"i":{i},"t":{t}}}\n' for t, p, i in expected).encode()


def test_lines_held_beyond_the_budget_wait_in_part_files_and_come_back_in_order(tmp_path: Path) -> None:
    files = ReplayFiles(tmp_path, hold_bytes=150)  # a line costs its text and 16 bytes (time, offset)
    _results(files, 0, [5, 6], [b'{"a":1}', b'{"a":2}'])
    assert files.held_bytes > 0 and not (tmp_path / ".parts").exists()  # within the budget: in memory
    _results(files, 0, list(range(7, 12)), [b'{"a":%d}' % i for i in range(3, 8)])
    assert files.held_bytes == 0 and (tmp_path / ".parts" / "results-0.part").exists()  # over it: spilled
    _results(files, 1, [6], [b'{"b":1}'])
    files.settle(7)  # partition 1's line is in memory, partition 0's partly on disk
    assert files.held_bytes == 0
    _results(files, 0, [12], [b'{"a":8}'])
    files.finish()
    written = (tmp_path / "results.jsonl").read_text().splitlines()
    assert written == ['{"a":1}', '{"a":2}', '{"b":1}'] + [f'{{"a":{i}}}' for i in range(3, 9)]
    assert not (tmp_path / ".parts").exists()


def test_written_back_files_are_on_disk_and_stay_open_for_more(tmp_path: Path) -> None:
    # at memory pressure replay has the kernel write its files out (their page cache counts against a cgroup)
    files = ReplayFiles(tmp_path, hold_bytes=150)
    _results(files, 0, list(range(1, 8)), [b'{"a":%d}' % i for i in range(1, 8)])  # over the budget: a part file
    _results(files, 1, [1], [b'{"b":1}'])
    files.settle(2)
    files.write_back()
    assert (tmp_path / "results.jsonl").read_bytes() == b'{"a":1}\n{"b":1}\n'  # flushed, not left in a buffer
    assert (tmp_path / ".parts" / "results-0.part").stat().st_size > 0
    _results(files, 1, [9], [b'{"b":2}'])
    files.finish()
    written = (tmp_path / "results.jsonl").read_text().splitlines()
    assert written == ['{"a":1}', '{"b":1}'] + [f'{{"a":{i}}}' for i in range(2, 8)] + ['{"b":2}']
