"""Packed output lines: slicing, reordering and joining blocks keeps every line intact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.line_blocks import LineBlock
from connectors.line_gather import write_merged

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


@given(
    blocks=st.lists(_LINES, min_size=1, max_size=4), buffer_size=st.sampled_from([1, 4, 16, 1 << 20]), data=st.data()
)
def test_a_merged_write_gives_the_chosen_lines_in_order_whatever_the_buffer(
    blocks: list[list[bytes]], buffer_size: int, data: st.DataObject
) -> None:
    packed = [LineBlock.of(lines) for lines in blocks]
    picks = data.draw(
        st.lists(st.tuples(st.integers(0, len(blocks) - 1), st.integers(0, 19)), max_size=40).map(
            lambda pairs: [(b, line % len(blocks[b])) for b, line in pairs if blocks[b]]
        )
    )
    written: list[bytes] = []
    write_merged(
        [block.data for block in packed],
        [block.starts for block in packed],
        np.asarray([b for b, _ in picks], dtype=np.int64),
        np.asarray([line for _, line in picks], dtype=np.int64),
        lambda view: written.append(bytes(view)),
        buffer_size,
    )
    assert b"".join(written) == b"".join(blocks[b][line] + b"\n" for b, line in picks)
    assert all(len(piece) <= buffer_size for piece in written if piece.count(b"\n") > 1)


def test_a_merged_write_names_a_line_or_buffer_it_lacks() -> None:
    block = LineBlock.of([b"a"])
    one = np.array([1], dtype=np.int64)
    zero = np.array([0], dtype=np.int64)
    with pytest.raises(IndexError, match="line 1 is not among the 1 lines of buffer 0"):
        write_merged([block.data], [block.starts], zero, one, print)
    with pytest.raises(IndexError, match="buffer 1 is not among the 1 buffers"):
        write_merged([block.data], [block.starts], one, zero, print)
