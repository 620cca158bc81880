"""The key registry: ids, the text forms the output writers use, and compaction."""

from __future__ import annotations

import tracemalloc
from hashlib import blake2b

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.event_decoding import DecodeOptions, EventDecoder
from jobs import keys as keys_module
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


def test_ids_take_the_ids_the_decoder_found_and_register_the_keys_it_left_as_text() -> None:
    registry = KeyRegistry(partitions=2)
    registry.ids(["a", "b"])
    found = np.array([1, -1, 0, -1, -1], dtype=np.int64)
    assert registry.ids([None, "c", None, "d", "c"], found).tolist() == [1, 2, 0, 3, 2]
    assert registry.utf8 == [b"a", b"b", b"c", b"d"] and registry.table.lookup(b"d") == 3
    with pytest.raises(ValueError, match="event 0 of the batch has neither a key id nor a key"):
        registry.ids([None], np.array([-1], dtype=np.int64))


def test_a_key_that_is_not_utf8_is_refused_and_not_registered() -> None:
    registry = KeyRegistry(partitions=1)
    with pytest.raises(UnicodeDecodeError):
        registry.id_of(b"\xff")
    assert len(registry) == 0 and len(registry.table) == 0 and registry.id_of(b"ok") == 0


def _hash(key: str) -> int:
    """The 64-bit hash ``ranks`` orders keys by (BLAKE2b-64 of the text, big-endian, signed)."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def _hash_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=_hash)


@given(batches=st.lists(st.lists(st.text(max_size=6), max_size=12), min_size=1, max_size=5), dense=st.booleans())
def test_ranks_order_keys_by_their_hash_whether_dense_or_not(batches: list[list[str]], dense: bool) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys_module, "DENSE_RANK_KEYS", 1 << 16 if dense else 3)
        _check_ranks(batches, dense)


def _check_ranks(batches: list[list[str]], dense: bool) -> None:
    registry = KeyRegistry(partitions=4)
    for batch in batches:  # keys arrive over several batches: ranks are computed again as they come
        ids = registry.ids(batch)
        ranks = registry.ranks(ids).tolist()
        seen = sorted(set(batch))
        assert sorted(seen, key=lambda k: ranks[batch.index(k)]) == _hash_order(seen)
        if dense:  # each key's rank: how many distinct hashes of the keys so far are below its own
            known = [key.decode() for key in registry.utf8]
            distinct = sorted({_hash(key) for key in known})
            assert ranks == [distinct.index(_hash(key)) for key in batch]
    everything = registry.ids([key for batch in batches for key in batch])
    mapping = registry.compact(everything[::2])
    kept = [key.decode() for key in registry.utf8]
    ranks = registry.ranks(np.arange(len(kept), dtype=np.int64)).tolist()
    assert [key for _, key in sorted(zip(ranks, kept))] == _hash_order(kept)
    assert (mapping >= -1).all()


def test_ids_the_scan_finds_and_ids_the_slow_path_registers_agree_across_a_compaction() -> None:
    registry = KeyRegistry(partitions=1)
    decoder = EventDecoder(DecodeOptions(key_field="k", timestamp_field="ts"))

    def ids(raws: list[bytes]) -> list[bytes]:
        decoded, _ = decoder.decode(raws, list(range(len(raws))), registry.table)
        return [registry.utf8[i] for i in registry.ids(decoded.keys, decoded.key_ids).tolist()]

    def event(key: str) -> bytes:
        return b'{"k":"%s","ts":1700000000000}' % key.encode()

    assert ids([event("a"), event("b"), event("c"), event("b")]) == [b"a", b"b", b"c", b"b"]  # the scan
    registry.compact(np.array([2], dtype=np.int64))  # only "c" stays, as id 0
    assert registry.utf8 == [b"c"] and registry.table.lookup(b"c") == 0 and registry.table.lookup(b"a") == -1
    # one bad event: the whole batch goes the slow way, keys as strings
    assert ids([event("a"), b"not json", event("c")]) == [b"a", b"c"]
    assert ids([event("c"), event("d"), event("a")]) == [b"c", b"d", b"a"]
    assert registry.utf8 == [b"c", b"a", b"d"]
