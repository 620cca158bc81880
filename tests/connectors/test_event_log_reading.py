"""Reading event logs in chunks: the block reader against a plain line-by-line statement of the same."""

from __future__ import annotations

import gzip
import os
import re
import threading
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import ConnectorError
from connectors.jsonl_files import GZIP_READ_BYTES, read_event_chunks


def chunks(path: Path, chunk_lines: int, skip_lines: int = 0, **options: int) -> list[tuple[list[bytes], list[int]]]:
    """The reader's chunks as plain lists: each chunk's events as bytes, and their line numbers."""
    return [
        (list(events), numbers.tolist())
        for events, numbers in read_event_chunks(path, chunk_lines, skip_lines, **options)
    ]


def reference_chunks(path: Path, chunk_lines: int, skip_lines: int) -> list[tuple[list[bytes], list[int]]]:
    """What the reader must yield, one Python step per line: each ``chunk_lines`` lines, their non-blank
    lines past ``skip_lines`` without line breaks, with their line numbers."""
    chunks = []
    line_no = 0
    with open(path, "rb") as handle:
        while lines := list(islice(handle, chunk_lines)):
            events, numbers = [], []
            for line in lines:
                line_no += 1
                stripped = line.rstrip(b"\r\n")
                if line_no > skip_lines and stripped.strip():
                    events.append(stripped)
                    numbers.append(line_no)
            if events:
                chunks.append((events, numbers))
    return chunks


# Lines of JSON, blanks of every kind, white space before text, and stray carriage returns.
log_lines = st.lists(
    st.sampled_from([b'{"k":"a","ts":1}', b"", b"   ", b"\t\x0b\x0c", b" {}", b"\r", b"x\r", b"[1, 2]", b"\xff\xfe"])
    | st.binary(max_size=12).filter(lambda line: b"\n" not in line),
    max_size=60,
)
# a log of those lines with or without a last line break, and how it is read: chunks, lines skipped, read size
log_cases = given(
    lines=log_lines,
    final_break=st.booleans(),
    chunk_lines=st.integers(1, 9),
    skip_lines=st.integers(0, 12),
    block_bytes=st.integers(1, 64),
)


def _log_text(lines: list[bytes], final_break: bool) -> bytes:
    return b"\n".join(lines) + (b"\n" if final_break and lines else b"")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@log_cases
def test_chunks_match_a_line_by_line_reading(
    tmp_path: Path, lines: list[bytes], final_break: bool, chunk_lines: int, skip_lines: int, block_bytes: int
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_log_text(lines, final_break))
    got = chunks(path, chunk_lines, skip_lines, block_bytes=block_bytes)
    assert got == reference_chunks(path, chunk_lines, skip_lines)


def test_gzip_logs_read_the_same_as_plain_ones(tmp_path: Path) -> None:
    text = b"".join(b'{"n":%d}\r\n' % i if i % 7 else b"  \n" for i in range(5_000))
    plain, packed = tmp_path / "events.jsonl", tmp_path / "events.jsonl.gz"
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text))
    got = chunks(packed, 999, 10, block_bytes=4096)
    assert got == chunks(plain, 999, 10) == reference_chunks(plain, 999, 10)
    assert sum(len(events) for events, _ in got) == 5_000 - 10 - 5_000 // 7 + 10 // 7


def test_a_damaged_gzip_log_yields_what_it_could_read_then_names_the_last_line(tmp_path: Path) -> None:
    packed = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(400_000)))
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    got: list[bytes] = []
    with pytest.raises(ConnectorError, match=r"is damaged after line \d+") as damaged:
        for events, numbers in read_event_chunks(path, 10_000):
            assert numbers.tolist() == list(range(len(got) + 1, len(got) + len(events) + 1))
            got += list(events)
    # reading line by line gets further; the blocks lose at most the read that met the damage and the
    # lines read since the last whole chunk
    read_by_lines: list[bytes] = []
    with pytest.raises(EOFError), gzip.open(path, "rb") as handle:
        read_by_lines.extend(line.rstrip(b"\n") for line in handle)
    assert got == read_by_lines[: len(got)] and len(got) > 100_000
    assert sum(len(line) + 1 for line in read_by_lines[len(got) :]) <= 2 * GZIP_READ_BYTES + 2 * 10_000 * 16
    # the line named is the last whole one read: past every chunk handed out, within a read of the end
    named = int(re.search(r"after line (\d+)", str(damaged.value)).group(1))  # type: ignore[union-attr]
    assert len(got) < named <= len(read_by_lines)
    assert sum(len(line) + 1 for line in read_by_lines[named:]) <= GZIP_READ_BYTES


