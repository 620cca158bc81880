"""Output lines packed into one buffer: how results and decisions travel from the writer to a sink.

A busy job emits several lines per event. Kept as one ``bytes`` object each,
they cost an allocation, a list slot and a free per line, and merging the
replay files costs a join on top. A ``LineBlock`` holds a chunk's lines in one
buffer with the offset of each: a slice shares the buffer, reordering copies bytes in C
(``connectors/line_gather.pyx``), and a file sink writes the buffer as it is.
Each line ends in its line break; ``of`` and ``records`` build a block from
lines given without it and give them back so (for tools and tests: the Kafka
sink builds its record batches from the buffer, ``connectors/record_batches.pyx``).
A ``DecisionBlock`` adds what the sinks need of each decision besides its line.
``PendingLines`` are lines not written yet: rows of a ``LineSource``
(``connectors/line_source.pyx``) that write their lines where and when they
are needed, and otherwise read as a block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from connectors.line_gather import gather
from connectors.line_source import LineSource
from windows.events import Int64Array


@dataclass(frozen=True)
class LineBlock:
    """Lines ``data[starts[i]:starts[i + 1]]``, each ending in a line break (``starts`` has one more entry
    than there are lines; it need not begin at 0, so a slice shares the buffer)."""

    data: bytes
    starts: Int64Array

    @staticmethod
    def of(lines: Iterable[bytes]) -> LineBlock:
        """A block of ``lines`` given without line breaks."""
        lines = list(lines)
        starts = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum([len(line) + 1 for line in lines], out=starts[1:])
        return LineBlock(b"".join(line + b"\n" for line in lines), starts)

    @staticmethod
    def empty() -> LineBlock:
        return LineBlock(b"", np.zeros(1, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.starts.shape[0]) - 1

    @property
    def nbytes(self) -> int:
        """The bytes the lines take, line breaks included."""
        return int(self.starts[-1] - self.starts[0])

    def text(self) -> memoryview:
        """The lines as they go into a file, without a copy."""
        return memoryview(self.data)[int(self.starts[0]) : int(self.starts[-1])]

    def rows(self, start: int, stop: int) -> LineBlock:
        """Lines ``[start, stop)``, sharing this block's buffer."""
        return LineBlock(self.data, self.starts[start : stop + 1])

    def records(self) -> list[bytes]:
        """Each line without its line break."""
        data, starts = self.data, self.starts.tolist()
        return [data[a : b - 1] for a, b in pairwise(starts)]

    def merged(self) -> tuple[bytes, Int64Array]:
        """These lines as ``line_gather.write_merged`` takes a block."""
        return self.data, self.starts

    def alone(self) -> LineBlock:
        """These lines, written (they are)."""
        return self

    def take(self, index: Int64Array) -> LineBlock:
        """The lines at positions ``index``, in that order, in a new buffer."""
        data, starts = gather(self.data, np.ascontiguousarray(self.starts), np.ascontiguousarray(index, np.int64))
        return LineBlock(data, starts)

    @staticmethod
    def concat(blocks: Sequence[LineBlock | PendingLines]) -> LineBlock | PendingLines:
        """The lines of ``blocks``, one block after another, in one buffer."""
        if len(blocks) == 1:
            return blocks[0]
        if not blocks:
            return LineBlock.empty()
        lengths = [np.diff(block.starts) for block in blocks]
        starts = np.zeros(sum(length.shape[0] for length in lengths) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths), out=starts[1:])
        return LineBlock(b"".join(block.text() for block in blocks), starts)


class PendingLines:
    """Lines not written yet: rows ``[first, stop)`` of a ``LineSource`` (``connectors/line_source.pyx``),
    which writes them when they are needed: by the merge into a file (``line_gather.write_merged``), or
    as a ``LineBlock`` on first use of ``data`` or ``starts`` (the source writes all its rows once and keeps
    them). Everything else reads as a ``LineBlock`` does."""

    __slots__ = ("first", "source", "stop")

    def __init__(self, source: LineSource, first: int = 0, stop: int | None = None) -> None:
        self.source = source
        self.first = first
        self.stop = len(source) if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.first

    @property
    def nbytes(self) -> int:
        """About the memory the rows take until their lines are written (not the lines' length)."""
        return len(self) * self.source.row_bytes

    @property
    def data(self) -> bytes:
        return self.source.lines()[0]

    @property
    def starts(self) -> Int64Array:
        offsets: Int64Array = self.source.lines()[1]
        return offsets[self.first : self.stop + 1]

    def written(self) -> LineBlock:
        """The lines, written (by the source, which writes all its rows once and keeps them)."""
        return LineBlock(self.data, self.starts)

    def merged(self) -> tuple[LineSource, int, int]:
        """These rows as ``line_gather.write_merged`` takes a block: it has the source write them."""
        return self.source, self.first, len(self)

    def alone(self) -> LineBlock:
        """These rows' lines written into a buffer of their own (the source keeps nothing: a spill writes
        the rows it moves to a part file, and no more)."""
        return LineBlock(*self.source.lines_of(self.first, self.stop))

    def text(self) -> memoryview:
        return self.written().text()

    def rows(self, start: int, stop: int) -> PendingLines:
        """Rows ``[start, stop)`` of these, still not written."""
        return PendingLines(self.source, self.first + start, self.first + stop)

    def records(self) -> list[bytes]:
        return self.written().records()

    def take(self, index: Int64Array) -> LineBlock:
        return self.written().take(index)


#: Lines as sinks get them: written, or to be written when needed.
Lines = LineBlock | PendingLines


@dataclass(frozen=True)
class DecisionBlock:
    """Decisions in emission order: their lines, emission times, key ids, and the origin time (epoch ms, 0:
    unknown) of the event that made each rule fire."""

    lines: Lines
    emitted_at: Int64Array
    key_ids: Int64Array
    origins: Int64Array

    def __len__(self) -> int:
        return len(self.lines)

    def rows(self, start: int, stop: int) -> DecisionBlock:
        """Decisions ``[start, stop)``, sharing this block's buffer and columns."""
        return DecisionBlock(
            self.lines.rows(start, stop),
            self.emitted_at[start:stop],
            self.key_ids[start:stop],
            self.origins[start:stop],
        )

    def take(self, index: Int64Array) -> DecisionBlock:
        """The decisions at positions ``index``, in that order."""
        return DecisionBlock(self.lines.take(index), self.emitted_at[index], self.key_ids[index], self.origins[index])

    @staticmethod
    def concat(blocks: Sequence[DecisionBlock]) -> DecisionBlock:
        """The decisions of ``blocks``, one block after another."""
        if len(blocks) == 1:
            return blocks[0]
        return DecisionBlock(
            LineBlock.concat([block.lines for block in blocks]),
            np.concatenate([block.emitted_at for block in blocks]),
            np.concatenate([block.key_ids for block in blocks]),
            np.concatenate([block.origins for block in blocks]),
        )
