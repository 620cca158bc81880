"""Reserving an output file's blocks ahead of its writes: on the real file system of the test's temp dir,
the file's size stays what was written, its blocks cover the reservation while writing, and closing gives
the rest back; where nothing can be reserved, writes go on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from connectors.file_space import reserve
from connectors.jsonl_files import ReservingWriter

MIB = 1 << 20


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _reserves_here(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    with open(probe, "wb") as handle:
        return reserve(handle.fileno(), 0, MIB) == 0


def test_reserve_keeps_the_size_and_allocates_the_blocks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open(path, "wb") as handle:
        error = reserve(handle.fileno(), 0, 4 * MIB)
        if error == errno.EOPNOTSUPP:
            pytest.skip("the temp dir's file system reserves no blocks")
        assert error == 0
        assert os.fstat(handle.fileno()).st_size == 0
        assert _allocated(path) >= 4 * MIB


def test_reserve_answers_the_error_where_it_cannot_and_refuses_bad_ranges() -> None:
    read, write = os.pipe()
    try:
        assert reserve(write, 0, MIB) == errno.ESPIPE
        with pytest.raises(ValueError, match="cannot reserve 0 bytes at offset 0"):
            reserve(write, 0, 0)
        with pytest.raises(ValueError, match="at offset -1"):
            reserve(write, -1, 10)
    finally:
        os.close(read)
        os.close(write)


def test_writer_reserves_ahead_and_gives_back_the_rest_on_close(tmp_path: Path) -> None:
    if not _reserves_here(tmp_path):
        pytest.skip("the temp dir's file system reserves no blocks")
    path = tmp_path / "out.jsonl"
    pieces = [bytes([65 + i]) * size for i, size in enumerate([100, 3 * MIB, 5 * MIB, 1])]
    writer = ReservingWriter(path, buffering=1 << 16, ahead=2 * MIB)
    reserved = []  # after each write
    try:
        for piece in pieces:
            writer.write(memoryview(piece))
            reserved.append(writer.reserved)
            writer.flush()
            assert os.stat(path).st_size == writer.written  # the reserved blocks past it are not in the file
            assert _allocated(path) >= writer.reserved
    finally:
        writer.close()
    writer.close()  # a second close does nothing

    # 2 MiB ahead, another 2 when a write reaches past them, and as much as a longer write needs
    assert reserved == [2 * MIB, 4 * MIB, 8 * MIB + 100, 10 * MIB + 100]
    assert path.read_bytes() == b"".join(pieces)
    assert _allocated(path) < writer.written + 64 * 1024  # the reserved blocks past the end were given back


def test_writer_goes_on_unreserved_where_nothing_can_be_reserved(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    writer = ReservingWriter(Path(f"/dev/fd/{write}"), buffering=0, ahead=MIB)
    try:
        assert writer.write(b"one line\n") == 9
        assert writer.reserved == 0
        assert os.read(read, 100) == b"one line\n"
    finally:
        writer.close()
        os.close(read)
        os.close(write)
