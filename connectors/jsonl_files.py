"""JSON Lines files: reading event logs in chunks, and writing replay output deterministically."""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import shutil
import stat
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from connectors.errors import ConnectorError
from connectors.event_decoding import LateRecord, Rejected
from connectors.event_lines import EventLines
from connectors.event_scan import line_spans
from connectors.file_space import reserve
from connectors.line_blocks import DecisionBlock, LineBlock, Lines
from connectors.line_gather import write_merged
from windows.errors import reason
from windows.events import Int64Array


def _open_gzip(path: Path) -> io.BufferedReader:
    """Open a ``.jsonl.gz`` event log for reading as a stream."""
    try:
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)  # type: ignore[arg-type]
    except OSError as error:
        raise ConnectorError(f"cannot open event log {path}: {error.strerror or error}.") from None


#: The write buffer of the merged output files: smaller than the pieces written to them (see ``ReplayFiles``).
MERGED_FILE_BUFFER = 1 << 16
#: How far ahead of its writes a merged output file has its disk blocks reserved (``ReservingWriter``).
RESERVE_AHEAD_BYTES = 64 << 20


class ReservingWriter:
    """A file written from its start, whose disk blocks are reserved ``ahead`` bytes at a time before the
    writes reach them (``connectors.file_space``: the kernel then fills blocks in instead of allocating
    them page by page). The file's size is always what was written; ``close`` gives back the reserved
    blocks left over. Where the file system cannot reserve (or has no room to), writes go on unreserved."""

    def __init__(self, path: Path, buffering: int, ahead: int = RESERVE_AHEAD_BYTES) -> None:
        self._file = open(path, "wb", buffering=buffering)
        self.ahead = ahead
        self.written = 0
        self.reserved = 0  # bytes from the file's start whose blocks are reserved
        self._reserving = True
        self._partly = False  # a reservation that failed may have reserved some blocks

    def write(self, data: bytes | bytearray | memoryview) -> int:
        end = self.written + len(data)
        if end > self.reserved and self._reserving:
            length = max(self.ahead, end - self.reserved)
            error = reserve(self._file.fileno(), self.reserved, length)
            if error == 0:
                self.reserved += length
            else:
                self._reserving = False
                self._partly |= error == errno.ENOSPC  # a full disk may have taken part of it
        count = self._file.write(data)
        self.written = end
        return count

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.flush()
        finally:
            try:  # blocks reserved past the end stay reserved until the file is cut there
                if self.reserved or self._partly:
                    os.ftruncate(self._file.fileno(), self.written)
            finally:
                self._file.close()


#: Bytes read from an event log at a time (at most); from a compressed log, less: a damaged one loses
#: the read that meets the damage.
READ_BLOCK_BYTES = 1 << 22
GZIP_READ_BYTES = 1 << 16


