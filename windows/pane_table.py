"""Slots of per-(key, pane) aggregation state, held as columns.

A pane is a slice of time of one key: for tumbling and hopping windows a
``gcd(size, step)``-long slice, for sliding windows a single millisecond. A
window's result is the merge of its panes. The table maps ``(key_id, pane
start)`` to a slot (``PaneIndex``, a C hash table), keeps the state columns,
and remembers which slots changed and which were released since the store
last took them, so the state store can write exactly that. A pane released
before the store ever held it (created and closed between two commits, as
most sliding-window points are) needs no deletion and is not reported.

With a ``PaneStore`` attached, the table holds only part of the state: panes
already written to the store can be evicted from memory, and the table reads
them back (``slots_for``, ``find``, ``load_range``) whenever they are needed
again. ``spilled`` bounds the pane starts that may be stored but not in
memory, so a table that never evicted (the common case) never asks the store.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from windows.aggregation import Aggregation
from windows.events import EventBatch, Int64Array
from windows.pane_index import PaneIndex, first_seen
from windows.pane_state import AddContext
from windows.pane_store import PaneStore
from windows.radix_sort import sort_packed
from windows.sort_order import lex_order


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
    order = lex_order((b, a))
    sa, sb = a[order], b[order]
    starts = np.ones(sa.shape[0], dtype=bool)
    starts[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    group = np.cumsum(starts) - 1
    inverse = np.empty_like(group)
    inverse[order] = group
    return sa[starts], sb[starts], inverse


class _FreeSlots:
    """Slots given up, to be used again: a stack, the last given up taken first. Each push goes on in
    descending slot order, so the slots taken next come in ascending order: a sliding window's new points
    (most of its adds) then write their per-slot state into neighbouring slots, a few cache lines for many
    slots, instead of all over the table."""

    def __init__(self) -> None:
        self._slots = np.zeros(0, dtype=np.int64)
        self._count = 0

    def push(self, slots: Int64Array) -> None:
        need = self._count + int(slots.shape[0])
        if need > self._slots.shape[0]:
            grown = np.zeros(max(need, 2 * self._slots.shape[0]), dtype=np.int64)
            grown[: self._count] = self._slots[: self._count]
            self._slots = grown
        pushed = self._slots[self._count : need]
        pushed[:] = slots
        self._count = need  # on the stack even if the sort fails (slots are never negative: their release checks)
        if pushed.shape[0] > 1:
            sort_packed(pushed, int(pushed.max()).bit_length())
            pushed[:] = pushed[::-1].copy()

    def stack(self) -> tuple[Int64Array, int]:
        """The stack's storage and how many of its entries are free slots (the top, taken first, last; each
        push's slots in descending order)."""
        return self._slots, self._count

    def taken_down_to(self, count: int) -> None:
        """The slots above the ``count`` lowest were taken (from the top, by the compiled add)."""
        if not 0 <= count <= self._count:
            raise ValueError(f"{self._count} free slots cannot become {count} by taking some.")
        self._count = count

    def pop(self, most: int) -> Int64Array:
        """Up to ``most`` slots from the top of the stack, the top first."""
        take = min(most, self._count)
        self._count -= take
        return self._slots[self._count : self._count + take][::-1].copy()


