"""The RocksDB window store: key order, atomic batches, deletion of closed windows, reopening."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from state.engine_state import persist, restore
from state.errors import StateError
from state.key_encoding import decode_value, encode_values, pane_key, parse_pane_key, window_prefix
from state.partition_store import PartitionStore, prefix_end
from state.window_store import WindowStore
from tests.windows.engine_runner import flatten, to_batch
from tests.windows.reference_model import Event
from windows.aggregates import parse_aggregate
from windows.definitions import HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec
from windows.engine import PartitionEngine

SPECS = [
    WindowSpec(
        "t",
        TumblingWindows(10, 2),
        (
            parse_aggregate("n", "count"),
            parse_aggregate("p", "p90(v)"),
            parse_aggregate("d", "distinct(v)"),
            parse_aggregate("f", "first(v)"),
        ),
    ),
    WindowSpec("h", HoppingWindows(20, 5, 1), (parse_aggregate("s", "sum(v)"), parse_aggregate("m", "max(v)"))),
    WindowSpec("s", SlidingWindows(6, 1), (parse_aggregate("n", "count"), parse_aggregate("r", "decay(v, 1s)"))),
]


def test_pane_keys_sort_by_window_then_time_then_key(tmp_path: Path) -> None:
    keys = [pane_key(w, start, k) for w in (0, 1) for start in (-5, 0, 7, 2**40) for k in (b"a", b"b")]
    assert sorted(keys) == keys
    assert parse_pane_key(pane_key(3, -12, b"client-1")) == (3, -12, b"client-1")
    store = PartitionStore(tmp_path / "p0")
    store.commit([(k, b"\x01[]") for k in reversed(keys)], [], {})
    assert [k for k, _ in store.scan(window_prefix(0))] == keys[:8]
    assert [k for k, _ in store.scan(window_prefix(1))] == keys[8:]
    store.close()


def test_a_commit_is_one_batch_of_puts_deletes_and_metadata(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    a, b = pane_key(0, 1, b"a"), pane_key(0, 2, b"b")
    store.commit(list(zip([a, b], encode_values([[1], [2]]))), [], {"position": b"10"})
    store.commit(list(zip([b], encode_values([[3]]))), [a], {"position": b"20"})
    assert [(k, decode_value(v)) for k, v in store.scan(window_prefix(0))] == [(b, [3])]
    assert store.meta("position") == b"20"
    store.close()
    reopened = PartitionStore(tmp_path / "p0")
    assert reopened.meta("position") == b"20"
    assert reopened.count(window_prefix(0)) == 1
    reopened.close()


def test_unknown_value_versions_are_refused() -> None:
    with pytest.raises(StateError, match="format version 9"):
        decode_value(b"\x09[]")


def _events(n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.integers(0, 4, n)) + 1_000 - rng.integers(0, 6, n) * (rng.random(n) < 0.2)
    return [Event(int(t), int(rng.integers(0, 5)), {"v": float(rng.integers(0, 50))}, i) for i, t in enumerate(times)]


def test_closed_windows_are_deleted_and_a_reopened_store_resumes_exactly(tmp_path: Path) -> None:
    log = _events(400, seed=3)
    # uninterrupted run
    whole = PartitionEngine(SPECS)
    expected = flatten(whole.process(to_batch(log, ["v"])).results + whole.close_all().results, final=None)

    # run half, persist, drop the engine, restore into a new one, run the rest
    store = WindowStore(tmp_path / "state", "fp")
    first = PartitionEngine(SPECS)
    got = first.process(to_batch(log[:200], ["v"])).results
    persist(store.partition(0), first, lambda k: str(k).encode(), {"position": b"200"})
    open_panes = first.open_panes
    assert open_panes > 0
    stored = sum(store.partition(0).count(window_prefix(i)) for i in range(3))
    assert stored == open_panes  # closed windows' panes were deleted, open ones written
    store.close()

    store = WindowStore(tmp_path / "state", "fp")
    second = PartitionEngine(SPECS)
    assert restore(store.partition(0), second, lambda keys: [int(k.decode()) for k in keys], lambda k: str(k).encode())
    # panes stay in RocksDB until the engine needs them
    assert second.open_panes == 0 and second.stream_time == first.stream_time
    got += second.process(to_batch(log[200:], ["v"])).results
    assert second.panes_loaded == open_panes  # each stored pane read back exactly once
    got += second.close_all().results
    assert flatten(got, final=None) == expected
    persist(store.partition(0), second, lambda k: str(k).encode(), {})
    assert sum(store.partition(0).count(window_prefix(i)) for i in range(3)) == 0  # everything closed
    store.close()


def test_state_of_a_differently_shaped_job_is_refused(tmp_path: Path) -> None:
    WindowStore(tmp_path, "shape-a").partition(0).close()
    with pytest.raises(StateError, match="different shape"):
        WindowStore(tmp_path, "shape-b").partition(0)


def test_prefix_ranges_end_where_the_prefix_does(tmp_path: Path) -> None:
    assert prefix_end(b"P\x01") == b"P\x02"
    assert prefix_end(b"P\xff") == b"Q"
    assert prefix_end(b"\xff\xff") is None and prefix_end(b"") is None
    store = PartitionStore(tmp_path / "p")
    keys = [pane_key(w, pane, key) for w in (0, 1, 255) for pane in (-5, 7) for key in (b"a", b"b")]
    store.commit([(k, b"v") for k in keys], [], {})
    for window in (0, 1, 255):
        mine = sorted(k for k in keys if k.startswith(window_prefix(window)))
        assert [k for k, _ in store.scan(window_prefix(window))] == mine
        assert store.first_and_last(window_prefix(window)) == (mine[0], mine[-1])
    assert store.first_and_last(window_prefix(2)) is None
    store.close()
