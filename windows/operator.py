"""The life of one window definition within one partition: apply, close, emit.

``WindowOperator`` holds what is common to every window type: lateness per
event, the split of a batch into segments, and the order of emission. Within
a batch the engine applies events in bulk, which is exact because the batch
is cut wherever per-event processing would have observed something in
between: before an event that is late for some (but not all) of its windows,
so those windows close without it (a subclass may prove a cut unnecessary,
see ``cut_needed``), and at every update tick of an ``emit: update`` window.
Subclasses supply the window geometry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from windows.aggregation import Aggregation
from windows.definitions import EmitMode, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.pane_store import PaneStore
from windows.pane_table import PaneTable
from windows.results import WindowResults
from windows.stream_time import NO_TIME

KeyOrder = Callable[[Int64Array], Int64Array]


def by_id(key_ids: Int64Array) -> Int64Array:
    """The default key order: by key id."""
    return key_ids


class WindowOperator(ABC):
    """Runtime state and logic of one window definition over one partition's keys."""

    #: True when a pane feeds several windows, so partly-late events must cut the batch.
    shares_panes: bool = True
    #: Sort rank of key ids (set by the engine; by id unless told otherwise).
    key_order: KeyOrder = staticmethod(by_id)

    def __init__(self, spec: WindowSpec, index: int, pane_size: int) -> None:
        self.spec = spec
        self.index = index
        self.table = PaneTable(Aggregation(spec.aggregates, spec.trace_links), pane_size)
        self.closed_upto = NO_TIME  # windows closing at or before this were emitted
        self.pending: set[int] = set()  # slots changed since the last update emission

    # ---- geometry supplied by subclasses ---------------------------------------------
    @abstractmethod
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        """Start of the pane holding each timestamp."""

    @abstractmethod
    def first_close(self, ts: Int64Array) -> Int64Array:
        """Close point of the earliest-closing window that can contain each timestamp."""

    @abstractmethod
    def last_close(self, ts: Int64Array) -> Int64Array:
        """Close point of the latest-closing window that can contain each timestamp."""

    def cut_needed(self, batch: EventBatch, partly_late: np.ndarray) -> np.ndarray:
        """Which partly-late events need the batch cut before them (conservative: all)."""
        return partly_late

    def panes_created(self, slots: Int64Array) -> None:
        """Hook: ``slots`` were just created (subclasses that index panes override it)."""
        return None

    @abstractmethod
    def close(self, upto: int) -> WindowResults | None:
        """Emit windows closing in ``(closed_upto, upto]``, release dead panes."""

    @abstractmethod
    def updates(self, now: int) -> WindowResults | None:
        """Emit open windows containing panes changed since the last update."""

    @abstractmethod
    def close_everything(self) -> WindowResults | None:
        """Emit every window that holds data and release all panes (end of input)."""

    # ---- shared processing -----------------------------------------------------------
    @property
    def emits_updates(self) -> bool:
        """Whether this window emits intermediate updates."""
        return self.spec.emit is EmitMode.UPDATE

    def process(
        self,
        batch: EventBatch,
        st_before: Int64Array,
        st_after: Int64Array,
        st_start: int,
    ) -> tuple[list[WindowResults], np.ndarray, np.ndarray]:
        """Apply a batch; return what it emitted, and per event: late for all / for some windows."""
        n = len(batch)
        late_all = st_before >= self.last_close(batch.ts)
        late_some = st_before >= self.first_close(batch.ts)
        cuts = np.zeros(n + 1, dtype=bool)
        if self.shares_panes:
            partly_late = late_some & ~late_all
            if partly_late.any():
                cuts[:n] |= self.cut_needed(batch, partly_late)
        ticks = np.zeros(n + 1, dtype=bool)
        if self.emits_updates:
            interval = self.spec.update_interval
            tick = np.floor_divide(st_after, interval)
            previous = np.empty_like(tick)
            previous[0] = st_start // interval if st_start != NO_TIME else tick[0]
            previous[1:] = tick[:-1]
            ticks[:n] = tick != previous
        cuts |= ticks
        cuts[0] = False
        cuts[n] = True
        emitted: list[WindowResults] = []
        if n and ticks[0]:
            self._emit(emitted, self.updates(st_start))
        keep = ~late_all
        start = 0
        for end in np.flatnonzero(cuts).tolist():
            if end <= start:
                continue
            segment = np.arange(start, end)[keep[start:end]]
            if segment.shape[0]:
                touched = self.table.add(batch.take(segment), self.pane_starts(batch.ts[segment]))
                if self.table.last_created.shape[0]:
                    self.panes_created(self.table.last_created)
                if self.emits_updates:
                    self.pending.update(touched.tolist())
            now = int(st_after[end - 1])
            self._emit(emitted, self.close(now))
            if end < n and ticks[end]:
                self._emit(emitted, self.updates(now))
            start = end
        return emitted, late_all, late_some

    def advance(self, st_start: int, now: int) -> list[WindowResults]:
        """Stream time moved from ``st_start`` to ``now`` without an event: emit what that ticks and closes."""
        emitted: list[WindowResults] = []
        if self.emits_updates and st_start != NO_TIME:
            interval = self.spec.update_interval
            if now // interval != st_start // interval:
                self._emit(emitted, self.updates(st_start))
        self._emit(emitted, self.close(now))
        return emitted

    @staticmethod
    def _emit(emitted: list[WindowResults], results: WindowResults | None) -> None:
        if results is not None and len(results):
            emitted.append(results)

    def _results(
        self,
        *,
        final: bool,
        key_ids: Int64Array,
        starts: Int64Array,
        ends: Int64Array,
        emitted_at: Int64Array,
        values: dict[str, np.ndarray],
    ) -> WindowResults:
        order = np.lexsort((self.key_order(key_ids), ends, starts, emitted_at))
        unsorted = WindowResults(self.spec.name, self.index, final, key_ids, starts, ends, emitted_at, values)
        return unsorted.take(order)

    # ---- memory: evicting panes to the store and reading them back -------------------
    def attach(self, store: PaneStore) -> None:
        """Let this window's panes be evicted to ``store`` and read back from it."""
        self.table.attach(store, self.index)

    def evict(self, budget: int) -> int:
        """Keep at most ``budget`` panes in memory, dropping the least recently touched of those the store
        holds as they are (panes changed since the last commit, or awaiting an update emission, stay).
        Return how many were dropped."""
        table = self.table
        excess = len(table) - budget
        if excess <= 0 or table.store is None:
            return 0
        live = table.live_slots()
        kept = self.pending | table.changed  # awaiting an update emission, or not yet in the store
        if kept:
            live = live[~np.isin(live, np.fromiter(kept, dtype=np.int64, count=len(kept)))]
        victims = live[np.argsort(table.touched[live], kind="stable")[:excess]]
        table.evict(victims)
        if len(table) * 2 < table.capacity:
            self.slots_moved(table.repack())
        else:
            self.slots_moved(None)
        return int(victims.shape[0])

    def slots_moved(self, mapping: Int64Array | None) -> None:
        """Slots were evicted and, with a ``mapping`` (old slot -> new), renumbered."""
        if mapping is not None and self.pending:
            self.pending = {int(mapping[slot]) for slot in self.pending}

    def keys_renumbered(self, mapping: Int64Array) -> None:
        """Key ids changed (old id -> new id, for every key of a pane in memory)."""
        table = self.table
        live = table.live_slots()
        table.key_ids[live] = mapping[table.key_ids[live]]
        table.index = dict(zip(zip(table.key_ids[live].tolist(), table.panes[live].tolist()), live.tolist()))

    def key_ids_in_use(self) -> Int64Array:
        """Key ids of the panes in memory."""
        return self.table.key_ids[self.table.live_slots()]

    def forget_pending(self, slots: list[int]) -> None:
        """Drop released slots from the update set."""
        if self.pending:
            self.pending.difference_update(slots)
