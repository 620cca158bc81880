"""The key table against a dict: ids in order of addition, found by their UTF-8 text, through growth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.key_table import KeyTable

# short texts that share prefixes, differ in length by a byte, hold NUL bytes or span several 8-byte words
KEYS = st.one_of(
    st.sampled_from(["", "a", "a\x00", "\x00", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "é", "ключ"]),
    st.text(max_size=20),
)


@given(st.lists(KEYS, max_size=200))
def test_keys_get_ids_in_order_of_addition_and_are_found_by_their_text(keys: list[str]) -> None:
    table, model = KeyTable(), {}
    for key in keys:
        raw = key.encode()
        assert table.lookup(raw) == model.get(raw, -1)
        if raw not in model:
            model[raw] = table.add(raw)
            assert model[raw] == len(model) - 1
    assert len(table) == len(model)
    ids, missing = table.ids([*keys, "never added \u2603"])
    assert ids.dtype == np.int64 and ids.tolist() == [model[key.encode()] for key in keys] + [-1]
    assert missing == 1


def test_a_hundred_thousand_keys_stay_found_through_every_growth() -> None:
    table = KeyTable()
    keys = [f"client-{i:06d}".encode() for i in range(100_000)]
    assert [table.add(key) for key in keys] == list(range(100_000))
    assert all(table.lookup(key) == i for i, key in enumerate(keys))
    assert table.lookup(b"client-100000") == -1 and table.lookup(b"client-00000") == -1


def test_a_key_is_added_once_and_looked_up_as_a_string_only() -> None:
    table = KeyTable()
    table.add(b"a")
    with pytest.raises(ValueError, match="key b'a' is in the table already"):
        table.add(b"a")
    with pytest.raises(TypeError, match="a key is a string, not bytes"):
        table.ids(["a", b"a"])  # type: ignore[list-item]


def test_each_table_hashes_with_a_seed_of_its_own() -> None:
    # keys are event data: with one fixed hash, keys chosen to probe the same places would make every
    # lookup walk them all
    seeds = {KeyTable().seed for _ in range(8)}
    assert len(seeds) == 8
