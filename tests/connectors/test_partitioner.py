"""Kafka's default partitioner, checked against vectors published by Kafka clients."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.partitioner import murmur2, partition_for, partitions_for


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # apache/kafka UtilsTest.testMurmur2 (signed Java ints)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert _signed(murmur2(key)) == expected


@pytest.mark.parametrize(
    ("key", "partition"),
    [  # kafka-python test_murmur2_java_compatibility, 1000 partitions
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ],
)
def test_partition_for_matches_the_java_partitioner(key: bytes, partition: int) -> None:
    assert partition_for(key, 1000) == partition


def test_librdkafka_vectors() -> None:
    assert murmur2(b"kafka") == 0xD067CF64
    assert murmur2(b"giberish123456789") == 0x8F552B0C
    assert murmur2(b"PreAmbleWillBeRemoved,ThePrePartThatIs") == 0x78424F1C


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 1000))
def test_partitions_of_many_keys_are_each_keys_partition(keys: list[bytes], partitions: int) -> None:
    assert partitions_for(keys, partitions).tolist() == [partition_for(key, partitions) for key in keys]


def test_a_topic_without_partitions_or_a_key_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition, not 0"):
        partition_for(b"a", 0)
    with pytest.raises(ValueError, match="at least one partition, not -2"):
        partitions_for([b"a"], -2)
    with pytest.raises(TypeError, match="key 1 is str, not bytes"):
        partitions_for([b"a", "b"], 3)  # type: ignore[list-item]
