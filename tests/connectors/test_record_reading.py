"""read_batches against aiokafka's own batch reader, over batches aiokafka's builder writes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.record_batches import crc32c
from connectors.record_reading import CorruptBatch, plain_batches, read_batches

HEADERS = st.lists(
    st.tuples(st.sampled_from(["traceparent", "other", "Traceparent"]), st.one_of(st.none(), st.binary(max_size=8))),
    max_size=3,
)
RECORDS = st.lists(
    st.tuples(st.one_of(st.none(), st.binary(max_size=6)), st.one_of(st.none(), st.binary(max_size=40)), HEADERS),
    min_size=1,
    max_size=6,
)


def build(base_offset: int, records: list[Any], first_time: int = 1_700_000_000_000) -> bytes:
    """One v2 batch as aiokafka's producer writes it, at ``base_offset`` (as a broker stamps it)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (key, value, headers) in enumerate(records):
        builder.append(delta, timestamp=first_time + 3 * delta, key=key, value=value, headers=headers)
    batch = bytearray(builder.build())
    batch[0:8] = struct.pack(">q", base_offset)
    return bytes(batch)


def with_attributes(batch: bytes, flags: int) -> bytes:
    """``batch`` with attribute ``flags`` set and its CRC written again."""
    changed = bytearray(batch)
    changed[21:23] = struct.pack(">h", struct.unpack(">h", batch[21:23])[0] | flags)
    changed[17:21] = struct.pack(">I", crc32c(bytes(changed[21:])))
    return bytes(changed)


def aiokafka_rows(batches: list[bytes], fetch_offset: int) -> list[tuple[Any, ...]]:
    """What aiokafka's fetcher hands out: records at or after ``fetch_offset``, control batches skipped."""
    rows = []
    for batch in batches:
        read = DefaultRecordBatch(batch)
        if read.is_control_batch:
            continue
        for record in read:
            if record.offset >= fetch_offset:
                traceparent = next((v for name, v in record.headers if name == "traceparent"), None)
                rows.append((record.offset, record.key, record.value or b"", record.timestamp, traceparent))
    return rows


def rows_of(read: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    offsets, keys, values, timestamps, traceparents = read[:5]
    return list(zip(offsets.tolist(), keys, values, timestamps.tolist(), traceparents))


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.tuples(RECORDS, st.sampled_from([0, 0, 0x08, 0x20])), min_size=1, max_size=4),
    skip=st.integers(0, 3),
    wanted=st.integers(1, 30),
    cut=st.integers(0, 70),
)
def test_read_batches_hands_out_what_aiokafka_reads(
    batches: list[tuple[list[Any], int]], skip: int, wanted: int, cut: int
) -> None:
    raws, offset = [], 100
    for records, flags in batches:  # 0x08: log-append time, 0x20: a control batch
        raw = build(offset, records)
        raws.append(with_attributes(raw, flags) if flags else raw)
        offset += len(records)
    fetched = b"".join(raws) + raws[-1][: cut % len(raws[-1])]  # a fetch may end inside a batch
    assert plain_batches(fetched)
    fetch_offset = 100 + skip
    expected = aiokafka_rows(raws, fetch_offset)
    got, position, more, ends = [], 0, True, []
    while more:  # the way _ColumnRecords reads a fetch: ``wanted`` at a time, a batch to its end
        read = read_batches(fetched, position, fetch_offset, wanted, True)
        assert len(read[2]) >= min(wanted, len(expected) - len(got)) or not read[7]
        got += rows_of(read)
        position, more = read[5], read[7]
        ends.append(read[6])
    assert got == expected
    assert position == sum(map(len, raws))
    assert ends[-1] == offset  # the offset after the last batch read: where the next fetch starts


def test_a_batch_that_fails_its_crc_or_does_not_parse_is_refused() -> None:
    raw = build(5, [(b"k", b"value", [])])
    damaged = raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:]
    with pytest.raises(CorruptBatch, match="at offset 5 fails its CRC-32C check"):
        read_batches(damaged, 0, 0, 10, True)
    assert rows_of(read_batches(damaged, 0, 0, 10, False))[0][2] == b"valud"  # without the check: as it is
    cut = bytearray(raw)
    cut[61] = 2  # the record's length (zigzag 1) leaves out most of it
    with pytest.raises(CorruptBatch, match="record 0 of the batch at offset 5"):
        read_batches(bytes(cut), 0, 0, 10, False)


def test_compressed_and_old_batches_are_left_to_aiokafka() -> None:
    raw = build(0, [(None, b"v", [])])
    assert plain_batches(raw) and plain_batches(raw + raw) and plain_batches(b"")
    assert not plain_batches(raw + with_attributes(raw, 0x01))  # gzip
    old = bytearray(raw)
    old[16] = 1
    assert not plain_batches(bytes(old))
    with pytest.raises(CorruptBatch, match="is compressed"):
        read_batches(with_attributes(raw, 0x01), 0, 0, 10, True)
