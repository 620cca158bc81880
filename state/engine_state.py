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

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import orjson

from state.errors import StateError
from state.key_encoding import VALUE_VERSION, decode_values, pane_key, pane_keys, parse_pane_key, window_prefix
from state.pane_encoding import delete_panes, put_panes
from state.partition_store import CommitStats, PartitionStore, PreparedCommit
from windows.engine import PartitionEngine
from windows.events import Int64Array
from windows.pane_state import CountColumn, SketchColumn, StateColumn, TraceColumn
from windows.stream_time import NO_TIME

ENGINE_META = "engine"


def _column_states(column: StateColumn, slots: Int64Array) -> Int64Array | list[bytes]:
    """One column's state of each of ``slots``, as ``put_panes`` takes it: counts and trace entries as their
    arrays (written in C), sketch counts as JSON written in C, any other column as each pane's snapshot in
    JSON."""
    if type(column) is CountColumn:
        return column.n[slots]
    if type(column) is TraceColumn:
        return column.rows[slots]
    if type(column) is SketchColumn:
        return column.table.encoded(slots)
    # orjson's bytes keep a 4 KiB buffer each (a chunk of them took 30 MiB): a copy through str holds only the text
    return [orjson.dumps(state).decode().encode() for state in column.snapshot(slots)]


#: Panes encoded at a time while a commit is assembled: the write batch grows by this many, and no list of
#: every change is held beside it (a commit of every pane at pressure would otherwise double its memory).
COMMIT_CHUNK = 8192


def persist(
    store: PartitionStore,
    engine: PartitionEngine,
    key_bytes: Callable[[int], bytes],
    meta: Mapping[str, bytes],
    *,
    chunk: int = COMMIT_CHUNK,
) -> CommitStats:
    """Write the engine's changes since the last commit, and ``meta``, atomically (``prepare``, then the
    store's ``write``)."""
    return store.write(prepare(store, engine, key_bytes, meta, chunk=chunk))


def prepare(
    store: PartitionStore,
    engine: PartitionEngine,
    key_bytes: Callable[[int], bytes],
    meta: Mapping[str, bytes],
    *,
    chunk: int = COMMIT_CHUNK,
) -> PreparedCommit:
    """The engine's changes since the last commit, and ``meta``, in one write batch, encoding ``chunk`` panes
    at a time. The engine takes them as written: batches must be written in the order they were prepared,
    and none may be prepared before the previous one of the store was written."""
    changes = []
    progress = []
    covered = 0  # released panes that range deletions delete
    released_below: dict[int, int] = {}
    for operator in engine.operators:
        table = operator.table
        changed, released_keys, released_panes = table.take_changes()
        # a released pane below where the window's range deletion ends goes with it (an evicted one too,
        # which ``released`` only holds when it was read back); the rest one by one
        below = released_below[operator.index] = operator.released_below()
        if released_panes.shape[0]:
            point = released_panes >= max(below, store.deleted_below.get(operator.index, NO_TIME))
            covered += int(released_panes.shape[0]) - int(np.count_nonzero(point))
            released_keys, released_panes = released_keys[point], released_panes[point]
        changes.append((operator.index, table, changed, released_keys, released_panes))
        pending = [[key_bytes(int(table.key_ids[s])).decode(), int(table.panes[s])] for s in sorted(operator.pending)]
        progress.append({"closed_upto": operator.closed_upto, "pending": pending})
    engine_meta = orjson.dumps({"stream_time": engine.stream_time, "windows": progress})

    def fill(put: Callable[[bytes, bytes], object], delete: Callable[[bytes], object]) -> CommitStats:
        deleted = deleted_bytes = stored = written = 0
        for index, _, _, released_keys, released_panes in changes:  # deletions first: see PartitionStore.prepare
            prefix = window_prefix(index)
            for at in range(0, released_keys.shape[0], chunk):
                keys = list(map(key_bytes, released_keys[at : at + chunk].tolist()))
                deleted_bytes += delete_panes(delete, prefix, released_panes[at : at + chunk], keys)
                deleted += len(keys)
        for index, table, changed, _, _ in changes:
            prefix = window_prefix(index)
            columns = list(table.aggregation.columns.values())
            for at in range(0, changed.shape[0], chunk):
                slots = changed[at : at + chunk]
                keys = list(map(key_bytes, table.key_ids[slots].tolist()))
                states = [_column_states(column, slots) for column in columns]
                written += put_panes(put, prefix, table.panes[slots], keys, VALUE_VERSION, states)
                stored += len(keys)
        return CommitStats(stored, covered + deleted, written, deleted_bytes)

    return store.prepare(fill, {**meta, ENGINE_META: engine_meta}, released_below)


#: Panes a scan decodes at a time: reading back every evicted pane of a closing window at once would hold
#: the Python form of each (about 600 bytes a pane) until the last was read.
SCAN_CHUNK = 4096


class StoredPanes:
    """A partition store read as a ``PaneStore``: panes addressed by window, pane start and key id; scans
    decode ``chunk`` panes at a time."""

    def __init__(
        self,
        store: PartitionStore,
        key_bytes: Callable[[int], bytes],
        key_ids: Callable[[list[bytes]], list[int]],
        chunk: int = SCAN_CHUNK,
    ) -> None:
        self.store = store
        self.chunk = chunk
        self.key_bytes = key_bytes
        self.key_ids = key_ids

    def fetch(self, window: int, key_ids: Int64Array, panes: Int64Array) -> tuple[Int64Array, list[list[object]]]:
        key_bytes = self.key_bytes
        raws = self.store.get_many(pane_keys(window, panes.tolist(), [key_bytes(key) for key in key_ids.tolist()]))
        found = [i for i, raw in enumerate(raws) if raw is not None]
        return np.asarray(found, dtype=np.int64), decode_values([raws[i] for i in found])  # type: ignore[misc]

    def scan(
        self, window: int, low: int, high: int, key_ids: Int64Array | None = None
    ) -> Iterator[tuple[Int64Array, Int64Array, list[list[object]]]]:
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
            if len(raws) == self.chunk:
                yield self._chunk(keys, panes, raws)
                keys, panes, raws = [], [], []
        if raws:
            yield self._chunk(keys, panes, raws)

    def _chunk(
        self, keys: list[bytes], panes: list[int], raws: list[bytes]
    ) -> tuple[Int64Array, Int64Array, list[list[object]]]:
        ids = np.asarray(self.key_ids(keys), dtype=np.int64)
        return ids, np.asarray(panes, dtype=np.int64), decode_values(raws)

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
    *,
    scan_chunk: int = SCAN_CHUNK,
) -> bool:
    """Attach ``store`` to a fresh engine and load its stream time and window progress (panes are read
    back when needed, ``scan_chunk`` at a time); return False when the store holds no state."""
    stored = StoredPanes(store, key_bytes, key_ids, scan_chunk)
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
