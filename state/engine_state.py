"""Move a partition engine's window state to and from its RocksDB partition store.

``persist`` writes what changed since the last commit (changed panes, released
panes, stream time, per-window progress) together with caller metadata such
as the source offset, in one atomic batch. ``restore`` attaches the store to
a fresh engine (``StoredPanes``) and reads back only stream time and window
progress: panes stay in RocksDB until the engine needs them, so a restore
takes the same time whatever the size of the state, and the engine can evict
persisted panes from memory and read them back later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from state.errors import StateError
from state.key_encoding import VALUE_VERSION, decode_values, pane_key, pane_keys, parse_pane_key, window_prefix
from state.pane_encoding import pane_key_list, pane_puts
from state.partition_store import PartitionStore
from windows import sketch_counts
from windows.engine import PartitionEngine
from windows.events import Int64Array
from windows.pane_state import CountColumn, SketchColumn, StateColumn, TraceColumn

ENGINE_META = "engine"


@dataclass(frozen=True)
class CommitStats:
    """What one commit wrote."""

    panes_written: int
    panes_deleted: int
    bytes_written: int


def _column_states(column: StateColumn, slots: Int64Array) -> Int64Array | list[bytes]:
    """One column's state of each of ``slots``, as ``pane_puts`` takes it: counts and trace entries as their
    arrays (written in C), sketch counts as JSON written in C, any other column as each pane's snapshot in
    JSON."""
    if type(column) is CountColumn:
        return column.n[slots]
    if type(column) is TraceColumn:
        return column.rows[slots]
    if type(column) is SketchColumn:
        return sketch_counts.encoded_states(column.buckets, slots)
    return [orjson.dumps(state) for state in column.snapshot(slots)]


def persist(
    store: PartitionStore,
    engine: PartitionEngine,
    key_bytes: Callable[[int], bytes],
    meta: Mapping[str, bytes],
) -> CommitStats:
    """Write the engine's changes since the last commit, and ``meta``, atomically."""
    puts: list[tuple[bytes, bytes]] = []
    deletes: list[bytes] = []
    progress = []
    for operator in engine.operators:
        table = operator.table
        changed, released_keys, released_panes = table.take_changes()
        index = operator.index
        if changed.shape[0]:
            keys = list(map(key_bytes, table.key_ids[changed].tolist()))
            columns = [_column_states(column, changed) for column in table.aggregation.columns.values()]
            puts.extend(pane_puts(window_prefix(index), table.panes[changed], keys, VALUE_VERSION, columns))
        if released_keys.shape[0]:
            released = list(map(key_bytes, released_keys.tolist()))
            deletes.extend(pane_key_list(window_prefix(index), released_panes, released))
        pending = sorted(operator.pending)
        progress.append(
            {
                "closed_upto": operator.closed_upto,
                "pending": [[key_bytes(int(table.key_ids[s])).decode(), int(table.panes[s])] for s in pending],
            }
        )
    engine_meta = orjson.dumps({"stream_time": engine.stream_time, "windows": progress})
    written = store.commit(puts, deletes, {**meta, ENGINE_META: engine_meta})
    return CommitStats(len(puts), len(deletes), written)


class StoredPanes:
    """A partition store read as a ``PaneStore``: panes addressed by window, pane start and key id."""

    def __init__(
        self,
        store: PartitionStore,
        key_bytes: Callable[[int], bytes],
        key_ids: Callable[[list[bytes]], list[int]],
    ) -> None:
        self.store = store
        self.key_bytes = key_bytes
        self.key_ids = key_ids

    def fetch(self, window: int, key_ids: Int64Array, panes: Int64Array) -> tuple[Int64Array, list[list[object]]]:
        key_bytes = self.key_bytes
        raws = self.store.get_many(pane_keys(window, panes.tolist(), [key_bytes(key) for key in key_ids.tolist()]))
        found = [i for i, raw in enumerate(raws) if raw is not None]
        return np.asarray(found, dtype=np.int64), decode_values([raws[i] for i in found])  # type: ignore[misc]

    def scan(
        self, window: int, low: int, high: int, key_ids: Int64Array | None = None
    ) -> tuple[Int64Array, Int64Array, list[list[object]]]:
        wanted = None if key_ids is None else {self.key_bytes(key) for key in key_ids.tolist()}
        keys: list[bytes] = []
        panes: list[int] = []
        raws: list[bytes] = []
        for raw_key, raw_value in self.store.scan_range(pane_key(window, low, b""), pane_key(window, high, b"")):
            _, pane, key = parse_pane_key(raw_key)
            if wanted is not None and key not in wanted:
                continue
            keys.append(key)
            panes.append(pane)
            raws.append(raw_value)
        ids = np.asarray(self.key_ids(keys), dtype=np.int64)
        return ids, np.asarray(panes, dtype=np.int64), decode_values(raws) if raws else []

    def bounds(self, window: int) -> tuple[int, int] | None:
        found = self.store.first_and_last(window_prefix(window))
        if found is None:
            return None
        return parse_pane_key(found[0])[1], parse_pane_key(found[1])[1]


def restore(
    store: PartitionStore,
    engine: PartitionEngine,
    key_ids: Callable[[list[bytes]], list[int]],
    key_bytes: Callable[[int], bytes],
) -> bool:
    """Attach ``store`` to a fresh engine and load its stream time and window progress (panes are read
    back when needed); return False when the store holds no state."""
    stored = StoredPanes(store, key_bytes, key_ids)
    engine.attach(stored)
    raw_meta = store.meta(ENGINE_META)
    if raw_meta is None:
        return False
    meta = orjson.loads(raw_meta)
    if len(meta["windows"]) != len(engine.operators):
        raise StateError(
            f"state at {store.path} was written for {len(meta['windows'])} windows, the job has "
            f"{len(engine.operators)}; use a fresh state directory for a changed job."
        )
    engine.stream_time = int(meta["stream_time"])
    for operator, progress in zip(engine.operators, meta["windows"]):
        operator.closed_upto = int(progress["closed_upto"])
        operator.table.spilled = stored.bounds(operator.index)
        pending = progress["pending"]
        if pending:
            keys = np.asarray(key_ids([key.encode() for key, _ in pending]), dtype=np.int64)
            slots = operator.table.find(keys, np.asarray([pane for _, pane in pending], dtype=np.int64))
            operator.pending.update(slots[slots >= 0].tolist())
    return True
