"""Kafka record batches built in C, read back with aiokafka's own batch reader and compared with its builder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record._crecords.cutil import crc32c_cython
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.line_blocks import LineBlock
from connectors.record_batches import CRC_FROM, HARDWARE_CRC, HEADER_BYTES, build_batch, crc32c, crc32c_tables

NOW = 1_767_225_600_123
KEYS: list[bytes | None] = [b"client-1", b"", None, "clé-ünï".encode(), b"k" * 300]


def _lines(values: list[bytes]) -> LineBlock:
    return LineBlock.of(values)


def _read(batch: bytes) -> list[tuple[int, bytes | None, bytes | None, int, list[tuple[str, bytes]]]]:
    parsed = DefaultRecordBatch(bytearray(batch))
    assert parsed.validate_crc()
    assert parsed.magic == 2 and parsed.compression_type == 0 and not parsed.is_transactional
    return [(record.offset, record.key, record.value, record.timestamp, list(record.headers)) for record in parsed]


def _one(block: LineBlock, key_ids: np.ndarray, first: int = 0, max_bytes: int = 1 << 20) -> tuple[bytes, int]:
    """The batch of one buffer's lines from ``first`` on, and how many it holds."""
    batch, taken, _, _ = build_batch([block.data], [block.starts], [key_ids], 0, first, KEYS, NOW, max_bytes)
    return batch, taken


def _all_batches(
    blocks: list[LineBlock], key_ids: list[np.ndarray], max_bytes: int
) -> list[tuple[bytes, int, tuple[int, int]]]:
    """Every batch of ``blocks``: its bytes, its line count, and the (buffer, line) it starts at."""
    datas, starts = [block.data for block in blocks], [block.starts for block in blocks]
    batches, part, line = [], 0, 0
    while part < len(blocks):
        batch, taken, next_part, next_line = build_batch(datas, starts, key_ids, part, line, KEYS, NOW, max_bytes)
        assert (next_part, next_line) > (part, line)
        batches.append((batch, taken, (part, line)))
        part, line = next_part, next_line
    assert (part, line) == (len(blocks), 0)
    return batches


@given(st.binary(max_size=200))
def test_crc32c_matches_aiokafkas_with_the_instruction_and_with_the_tables(data: bytes) -> None:
    assert crc32c(data) == crc32c_cython(data) == crc32c_tables(data)


def test_crc32c_of_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C
    assert crc32c(b"") == 0
    print("hardware CRC-32C:", HARDWARE_CRC)