class PaneTable:
    """Aggregation state of one window over all keys of one partition."""

    def __init__(self, aggregation: Aggregation, pane_size: int) -> None:
        self.aggregation = aggregation
        self.pane_size = pane_size
        self.capacity = 0
        self.key_ids = np.zeros(0, dtype=np.int64)
        self.panes = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)
        self.stored = np.zeros(0, dtype=bool)  # per slot: the store holds this pane (in some version)
        self.index = PaneIndex()
        self._free = _FreeSlots()
        self._high_water = 0
        self.changed = np.zeros(0, dtype=bool)  # per slot: changed since the store last took it
        # (key ids, pane starts) of the panes released since the store last took them
        self.released: list[tuple[Int64Array, Int64Array]] = []
        self.last_created = np.zeros(0, dtype=np.int64)  # slots the latest pane creation made (any caller)
        self.touched = np.zeros(0, dtype=np.int64)  # per slot: the add call that last touched it
        self._position = np.zeros(0, dtype=np.int64)  # per slot: scratch for ``first_seen``
        self._adds = 0
        self.store: PaneStore | None = None
        self.window = 0  # this table's window index in the store
        self.spilled: tuple[int, int] | None = None  # [low, high] pane starts maybe stored and not in memory
        self.evicted_total = 0
        self.loaded_total = 0

    def attach(self, store: PaneStore, window: int) -> None:
        """Read evicted panes back from ``store``, where this table's panes are window ``window``."""
        self.store, self.window = store, window

    def __len__(self) -> int:
        return len(self.index)

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = max(needed, self.capacity * 2, 1024)
        for name, fill in (
            ("key_ids", 0),
            ("panes", 0),
            ("alive", False),
            ("stored", False),
            ("changed", False),
            ("touched", 0),
            ("_position", 0),
        ):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)  # each byte written once: the rows kept, then the new ones
            new[: old.shape[0]] = old
            new[old.shape[0] :] = fill
            setattr(self, name, new)
        for column in self.aggregation.columns.values():
            column.grow(capacity)
        self.capacity = capacity

    def slots_for(self, key_ids: Int64Array, panes: Int64Array) -> Int64Array:
        """The slot of each pane (repeats allowed), creating missing ones, each once: read back from the
        store when evicted there, otherwise empty (and then not in the store, which ``stored`` relies on)."""
        key_ids = np.ascontiguousarray(key_ids, dtype=np.int64)
        panes = np.ascontiguousarray(panes, dtype=np.int64)
        slots, firsts, missing_of = self.index.lookup_missing(key_ids, panes)
        self.last_created = firsts[:0]
        if firsts.shape[0]:
            keys, starts = key_ids[firsts], panes[firsts]
            found, states = self._fetch(keys, starts)
            new = self._create(keys, starts)
            if found.shape[0]:
                self._set_loaded(new[found], states)
            at = np.flatnonzero(missing_of >= 0)
            slots[at] = new[missing_of[at]]
        return slots

    @staticmethod
    def _bytes(flags: np.ndarray) -> np.ndarray:
        """A per-slot flag column as the bytes the compiled index writes."""
        return flags.view(np.uint8)

    def _create(self, key_ids: Int64Array, panes: Int64Array) -> Int64Array:
        """New empty slots for panes not in the table."""
        fresh = self._free.pop(panes.shape[0])
        extra = panes.shape[0] - fresh.shape[0]
        if extra:
            self._grow(self._high_water + extra)
            new = np.concatenate([fresh, np.arange(self._high_water, self._high_water + extra, dtype=np.int64)])
            self._high_water += extra
        else:
            new = fresh
        # index them and set their key ids, starts, alive, not stored (a pane created empty is not in the
        # store: ``_fetch`` looked) and touched by this add
        self.index.create(
            key_ids,
            panes,
            new,
            self.key_ids,
            self.panes,
            self._bytes(self.alive),
            self._bytes(self.stored),
            self.touched,
            self._adds,
        )
        self.last_created = new
        for column in self.aggregation.columns.values():
            column.reset(new)
        return new

    def _create_loaded(self, key_ids: Int64Array, panes: Int64Array, states: list[list[object]]) -> Int64Array:
        """New slots holding panes read back from the store."""
        new = self._create(key_ids, panes)
        self._set_loaded(new, states)
        return new

    def _set_loaded(self, slots: Int64Array, states: list[list[object]]) -> None:
        """Give slots the states read back from the store (which therefore holds them)."""
        self._set_states(slots, states)
        self.stored[slots] = True

    def _set_states(self, slots: Int64Array, states: list[list[object]]) -> None:
        for position, column in enumerate(self.aggregation.columns.values()):
            column.restore(slots, [state[position] for state in states])

    def _fetch(self, key_ids: Int64Array, panes: Int64Array) -> tuple[Int64Array, list[list[object]]]:
        """Which of these panes (not in memory) the store holds, and their states."""
        if self.spilled is None or self.store is None:  # nothing was evicted: the store has none of them
            return np.zeros(0, dtype=np.int64), []
        low, high = self.spilled
        asked = np.flatnonzero((panes >= low) & (panes <= high))  # only panes in the evicted range may be there
        if asked.shape[0] == 0:
            return asked, []
        found, states = self.store.fetch(self.window, key_ids[asked], panes[asked])
        self.loaded_total += int(found.shape[0])
        return asked[found], states

    def find(self, key_ids: Int64Array, panes: Int64Array) -> Int64Array:
        """Slots of the given panes (repeats allowed), read back from the store if evicted; -1 where no
        such pane exists."""
        slots = self.index.lookup(key_ids, panes)
        missing = np.flatnonzero(slots < 0)
        if missing.shape[0] and self.spilled is not None:
            keys_u, panes_u, inverse = unique_pairs(key_ids[missing], panes[missing])
            found, states = self._fetch(keys_u, panes_u)
            if found.shape[0]:
                new = self._create_loaded(keys_u[found], panes_u[found], states)
                slot_of_unique = np.full(keys_u.shape[0], -1, dtype=np.int64)
                slot_of_unique[found] = new
                slots[missing] = slot_of_unique[inverse]
        return slots

    def load_range(self, low: int, high: int, key_ids: Int64Array | None = None) -> Int64Array:
        """Read back every evicted pane starting in ``[low, high)`` (of ``key_ids`` only, when given);
        return the slots created."""
        if self.spilled is None or self.store is None:
            return np.zeros(0, dtype=np.int64)
        spilled_low, spilled_high = self.spilled
        low, high = max(low, spilled_low), min(high, spilled_high + 1)
        if low >= high:
            return np.zeros(0, dtype=np.int64)
        created = []
        for keys, panes, states in self.store.scan(self.window, low, high, key_ids):
            at = np.flatnonzero(self.index.lookup(keys, panes) < 0)  # memory is never older than the store
            self.loaded_total += int(at.shape[0])
            created.append(self._create_loaded(keys[at], panes[at], [states[i] for i in at.tolist()]))
        if key_ids is None:  # everything spilled in [low, high) is now in memory
            if low <= spilled_low:
                spilled_low = high
            if high > spilled_high:
                spilled_high = low - 1
            self.spilled = (spilled_low, spilled_high) if spilled_low <= spilled_high else None
        return np.concatenate(created) if created else np.zeros(0, dtype=np.int64)

    def evict(self, slots: Int64Array) -> None:
        """Drop panes from memory that the store holds as they are (no change since it last took them)."""
        if slots.shape[0] == 0:
            return
        if self.changed[slots].any():
            raise ValueError("cannot evict panes with changes the state store has not taken")
        panes = self.panes[slots]
        self.index.remove(self.key_ids[slots], panes)
        self.alive[slots] = False
        self._free.push(slots)
        low, high = int(panes.min()), int(panes.max())
        if self.spilled is not None:
            low, high = min(low, self.spilled[0]), max(high, self.spilled[1])
        self.spilled = (low, high)
        self.evicted_total += int(slots.shape[0])

    def repack(self) -> Int64Array:
        """Move live slots to the front of fresh, right-sized arrays; return old slot -> new slot (-1: gone)."""
        live = self.live_slots()
        mapping = np.full(self.capacity, -1, dtype=np.int64)
        mapping[live] = np.arange(live.shape[0], dtype=np.int64)
        capacity = max(1024, int(live.shape[0] * 1.25))
        for name in ("key_ids", "panes", "alive", "stored", "changed", "touched", "_position"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: live.shape[0]] = old[live]
            setattr(self, name, new)
        states = self.snapshot(live)
        self.aggregation = self.aggregation.fresh()
        for column in self.aggregation.columns.values():
            column.grow(capacity)
        self.capacity = capacity
        self._high_water = int(live.shape[0])
        self._free = _FreeSlots()
        if states:
            self._set_states(np.arange(live.shape[0], dtype=np.int64), states)
        self.reindex()
        self.last_created = self.last_created[:0]
        return mapping

    def add(
        self, batch: EventBatch, pane_starts: Int64Array, pane_ends: Int64Array | None = None
    ) -> tuple[Int64Array, Int64Array]:
        """Fold ``batch`` into the panes starting at ``pane_starts`` (and ending at ``pane_ends``, when a pane
        is named by something other than its start); return the distinct slots touched (in the order the
        events first touch them; callers take them in any order), and each event's position among them."""
        if self.spilled is None:  # nothing evicted: no pane to read back, so all in one compiled pass
            slots, unique_slots, inverse = self._add_in_memory(batch.key_ids, pane_starts)
        else:
            slots = self.slots_for(batch.key_ids, pane_starts)
            unique_slots, inverse = self.distinct(slots)
            self.changed[unique_slots] = True
        ctx = AddContext(
            batch=batch,
            slots=slots,
            pane_ends=pane_starts + self.pane_size if pane_ends is None else pane_ends,
            unique_slots=unique_slots,
            inverse=inverse,
        )
        for column in self.aggregation.columns.values():
            column.add(ctx)
        return unique_slots, inverse

    def _add_in_memory(self, key_ids: Int64Array, panes: Int64Array) -> tuple[Int64Array, Int64Array, Int64Array]:
        """``slots_for`` and ``distinct`` of a table that evicted nothing, in one pass (``PaneIndex.add_panes``):
        each pane's slot (created empty where missing, free slots last given up first, each release's lowest
        first), the distinct slots (marked changed) and each pane's index among them."""
        key_ids = np.ascontiguousarray(key_ids, dtype=np.int64)
        panes = np.ascontiguousarray(panes, dtype=np.int64)
        n = key_ids.shape[0]
        self._adds += 1
        out = np.empty((4, n), dtype=np.int64)  # slots, indexes among the distinct, distinct, created
        free, free_count = self._free.stack()
        counts = np.asarray([0, 0, free_count, self._high_water], dtype=np.int64)
        at = 0
        try:
            while True:
                at = self.index.add_panes(
                    key_ids,
                    panes,
                    at,
                    out,
                    counts,
                    free,
                    self.key_ids,
                    self.panes,
                    self._bytes(self.alive),
                    self._bytes(self.stored),
                    self._bytes(self.changed),
                    self.touched,
                    self._position,
                    self._adds,
                )
                if at == n:
                    break
                # every slot in use: room for a slot per pair left (at least twice as many slots)
                self._grow(int(counts[3]) + n - at)
        finally:  # the panes the index took are the table's, even when a growth failed on the way
            created, distinct, free_count, self._high_water = counts.tolist()
            self._free.taken_down_to(free_count)
            new = out[3, :created].copy()
            self.last_created = new
            for column in self.aggregation.columns.values():
                column.reset(new)
        return out[0], out[2, :distinct], out[1]

    def distinct(self, slots: Int64Array) -> tuple[Int64Array, Int64Array]:
        """The distinct ``slots`` (of panes just added to) in the order they first occur, and each one's
        index among them; they count as touched by a new add (``touched``, which eviction goes by)."""
        self._adds += 1
        return first_seen(np.ascontiguousarray(slots, dtype=np.int64), self.touched, self._position, self._adds)

    def reindex(self) -> None:
        """Rebuild the pane index from the live slots (after their key ids or positions changed)."""
        live = self.live_slots()
        self.index = PaneIndex(live.shape[0])
        self.index.insert(self.key_ids[live], self.panes[live], live)

    @property
    def high_water(self) -> int:
        """Slots at or above it have never been used (``alive`` tells which below it are in use)."""
        return self._high_water

    def live_slots(self) -> Int64Array:
        """Every slot in use."""
        return np.flatnonzero(self.alive[: self._high_water]).astype(np.int64)

    def release(self, slots: Iterable[int] | Int64Array) -> None:
        """Drop panes whose last window has closed."""
        at = slots if isinstance(slots, np.ndarray) else np.fromiter(slots, dtype=np.int64)
        if at.shape[0] == 0:
            return
        at = np.ascontiguousarray(at, dtype=np.int64)
        # out of the index, dead and unchanged; a pane the store never held needs no deletion
        keys, starts = self.index.release(
            at, self.key_ids, self.panes, self._bytes(self.alive), self._bytes(self.changed), self._bytes(self.stored)
        )
        if keys.shape[0]:
            self.released.append((keys, starts))
        self._free.push(at)

    def changes_pending(self) -> tuple[int, int]:
        """How many panes the store would write, and how many it would delete, if it took the changes now."""
        released = sum(int(keys.shape[0]) for keys, _ in self.released)
        return int(np.count_nonzero(self.changed[: self._high_water])), released

    def take_changes(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        """Changed slots (sorted), and the key ids and starts of stored panes released, since the last call;
        forget them (the caller writes the changed slots to the store)."""
        # an array, not a list: numpy indexing with a long list of ints takes far more memory
        changed = np.flatnonzero(self.changed[: self._high_water]).astype(np.int64)
        released = self.released
        self.stored[changed] = True
        self.changed[changed] = False
        self.released = []
        if not released:
            return changed, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return changed, np.concatenate([keys for keys, _ in released]), np.concatenate([p for _, p in released])

    def snapshot(self, slots: Int64Array) -> list[list[object]]:
        """Per slot, one plain state per column (the form ``restore`` takes)."""
        per_column = [column.snapshot(slots) for column in self.aggregation.columns.values()]
        return [list(states) for states in zip(*per_column)] if per_column else [[] for _ in range(slots.shape[0])]
