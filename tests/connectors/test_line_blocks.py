"""Packed output lines: slicing, reordering and joining blocks keeps every line intact, written or still to be
written by their source, and a merged write gives the chosen lines of both kinds in order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.line_blocks import LineBlock, PendingLines
from connectors.line_gather import write_merged
from connectors.line_source import WrittenRows

_LINES = st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=20)


@given(lines=_LINES, data=st.data())
def test_slices_reorders_and_joins_give_the_lines_a_list_would(lines: list[bytes], data: st.DataObject) -> None:
    block = LineBlock.of(lines)
    assert block.records() == lines
    assert bytes(block.text()) == b"".join(line + b"\n" for line in lines)
    first = data.draw(st.integers(0, len(lines)))
    end = data.draw(st.integers(first, len(lines)))
    part = LineBlock(block.data, block.starts[first : end + 1])  # a slice: its offsets do not start at 0
    assert part.records() == lines[first:end] and part.nbytes == sum(len(line) + 1 for line in lines[first:end])
    order = data.draw(st.lists(st.integers(0, max(len(part) - 1, 0)), max_size=30)) if len(part) else []
    taken = part.take(np.asarray(order, dtype=np.int64))
    assert taken.records() == [lines[first + i] for i in order]
    joined = LineBlock.concat([part, taken, LineBlock.empty(), block])
    assert joined.records() == lines[first:end] + taken.records() + lines


def test_taking_a_line_the_block_lacks_names_it() -> None:
    block = LineBlock.of([b"a", b"b"])
    with pytest.raises(IndexError, match="line 2 is not among the 2 lines of the block"):
        block.take(np.array([0, 2], dtype=np.int64))
    with pytest.raises(IndexError, match="line -1 is not among"):
        block.take(np.array([-1], dtype=np.int64))


def test_offsets_that_run_backwards_or_past_the_buffer_are_refused() -> None:
    backwards = LineBlock(b"ab\ncd\n", np.array([0, 3, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="line 1 ends at 1, before its start 3"):
        backwards.take(np.array([1], dtype=np.int64))
    beyond = LineBlock(b"ab\n", np.array([0, 3, 9], dtype=np.int64))
    with pytest.raises(ValueError, match="reach outside a buffer of 3 bytes"):
        beyond.take(np.array([0], dtype=np.int64))
    with pytest.raises(ValueError, match="reach outside a buffer of 3 bytes"):
        WrittenRows(beyond.data, beyond.starts)
    with pytest.raises(ValueError, match="line 1 ends at 1, before its start 3"):
        WrittenRows(backwards.data, backwards.starts)


@given(
    blocks=st.lists(_LINES, min_size=1, max_size=4),
    pending=st.lists(st.booleans(), min_size=4, max_size=4),
    buffer_size=st.sampled_from([1, 4, 16, 1 << 20]),
    stretch=st.sampled_from([1, 3, 4096]),
    data=st.data(),
)
def test_a_merged_write_gives_the_chosen_lines_in_order_whatever_the_buffer(
    blocks: list[list[bytes]], pending: list[bool], buffer_size: int, stretch: int, data: st.DataObject
) -> None:
    # a block either written, or rows [1, n + 1) of a source with one more row on each side
    packed = [
        (WrittenRows(*_framed(lines)), 1, len(lines))
        if later
        else (LineBlock.of(lines).data, LineBlock.of(lines).starts)
        for lines, later in zip(blocks, pending, strict=False)
    ]
    picks = data.draw(
        st.lists(st.tuples(st.integers(0, len(blocks) - 1), st.integers(0, 19)), max_size=40).map(
            lambda pairs: [(b, line % len(blocks[b])) for b, line in pairs if blocks[b]]
        )
    )
    written: list[bytes] = []
    write_merged(
        packed,
        np.asarray([b for b, _ in picks], dtype=np.int64),
        np.asarray([line for _, line in picks], dtype=np.int64),
        lambda view: written.append(bytes(view)),
        buffer_size,
        stretch,
    )
    assert b"".join(written) == b"".join(blocks[b][line] + b"\n" for b, line in picks)
    assert all(len(piece) <= buffer_size for piece in written if piece.count(b"\n") > 1)


def _framed(lines: list[bytes]) -> tuple[bytes, np.ndarray]:
    """The text and offsets of ``lines`` between a first and a last line of their own."""
    block = LineBlock.of([b"first", *lines, b"last"])
    return block.data, block.starts


@given(lines=_LINES, data=st.data())
def test_pending_lines_read_as_the_block_their_source_writes(lines: list[bytes], data: st.DataObject) -> None:
    written = LineBlock.of(lines)
    source = WrittenRows(written.data, written.starts)
    first = data.draw(st.integers(0, len(lines)))
    end = data.draw(st.integers(first, len(lines)))
    part = PendingLines(source).rows(first, end)
    assert len(part) == end - first and part.nbytes == (end - first) * source.row_bytes
    assert part.records() == lines[first:end]
    assert bytes(part.text()) == b"".join(line + b"\n" for line in lines[first:end])
    inner = part.rows(0, len(part) // 2)
    assert inner.records() == lines[first : first + (end - first) // 2]
    assert LineBlock.concat([part, written]).records() == lines[first:end] + lines
    assert LineBlock(*source.lines_of(first, end)).records() == lines[first:end]
    n = len(lines)
    with pytest.raises(ValueError, match=f"rows {n} to {n + 1} are not among the {n} of a source"):
        source.lines_of(n, n + 1)


def test_a_merged_write_names_a_line_or_block_it_lacks() -> None:
    block = LineBlock.of([b"a"])
    one = np.array([1], dtype=np.int64)
    zero = np.array([0], dtype=np.int64)
    with pytest.raises(IndexError, match="line 1 is not among the 1 lines of block 0"):
        write_merged([(block.data, block.starts)], zero, one, print)
    with pytest.raises(IndexError, match="block 1 is not among the 1 blocks"):
        write_merged([(block.data, block.starts)], one, zero, print)
    with pytest.raises(IndexError, match="line 1 is not among the 1 lines of block 0"):
        write_merged([(WrittenRows(block.data, block.starts), 0, 1)], zero, one, print)
    with pytest.raises(ValueError, match="rows 1 to 3 are not among the 1 of a source"):
        write_merged([(WrittenRows(block.data, block.starts), 1, 2)], zero, zero, print)


def test_a_merged_write_reads_its_order_once_and_hands_out_views_it_takes_back() -> None:
    lines = [b"%d" % i for i in range(10)]
    block = LineBlock.of(lines)
    source = WrittenRows(block.data, block.starts)
    block_of = np.zeros(10, dtype=np.int64)
    line_of = np.arange(10, dtype=np.int64)[::-1].copy()
    views: list[memoryview] = []
    pieces: list[bytes] = []

    def write(view: memoryview) -> None:
        views.append(view)
        pieces.append(bytes(view))
        line_of[:5] = 10**12  # the stretch being written changes under the write: its lines come out as read

    write_merged([(source, 0, 10)], block_of, line_of, write, buffer_size=4, stretch_lines=5)
    assert b"".join(pieces) == b"".join(line + b"\n" for line in reversed(lines))
    with pytest.raises(ValueError, match="released"):
        bytes(views[0])  # its memory was reused: the view kept past the call reads nothing


def test_a_merged_write_refuses_bad_sizes_and_source_ranges() -> None:
    block = LineBlock.of([b"a"])
    zero = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="pieces of at least one byte, not 4096 lines and 0 bytes"):
        write_merged([(block.data, block.starts)], zero, zero, print, buffer_size=0)
    with pytest.raises(ValueError, match="stretches of at least one line"):
        write_merged([(block.data, block.starts)], zero, zero, print, stretch_lines=0)
    with pytest.raises(ValueError, match="are not among the 1 of a source"):
        write_merged([(WrittenRows(block.data, block.starts), 2**62, 2**62)], zero, zero, print)