values_strategy = st.lists(st.binary(max_size=120), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(values_strategy, st.data())
def test_a_batch_reads_back_as_its_lines_keys_and_timestamp(values: list[bytes], data: st.DataObject) -> None:
    key_ids = np.array(data.draw(st.lists(st.integers(0, len(KEYS) - 1), min_size=len(values), max_size=len(values))))
    batch, taken = _one(_lines(values), key_ids)
    assert taken == len(values)
    expected = [(i, KEYS[k], value, NOW, []) for i, (k, value) in enumerate(zip(key_ids.tolist(), values))]
    assert _read(batch) == expected


@settings(max_examples=150, deadline=None)
@given(values_strategy, st.integers(HEADER_BYTES + 1, 2_000), st.lists(st.integers(0, 60), max_size=4))
def test_batches_split_at_the_size_limit_and_together_hold_every_line_once(
    values: list[bytes], limit: int, cuts: list[int]
) -> None:
    key_ids = np.arange(len(values), dtype=np.int64) % len(KEYS)
    bounds = [0, *sorted(min(cut, len(values)) for cut in cuts), len(values)]
    blocks = [_lines(values[a:b]) if b > a else LineBlock.empty() for a, b in itertools.pairwise(bounds)]
    blocks = [block for block in blocks if len(block)]  # the writer leaves empty buffers out
    batches = _all_batches(blocks, [key_ids[a:b] for a, b in itertools.pairwise(bounds) if b > a], limit)
    read = []
    for batch, taken, _ in batches:
        records = _read(batch)
        assert len(records) == taken and [r[0] for r in records] == list(range(taken))
        assert len(batch) <= limit or taken == 1  # only a record too large on its own goes over
        read += [(key, value) for _, key, value, _, _ in records]
    assert read == [(KEYS[k], v) for k, v in zip(key_ids.tolist(), values)]
    # Every batch but the last was full: its next line would not have fitted. (Offset deltas stay below 64
    # here, so a record takes as many bytes first in a batch as it would have taken last.)
    datas, starts = [block.data for block in blocks], [block.starts for block in blocks]
    ids = [key_ids[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    for (batch, _, _), (_, _, (part, line)) in itertools.pairwise(batches):
        alone, _, _, _ = build_batch(datas, starts, ids, part, line, KEYS, NOW, HEADER_BYTES + 1)
        assert len(batch) + len(alone) - HEADER_BYTES > limit


def test_the_records_are_byte_for_byte_those_of_aiokafkas_own_builder() -> None:
    values = [b'{"job":"j","n":%d}' % i * (i % 5 + 1) for i in range(3_000)]
    key_ids = np.arange(len(values), dtype=np.int64) % len(KEYS)
    batch, taken = _one(_lines(values), key_ids)
    reference = BatchBuilder(1 << 20, 0)
    for i in range(taken):
        assert reference.append(key=KEYS[key_ids[i]], value=values[i], timestamp=NOW, headers=[]) is not None
    expected = bytes(reference._build())
    assert len(batch) == len(expected)
    assert batch[HEADER_BYTES:] == expected[HEADER_BYTES:]
    # the header differs only in the base sequence: -1 (none, as Kafka's own producer writes) against 0
    assert batch[:53] == expected[:17] + batch[17:21] + expected[21:53]
    assert batch[53:57] == b"\xff\xff\xff\xff" and expected[53:57] == b"\x00\x00\x00\x00"
    assert int.from_bytes(batch[17:21], "big") == crc32c(batch[CRC_FROM:])


def test_a_batch_can_start_at_any_line_of_a_shared_buffer() -> None:
    values = [b"a", b"bb", b"ccc", b"dddd"]
    block = _lines(values)
    key_ids = np.array([0, 1, 2, 3], dtype=np.int64)
    batch, taken = _one(block, key_ids, first=2)
    assert taken == 2
    assert [(key, value) for _, key, value, _, _ in _read(batch)] == [(None, b"ccc"), (KEYS[3], b"dddd")]


@pytest.mark.parametrize(
    ("first", "key_ids", "keys", "error", "message"),
    [
        (0, [0, 1], KEYS, ValueError, "one key id per line: 2 key ids for 3 lines in buffer 0"),
        (3, [0, 1, 2], KEYS, IndexError, "line 3 of buffer 0 is not among the lines given"),
        (0, [0, 9, 1], KEYS, IndexError, "key id 9 of line 1 is not among the 5 keys given"),
        (0, [0, 1, 2], [b"a", "b", b"c"], TypeError, "key 1 is a str; record keys are bytes or None"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_wrong(
    first: int, key_ids: list[int], keys: list[bytes | None], error: type[Exception], message: str
) -> None:
    block = _lines([b"x", b"y", b"z"])
    with pytest.raises(error, match=message):
        build_batch([block.data], [block.starts], [np.array(key_ids, dtype=np.int64)], 0, first, keys, NOW, 1 << 20)


def test_a_line_without_its_line_break_is_refused() -> None:
    starts = np.array([0, 2, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="line 1 of buffer 0 is empty: every line ends in a line break"):
        build_batch([b"a\nb"], [starts], [np.zeros(3, dtype=np.int64)], 0, 0, KEYS, NOW, 1 << 20)
    with pytest.raises(ValueError, match="outside a buffer of 3 bytes"):
        build_batch([b"a\nb"], [np.array([0, 2, 9])], [np.zeros(2, dtype=np.int64)], 0, 0, KEYS, NOW, 1 << 20)
    with pytest.raises(ValueError, match="outside a buffer of 3 bytes"):  # a first line starting before the buffer
        build_batch([b"ab\n"], [np.array([0, -40, 3])], [np.zeros(2, dtype=np.int64)], 0, 1, KEYS, NOW, 1 << 20)
    with pytest.raises(ValueError, match="one offsets array and one key id array per buffer: 1 buffers, 2 offsets"):
        build_batch([b"a\n"], [starts, starts], [np.zeros(1, dtype=np.int64)], 0, 0, KEYS, NOW, 1 << 20)
