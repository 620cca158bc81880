"""Slots of per-(key, pane) aggregation state, held as columns.

A pane is a slice of time of one key: for tumbling and hopping windows a
``gcd(size, step)``-long slice, for sliding windows a single millisecond. A
window's result is the merge of its panes. The table maps ``(key_id, pane
start)`` to a slot, keeps the state columns, and remembers which slots changed
and which were released since the store last took them, so the state store
can write exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

import numpy as np

from windows.aggregation import Aggregation
from windows.events import EventBatch, Int64Array
from windows.pane_state import AddContext

PaneId = tuple[int, int]  # (key id, pane start)


def unique_pairs(a: Int64Array, b: Int64Array) -> tuple[Int64Array, Int64Array, Int64Array]:
    """Distinct ``(a, b)`` pairs sorted by ``(a, b)``, and each input's index among them."""
    if a.shape[0] == 0:
        return a, b, np.zeros(0, dtype=np.int64)
    b_min = int(b.min())
    b_span = int(b.max()) - b_min + 1
    a_max = int(a.max())
    if a.min() >= 0 and a_max.bit_length() + b_span.bit_length() <= 62:
        composite = a * b_span + (b - b_min)
        unique, inverse = np.unique(composite, return_inverse=True)
        return unique // b_span, unique % b_span + b_min, inverse.astype(np.int64)
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    starts = np.ones(sa.shape[0], dtype=bool)
    starts[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    group = np.cumsum(starts) - 1
    inverse = np.empty_like(group)
    inverse[order] = group
    return sa[starts], sb[starts], inverse


class PaneTable:
    """Aggregation state of one window over all keys of one partition."""

    def __init__(self, aggregation: Aggregation, pane_size: int) -> None:
        self.aggregation = aggregation
        self.pane_size = pane_size
        self.capacity = 0
        self.key_ids = np.zeros(0, dtype=np.int64)
        self.panes = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)
        self.index: dict[PaneId, int] = {}
        self._free: list[int] = []
        self._high_water = 0
        self.changed: set[int] = set()  # slots changed since the store last took them
        self.released: list[PaneId] = []  # panes removed since the store last took them
        self.last_created = np.zeros(0, dtype=np.int64)  # slots the latest slots_for call created

    def __len__(self) -> int:
        return len(self.index)

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = max(needed, self.capacity * 2, 1024)
        for name, fill in (("key_ids", 0), ("panes", 0), ("alive", False)):
            old = getattr(self, name)
            new = np.full(capacity, fill, dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        for column in self.aggregation.columns.values():
            column.grow(capacity)
        self.capacity = capacity

    def slots_for(self, key_ids: Int64Array, panes: Int64Array) -> Int64Array:
        """Slots of the given distinct panes, creating (and resetting) missing ones."""
        index = self.index
        pairs = list(zip(key_ids.tolist(), panes.tolist()))
        slots = np.fromiter(map(index.get, pairs, repeat(-1, len(pairs))), dtype=np.int64, count=len(pairs))
        missing = np.flatnonzero(slots < 0)
        self.last_created = missing[:0]
        if missing.shape[0]:
            take_free = min(missing.shape[0], len(self._free))
            fresh = self._free[len(self._free) - take_free :]
            del self._free[len(self._free) - take_free :]
            extra = missing.shape[0] - take_free
            if extra:
                self._grow(self._high_water + extra)
                fresh.extend(range(self._high_water, self._high_water + extra))
                self._high_water += extra
            new = np.asarray(fresh, dtype=np.int64)
            index.update(zip([pairs[i] for i in missing.tolist()], fresh))
            slots[missing] = new
            self.last_created = new
            self.key_ids[new] = key_ids[missing]
            self.panes[new] = panes[missing]
            self.alive[new] = True
            for column in self.aggregation.columns.values():
                column.reset(new)
        return slots

    def add(self, batch: EventBatch, pane_starts: Int64Array) -> Int64Array:
        """Fold ``batch`` into the panes starting at ``pane_starts``; return the slots touched."""
        keys_u, panes_u, inverse = unique_pairs(batch.key_ids, pane_starts)
        unique_slots = self.slots_for(keys_u, panes_u)
        ctx = AddContext(
            batch=batch,
            slots=unique_slots[inverse],
            pane_ends=pane_starts + self.pane_size,
            unique_slots=unique_slots,
            inverse=inverse,
        )
        for column in self.aggregation.columns.values():
            column.add(ctx)
        self.changed.update(unique_slots.tolist())
        return unique_slots

    def live_slots(self) -> Int64Array:
        """Every slot in use."""
        return np.flatnonzero(self.alive[: self._high_water]).astype(np.int64)

    def release(self, slots: Iterable[int]) -> None:
        """Drop panes whose last window has closed."""
        slot_list = list(slots)
        if not slot_list:
            return
        at = np.asarray(slot_list, dtype=np.int64)
        panes: list[PaneId] = list(zip(self.key_ids[at].tolist(), self.panes[at].tolist()))
        index = self.index
        for pane in panes:
            del index[pane]
        self.alive[at] = False
        self.changed.difference_update(slot_list)
        self.released.extend(panes)
        self._free.extend(slot_list)

    def restore(self, key_ids: Int64Array, panes: Int64Array, states: list[list[object]]) -> None:
        """Load panes from the state store; ``states[i]`` lists one state per column, in order."""
        slots = self.slots_for(key_ids, panes)
        for position, column in enumerate(self.aggregation.columns.values()):
            column.restore(slots, [state[position] for state in states])
        self.changed.difference_update(slots.tolist())

    def take_changes(self) -> tuple[list[int], list[PaneId]]:
        """Changed slots and released panes since the last call, and forget them."""
        changed, released = sorted(self.changed), self.released
        self.changed, self.released = set(), []
        return changed, released

    def snapshot(self, slots: list[int]) -> list[list[object]]:
        """Per slot, one plain state per column (the form ``restore`` takes)."""
        per_column = [column.snapshot(slots) for column in self.aggregation.columns.values()]
        return [list(states) for states in zip(*per_column)] if per_column else [[] for _ in slots]