@pytest.mark.parametrize("chunk_lines", [0, -3])
def test_a_chunk_of_no_lines_is_refused(tmp_path: Path, chunk_lines: int) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(ValueError, match=f"at least one line, not {chunk_lines}"):
        next(read_event_chunks(path, chunk_lines))


def test_a_long_line_read_in_many_blocks_is_one_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    long_line = b'{"pad":"' + b"x" * 300_000 + b'"}'
    path.write_bytes(b"{}\n" + long_line + b"\n{}")
    assert chunks(path, 10, block_bytes=1_000) == [([b"{}", long_line, b"{}"], [1, 2, 3])]


def test_small_reads_into_large_chunks_scan_each_byte_a_few_times_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a compressed log is read 64 KiB at a time; joining every read to all the text left over would scan
    # a chunk's text once per read (quadratic): reads wait until they hold about what the chunk still needs
    from connectors import jsonl_files

    text = b"".join(b'{"n":%d}\n' % i for i in range(200_000))  # 2.4 MB
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(text))
    scanned: list[int] = []
    spans = jsonl_files.line_spans

    def counted(data: bytes, limit: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scanned.append(len(data) if limit < 0 else limit)
        return spans(data, limit)

    monkeypatch.setattr(jsonl_files, "line_spans", counted)
    got = chunks(path, 50_000)
    assert [len(events) for events, _ in got] == [50_000] * 4
    assert sum(scanned) <= 3 * len(text), (sum(scanned), len(scanned))


def _through_a_pipe(
    text: bytes, chunk_lines: int, skip_lines: int, block_bytes: int
) -> list[tuple[list[bytes], list[int]]]:
    """``chunks`` of ``text`` written into a pipe by another thread (read through /dev/fd: a stream)."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        try:
            with open(write_end, "wb") as pipe:
                pipe.write(text)
        except BrokenPipeError:  # the reader stopped early (and the test fails on what it got)
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return chunks(Path(f"/dev/fd/{read_end}"), chunk_lines, skip_lines, block_bytes=block_bytes)
    finally:
        os.close(read_end)  # a writer still waiting then stops
        writer.join(timeout=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@log_cases
def test_a_log_from_a_pipe_reads_the_same_as_from_a_file(
    tmp_path: Path, lines: list[bytes], final_break: bool, chunk_lines: int, skip_lines: int, block_bytes: int
) -> None:
    # a regular file is read at offsets (lines left over are read again); a pipe as a stream, opened once
    text = _log_text(lines, final_break)
    path = tmp_path / "events.jsonl"
    path.write_bytes(text)
    got = _through_a_pipe(text, chunk_lines, skip_lines, block_bytes)
    assert got == chunks(path, chunk_lines, skip_lines, block_bytes=block_bytes)
    assert got == reference_chunks(path, chunk_lines, skip_lines)


def test_reads_cut_short_anywhere_still_read_the_whole_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one read returns at most about 2 GiB on Linux, less on some file systems: only an empty one ends the log
    from connectors import jsonl_files

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n":%d}\n' % i for i in range(1_000)) + b'{"last":1}')
    real_pread = os.pread
    monkeypatch.setattr(jsonl_files.os, "pread", lambda fd, size, offset: real_pread(fd, min(size, 777), offset))
    got = chunks(path, 300, block_bytes=4096)
    assert got == reference_chunks(path, 300, 0)
    assert sum(len(events) for events, _ in got) == 1_001


def test_a_directory_is_no_event_log(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ConnectorError, match=f"cannot open event log {tmp_path}: Is a directory"):
        next(read_event_chunks(tmp_path, 10))
    assert len(os.listdir("/proc/self/fd")) == before  # and nothing left open