def read_event_chunks(
    path: Path, chunk_lines: int, skip_lines: int = 0, *, block_bytes: int = READ_BLOCK_BYTES
) -> Iterator[tuple[EventLines, Int64Array]]:
    """Yield ``(events, line numbers)`` for each ``chunk_lines`` lines; blank lines carry no event, and the
    first ``skip_lines`` lines are passed over.

    A chunk's events are spans of one buffer (``EventLines``), whose lines are
    found in C (``event_scan.line_spans``); no ``bytes`` object is made per
    line. A regular file is read at offsets, about a chunk at a time, each read
    starting at the first line not handed out yet (``_chunks_at_offsets``).
    A compressed log or a pipe is read as a stream: reads are joined to the
    text left from before (lines not handed out yet, and the start of a line
    whose break is still to come) once they hold about a chunk's worth. Each
    byte is copied and scanned about twice however small the reads (a
    compressed log's) or long the lines: the text joined each time is at least
    twice what was left over.
    """
    if chunk_lines < 1:
        raise ValueError(f"event log chunks hold at least one line, not {chunk_lines}.")
    if path.suffix == ".gz":
        block_bytes = min(block_bytes, GZIP_READ_BYTES)
        handle = _open_gzip(path)
    else:
        fd, regular = _open_plain(path)
        if regular:
            yield from _chunks_at_offsets(path, fd, chunk_lines, skip_lines, block_bytes)
            return
        try:
            handle = io.BufferedReader(io.FileIO(fd, "rb"), buffer_size=1 << 20)  # a pipe: opened once only
        except OSError as error:
            os.close(fd)
            raise ConnectorError(f"cannot open event log {path}: {error.strerror or error}.") from None
    rest = b""  # text read and not handed out; it starts at line ``first``
    reads: list[bytes] = []  # reads not joined to it yet
    waiting = 0  # their bytes
    first = 1
    wanted = block_bytes  # join once this many bytes wait
    with handle:
        try:
            while True:
                block = handle.read1(block_bytes)
                if block:
                    reads.append(block)
                    waiting += len(block)
                    if waiting < wanted:
                        continue
                elif not rest and not reads:
                    return
                data = b"".join([rest, *reads]) if rest else b"".join(reads)
                reads, waiting = [], 0
                # the whole lines end at the last break; at the end of the log, so does a last line without one
                whole = data.rfind(b"\n") if block or data.endswith(b"\n") else len(data)
                if whole < 0:  # a line longer than what was read: read on, twice as much before the next join
                    rest, wanted = data, 2 * len(data)
                    continue
                starts, ends, blank = line_spans(data, whole)
                lines = starts.shape[0]
                taken = yield from _chunks_of(data, starts, ends, blank, chunk_lines, first, skip_lines, not block)
                first += taken
                if not block:
                    return
                rest = data[int(starts[taken]) :] if taken < lines else data[whole + 1 :]
                # about what the rest of a chunk takes, and never less than the rest itself
                wanted = max(block_bytes, 2 * len(rest), (chunk_lines - (lines - taken)) * (whole + 1) // lines)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            # the last line whose break was read: those handed out, then those in the text read since
            read = first - 1 + rest.count(b"\n") + sum(text.count(b"\n") for text in reads)
            raise ConnectorError(f"event log {path} is damaged after line {read}: {reason(error)}.") from None


def _open_plain(path: Path) -> tuple[int, bool]:
    """A descriptor of an uncompressed event log, open for reading, and whether the log is a regular file
    (which reads at any offset; a pipe or a device is read as a stream). A directory is refused."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise ConnectorError(f"cannot open event log {path}: {error.strerror or error}.") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        os.close(fd)
        raise ConnectorError(f"cannot open event log {path}: {error.strerror or error}.") from None
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise ConnectorError(f"cannot open event log {path}: Is a directory.")
    return fd, stat.S_ISREG(mode)


def _read_at(fd: int, wanted: int, offset: int) -> bytes:
    """``wanted`` bytes of ``fd`` from ``offset``, fewer only at the file's end (one read may return less
    anywhere: at most about 2 GiB on Linux, less on some file systems)."""
    data = os.pread(fd, wanted, offset)
    if 0 < len(data) < wanted:
        parts = [data]
        got = len(data)
        while got < wanted:
            more = os.pread(fd, wanted - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def _chunks_at_offsets(
    path: Path, fd: int, chunk_lines: int, skip_lines: int, block_bytes: int
) -> Iterator[tuple[EventLines, Int64Array]]:
    """``read_event_chunks`` of a regular file (open as ``fd``, which this closes): each read takes the text
    from the first line not handed out yet, about a chunk's worth, at that line's offset in the file. The
    lines it leaves over are read again with the next, instead of the next being joined to them: each
    byte is copied once, and scanned once, plus the few lines past each chunk's end."""
    offset = 0  # where the first line not handed out starts; it is line ``first``
    first = 1
    wanted = block_bytes
    try:
        while True:
            data = _read_at(fd, wanted, offset)
            end = len(data) < wanted  # only at the file's end
            if not data:
                return
            # the whole lines end at the last break; at the end of the log, so does a last line without one
            whole = len(data) if end and not data.endswith(b"\n") else data.rfind(b"\n")
            if whole < 0:  # a line longer than what was read: read twice as much
                wanted *= 2
                continue
            starts, ends, blank = line_spans(data, whole)
            lines = starts.shape[0]
            taken = yield from _chunks_of(data, starts, ends, blank, chunk_lines, first, skip_lines, end)
            first += taken
            if end:
                return
            left = int(starts[taken]) if taken < lines else whole + 1  # the first byte not handed out
            offset += left
            rest = len(data) - left
            # the rest again, and what the rest of a chunk takes beyond it at the lines' mean length, with an
            # eighth more to spare (a read that falls short is read again, twice as long); at least twice the rest
            needed = (chunk_lines - (lines - taken)) * (whole + 1) // max(lines, 1)
            wanted = max(block_bytes, 2 * rest, rest + needed + needed // 8)
    except OSError as error:
        raise ConnectorError(f"event log {path} is damaged after line {first - 1}: {reason(error)}.") from None
    finally:
        os.close(fd)


def _chunks_of(
    data: bytes,
    starts: Int64Array,
    ends: Int64Array,
    blank: np.ndarray,
    chunk_lines: int,
    first: int,
    skip_lines: int,
    every: bool,
) -> Generator[tuple[EventLines, Int64Array], None, int]:
    """Yield the chunks of the lines found in ``data`` (spans, the first numbered ``first``): each
    ``chunk_lines`` lines, and at the log's end (``every``) the lines left too; return how many lines
    were handed out."""
    lines = starts.shape[0]
    taken = 0
    while lines - taken >= chunk_lines or (every and taken < lines):
        high = min(taken + chunk_lines, lines)
        chunk = _chunk(data, starts, ends, blank, taken, high, first + taken, skip_lines)
        taken = high
        if chunk is not None:
            yield chunk
    return taken


def _chunk(
    data: bytes,
    starts: Int64Array,
    ends: Int64Array,
    blank: np.ndarray,
    low: int,
    high: int,
    first: int,
    skip_lines: int,
) -> tuple[EventLines, Int64Array] | None:
    """The events among lines ``[low, high)`` of ``data`` (numbered from ``first``) and their line numbers,
    or None when none."""
    numbers = np.arange(first, first + high - low, dtype=np.int64)
    kept = ~blank[low:high]
    if skip_lines >= first:
        kept &= numbers > skip_lines
    if kept.all():
        return EventLines(data, starts[low:high], ends[low:high]), numbers
    if not kept.any():
        return None
    return EventLines(data, starts[low:high][kept], ends[low:high][kept]), numbers[kept]


class _Chunk:
    """Lines one call handed over: their emission times, and the lines while they are in memory (written or
    still to be written), or once spilled to the part file, their offsets there."""

    __slots__ = ("lines", "starts", "times")

    def __init__(self, times: Int64Array, lines: Lines) -> None:
        self.times = times
        self.lines: Lines | None = lines
        self.starts: Int64Array | None = None  # once spilled


class _HeldLines:
    """One partition's output lines of one kind, in emission order, waiting to be merged.

    The newest lines are in memory; ``spill`` moves them to the end of a file,
    and ``pop_ready`` hands lines back oldest first, from the file before memory.
    Spilled chunks keep their times and line offsets in memory (16 bytes a line,
    which ``held_bytes`` leaves out: spilling cannot free them), so reading them
    back is one read of a known length.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chunks: deque[_Chunk] = deque()  # oldest first; the spilled ones before those in memory
        self.held_bytes = 0  # about the memory the lines in memory take
        self._writer: IO[bytes] | None = None
        self._reader: IO[bytes] | None = None

    def add(self, emitted_at: Int64Array, lines: Lines) -> None:
        self.chunks.append(_Chunk(emitted_at, lines))
        self.held_bytes += lines.nbytes + 16 * len(lines)  # lines (or their rows), and their offsets and times

    def pop_ready(self, before: int | None) -> tuple[list[Int64Array], list[Lines]]:
        """The held lines emitted before ``before`` (None: all), oldest first, as blocks with the emission
        times of each; they are no longer held. Only the ready chunks are touched, so a partition that holds lines for
        long costs nothing per call."""
        times: list[Int64Array] = []
        blocks: list[Lines] = []
        chunks = self.chunks
        while chunks:
            chunk = chunks[0]
            n = chunk.times.shape[0]
            # the whole chunk (its times ascend), the usual case: no search, and its lines as they are
            if n == 0 or before is None or chunk.times[n - 1] < before:
                times.append(chunk.times)
                blocks.append(self._take_all(chunk))
                chunks.popleft()
                continue
            count = int(np.searchsorted(chunk.times, before, "left"))
            if count:
                times.append(chunk.times[:count])
                blocks.append(self._take(chunk, count))
            break
        return times, blocks

    def _take_all(self, chunk: _Chunk) -> Lines:
        """Every line of ``chunk`` (the oldest held, which is then dropped), no longer held."""
        if chunk.lines is None:
            return self._take(chunk, chunk.times.shape[0])
        self.held_bytes -= chunk.lines.nbytes + 16 * len(chunk.lines)
        return chunk.lines

    def _take(self, chunk: _Chunk, count: int) -> Lines:
        """The first ``count`` lines of ``chunk`` (the oldest held), no longer held."""
        if chunk.lines is None:  # spilled: the next bytes of the part file
            assert self._writer is not None and chunk.starts is not None
            starts = chunk.starts
            self._writer.flush()
            if self._reader is None:
                self._reader = open(self.path, "rb", buffering=0)
            size = int(starts[count] - starts[0])
            data = self._reader.read(size)
            if len(data) != size:
                raise OSError(f"part file {self.path} ended {size - len(data)} bytes early")
            taken: Lines = LineBlock(data, starts[: count + 1] - starts[0])
            chunk.starts = starts[count:]
        else:
            lines = chunk.lines
            taken, chunk.lines = lines.rows(0, count), lines.rows(count, len(lines))
            self.held_bytes -= taken.nbytes + 16 * count
        chunk.times = chunk.times[count:]
        return taken

    def spill(self) -> None:
        """Move the lines held in memory to the end of the file (writing those not written yet)."""
        in_memory = [chunk for chunk in self.chunks if chunk.lines is not None]
        if not in_memory:
            return
        if self._writer is None:
            self._writer = open(self.path, "wb", buffering=1 << 20)
        for chunk in in_memory:
            assert chunk.lines is not None
            written = chunk.lines.alone()
            self._writer.write(written.text())
            chunk.lines, chunk.starts = None, written.starts
        self.held_bytes = 0

    def close(self) -> None:
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()

    def handles(self) -> list[IO[bytes]]:
        return [handle for handle in (self._writer, self._reader) if handle is not None]


def write_back(handle: IO[bytes] | ReservingWriter) -> None:
    """Flush ``handle`` and ask the kernel to start writing its file out and to drop what is already on disk
    from the page cache (``POSIX_FADV_DONTNEED``: asynchronous, nothing waits for the disk)."""
    handle.flush()
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # advice only (a pipe, say, takes none): the lines are written anyway
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class ReplayFiles:
    """The replay output directory.

    Late and rejected events are written straight to ``late.jsonl`` and
    ``rejected.jsonl`` in source order. Results, updates and decisions arrive
    per partition in emission order and are merged by ``(emission time,
    partition)``, so the files are identical whatever the batch size. Lines are
    held until every partition's stream time has passed their emission time
    (a partition never emits earlier than its stream time), then merged and
    written; ``settle`` does that as the run goes. Lines still to be written
    (``PendingLines``) are held as their rows' columns and written by the
    merge (``line_gather.write_merged``). Held lines beyond
    ``hold_bytes`` (or all of them, on ``spill``) wait in part files instead
    of memory, written.
    """

    MERGED = ("results", "updates", "decisions")

    def __init__(self, out_dir: Path, *, hold_bytes: int = 64 << 20) -> None:
        self.out_dir = out_dir
        self.parts_dir = out_dir / ".parts"
        self.hold_bytes = hold_bytes
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            if self.parts_dir.exists():
                shutil.rmtree(self.parts_dir)
            self._late = open(out_dir / "late.jsonl", "wb")
            self._rejected = open(out_dir / "rejected.jsonl", "wb")
            # lines reach these files in pieces of up to a megabyte (``write_merged``'s buffer); a file buffer
            # smaller than those passes them straight to the file instead of copying them
            self._merged = {
                kind: ReservingWriter(out_dir / f"{kind}.jsonl", MERGED_FILE_BUFFER) for kind in self.MERGED
            }
        except OSError as error:
            raise ConnectorError(f"cannot write replay output to {out_dir}: {error.strerror or error}.") from None
        self._held: dict[str, dict[int, _HeldLines]] = {kind: {} for kind in self.MERGED}
        self._held_bytes = 0  # the sum of every ``_HeldLines.held_bytes``, kept as they change

    @property
    def held_bytes(self) -> int:
        """About how much memory the lines held for merging take."""
        return self._held_bytes

    def _hold(self, kind: str, partition: int, emitted_at: Int64Array, lines: Lines) -> None:
        held = self._held[kind].get(partition)
        if held is None:
            held = self._held[kind][partition] = _HeldLines(self.parts_dir / f"{kind}-{partition}.part")
        before = held.held_bytes
        held.add(emitted_at, lines)
        self._held_bytes += held.held_bytes - before
        if self._held_bytes > self.hold_bytes:
            self.spill()

    def results(
        self, partition: int, emitted_at: Int64Array, key_ids: Int64Array, lines: Lines, *, final: bool
    ) -> None:
        self._hold("results" if final else "updates", partition, emitted_at, lines)

    def decisions(self, partition: int, decisions: DecisionBlock) -> None:
        self._hold("decisions", partition, decisions.emitted_at, decisions.lines)

    def late(self, records: list[LateRecord]) -> None:
        self._late.writelines(record.line for record in records)

    def rejected(self, partition: int | None, rejected: list[Rejected], lines: list[bytes]) -> None:
        self._rejected.writelines(lines)

    def settle(self, before: int | None) -> None:
        """Merge and write every held line emitted before ``before`` (no partition emits before it any
        more); None: every held line."""
        for kind, by_partition in self._held.items():
            try:
                taken: list[Lines] = []
                times: list[Int64Array] = []
                for partition in sorted(by_partition):
                    held = by_partition[partition]
                    was = held.held_bytes
                    try:
                        ready, blocks = held.pop_ready(before)
                    finally:  # what it took stays taken even when reading back a part file failed
                        self._held_bytes += held.held_bytes - was
                    times.extend(ready)
                    taken.extend(blocks)
                if not taken:
                    continue
                counts = [len(block) for block in taken]
                sizes = np.zeros(len(taken) + 1, dtype=np.int64)
                np.cumsum(counts, out=sizes[1:])
                # a stable sort of partition-major lines by time keeps partition order among equal times (and
                # a single partition's emission order)
                order = np.argsort(np.concatenate(times), kind="stable")
                block_of = np.repeat(np.arange(len(taken), dtype=np.int64), counts)[order]
                write_merged(
                    [block.merged() for block in taken], block_of, order - sizes[block_of], self._merged[kind].write
                )
            except OSError as error:  # writing the merged file, or reading back a part file
                raise ConnectorError(f"cannot write {kind}.jsonl in {self.out_dir}: {reason(error)}.") from None

    def spill(self) -> None:
        """Move every line held in memory to part files (memory is short, or the hold is full)."""
        try:
            self.parts_dir.mkdir(exist_ok=True)
            for by_partition in self._held.values():
                for held in by_partition.values():
                    was = held.held_bytes
                    try:
                        held.spill()
                    finally:
                        self._held_bytes += held.held_bytes - was
        except OSError as error:
            raise ConnectorError(f"cannot write part files in {self.parts_dir}: {reason(error)}.") from None

    def write_back(self) -> None:
        """Have the kernel write out what the output and part files hold so far and drop it from the page
        cache once written (memory is short: a memory cgroup counts the page cache of the files a job
        writes, and cannot drop the part not yet on disk)."""
        handles: list[IO[bytes] | ReservingWriter] = [self._late, self._rejected, *self._merged.values()]
        for by_partition in self._held.values():
            for held in by_partition.values():
                handles += held.handles()
        try:
            for handle in handles:
                write_back(handle)
        except OSError as error:
            raise ConnectorError(f"cannot write replay output to {self.out_dir}: {reason(error)}.") from None

    def finish(self) -> None:
        """Write every line still held and close the files."""
        self.settle(None)
        self.abort()
        if self.parts_dir.exists():
            shutil.rmtree(self.parts_dir)

    def abort(self) -> None:
        """Close everything (after a failure, leaving what was written for inspection)."""
        self._late.close()
        self._rejected.close()
        for handle in self._merged.values():
            handle.close()
        for by_partition in self._held.values():
            for held in by_partition.values():
                held.close()
