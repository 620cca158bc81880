"""The key registry: ids, the text forms the output writers use, and compaction."""

from __future__ import annotations

import tracemalloc

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from jobs.keys import KeyRegistry


def test_each_key_has_its_utf8_and_json_text_and_they_follow_compaction() -> None:
    registry = KeyRegistry(partitions=4)
    keys = ["a", 'quote"d', "ключ", "b\n"]
    ids = registry.ids(keys)
    assert ids.tolist() == [0, 1, 2, 3]
    assert registry.utf8 == [key.encode() for key in keys]
    assert registry.json == [orjson.dumps(key) for key in keys]
    mapping = registry.compact(np.array([3, 1], dtype=np.int64))
    assert mapping.tolist() == [-1, 0, -1, 1]
    assert registry.utf8 == [b'quote"d', b"b\n"] and registry.json == [b'"quote\\"d"', b'"b\\n"']
    assert registry.ids(["b\n"]).tolist() == [1]


def test_a_keys_json_text_holds_no_more_memory_than_its_text() -> None:
    # a registry lives as long as its keys: 500,000 keys once held 2 GB through orjson's 4 KiB buffers
    # (``sys.getsizeof`` does not see those buffers; the allocator does)
    keys = [f"client-{i:07d}" for i in range(1_000)]
    registry = KeyRegistry(partitions=1)
    tracemalloc.start()
    try:
        registry.ids(keys)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 400 * len(keys), f"{held / len(keys):.0f} bytes per key"


@given(batches=st.lists(st.lists(st.sampled_from(["a", "b", "c", "d", "é", "", "a b", "1"]), max_size=12), max_size=6))
def test_ids_number_keys_in_order_of_first_sight_across_batches(batches: list[list[str]]) -> None:
    registry = KeyRegistry(partitions=2)
    expected: dict[str, int] = {}
    for batch in batches:
        ids = registry.ids(batch)
        assert ids.dtype == np.int64
        assert ids.tolist() == [expected.setdefault(key, len(expected)) for key in batch]
    assert registry.utf8 == [key.encode() for key in expected]
