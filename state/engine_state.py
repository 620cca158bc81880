"""Move a partition engine's window state to and from its RocksDB partition store.

``persist`` writes what changed since the last commit (changed panes, released
panes, stream time, per-window progress) together with caller metadata such
as the source offset, in one atomic batch. ``restore`` rebuilds an engine
from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from state.errors import StateError
from state.key_encoding import decode_values, encode_value, pane_key, parse_pane_key, window_prefix
from state.partition_store import PartitionStore
from windows.engine import PartitionEngine

ENGINE_META = "engine"


@dataclass(frozen=True)
class CommitStats:
    """What one commit wrote."""

    panes_written: int
    panes_deleted: int
    bytes_written: int


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
        changed, released = table.take_changes()
        index = operator.index
        if changed:
            states = table.snapshot(changed)
            keys = table.key_ids[changed].tolist()
            panes = table.panes[changed].tolist()
            puts.extend(
                (pane_key(index, pane, key_bytes(key)), encode_value(state))
                for key, pane, state in zip(keys, panes, states)
            )
        deletes.extend(pane_key(index, pane, key_bytes(key)) for key, pane in released)
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


def restore(
    store: PartitionStore, engine: PartitionEngine, key_ids: Callable[[list[bytes]], list[int]]
) -> bool:
    """Load stored state into a fresh engine; return False when the store holds none."""
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
        raw_keys: list[bytes] = []
        panes: list[int] = []
        raw_values: list[bytes] = []
        for raw_key, raw_value in store.scan(window_prefix(operator.index)):
            _, pane, key = parse_pane_key(raw_key)
            raw_keys.append(key)
            panes.append(pane)
            raw_values.append(raw_value)
        if raw_keys:
            keys = np.asarray(key_ids(raw_keys), dtype=np.int64)
            operator.table.restore(keys, np.asarray(panes, dtype=np.int64), decode_values(raw_values))
        operator.closed_upto = int(progress["closed_upto"])
        for key_text, pane in progress["pending"]:
            slot = operator.table.index.get((key_ids([key_text.encode()])[0], int(pane)))
            if slot is not None:
                operator.pending.add(slot)
    return True
