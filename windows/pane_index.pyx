# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The slot of every pane in memory, by ``(key id, pane start)``, in a C hash table.

A pane table looks up, creates and releases about one pane per event; as a
Python dict of tuples that cost a tuple and a hash per pane and call. This is
an open-addressing table with linear probing, each entry ``(key id, pane
start, slot)`` in one row of an int64 array (one cache line per probe): a
lookup hashes the pair (splitmix64), then walks to the pair or an empty entry.
Removed entries leave a tombstone that lookups walk over; the table is
rebuilt, without tombstones, when live entries and tombstones fill half of it.

``add_panes`` serves a pane table's ``add`` when no pane has been evicted:
in one pass over the events it finds each event's pane, inserts a missing one
where its probe ended (with a slot from the table's free stack or high water
mark) and lists the distinct slots touched. A table with evicted panes reads
them back before creating any, so it takes ``lookup_missing`` (the slot of
every event's pane, and the panes missing, each once), then ``create``, then
``first_seen`` (the distinct slots).
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t

from windows.pair_hash cimport mix
from windows.prefetch cimport __builtin_prefetch

import numpy as np

cdef int64_t EMPTY = -1
cdef int64_t REMOVED = -2


#: Lookups ask the CPU for the table row of the pair this many ahead: a batch's pairs land on rows all over a
#: table larger than the CPU's nearest caches, and each would otherwise wait for its row in turn.
cdef Py_ssize_t AHEAD = 8


cdef class PaneIndex:
    """Maps ``(key id, pane start)`` to a slot (a non-negative int64)."""

    cdef int64_t[:, ::1] entries  # (key id, pane start, slot: EMPTY, REMOVED or the slot)
    cdef Py_ssize_t mask
    cdef Py_ssize_t live
    cdef Py_ssize_t used  # live entries and tombstones

    def __cinit__(self, Py_ssize_t expected=0):
        self._allocate(expected)

    cdef void _allocate(self, Py_ssize_t expected):
        cdef Py_ssize_t size = 64
        while size < 4 * expected:
            size *= 2
        self.entries = np.full((size, 3), EMPTY, dtype=np.int64)
        self.mask = size - 1
        self.live = 0
        self.used = 0

    def __len__(self):
        return self.live

    cdef inline void _prefetch(self, int64_t key, int64_t pane) noexcept nogil:
        """Have the CPU start loading the first table row the pair's probe reads."""
        __builtin_prefetch(&self.entries[<Py_ssize_t>(mix(key, pane) & <uint64_t>self.mask), 0])

    cdef inline Py_ssize_t _find(self, int64_t key, int64_t pane) noexcept nogil:
        """The entry holding the pair, or -1."""
        cdef Py_ssize_t hole
        cdef Py_ssize_t at = self._walk(key, pane, &hole)
        return at if self.entries[at, 2] >= 0 else -1

    cdef inline void _put(self, int64_t key, int64_t pane, int64_t slot) noexcept nogil:
        """Store a pair known to be absent, in the first free entry of its probe."""
        cdef Py_ssize_t at = <Py_ssize_t>(mix(key, pane) & <uint64_t>self.mask)
        while self.entries[at, 2] >= 0:
            at = (at + 1) & self.mask
        if self.entries[at, 2] == EMPTY:
            self.used += 1
        self.entries[at, 0] = key
        self.entries[at, 1] = pane
        self.entries[at, 2] = slot
        self.live += 1

    cdef inline bint _insert_once(self, int64_t key, int64_t pane, int64_t slot) noexcept nogil:
        """Store a pair with one walk of its probe, in its first free entry (as ``_put``); False, storing
        nothing, when the pair is there already."""
        cdef Py_ssize_t hole
        cdef Py_ssize_t at = self._walk(key, pane, &hole)
        if self.entries[at, 2] >= 0:
            return False
        self._place(at, hole, key, pane, slot)
        return True

    cdef inline Py_ssize_t _walk(self, int64_t key, int64_t pane, Py_ssize_t* hole) noexcept nogil:
        """Walk the pair's probe to its entry or to the empty entry that ends it; return where it stopped,
        and set ``hole`` to the first tombstone on the way (-1: none)."""
        cdef Py_ssize_t at = <Py_ssize_t>(mix(key, pane) & <uint64_t>self.mask)
        cdef int64_t held
        hole[0] = -1
        while True:
            held = self.entries[at, 2]
            if held == EMPTY:
                return at
            if held == REMOVED:
                if hole[0] < 0:
                    hole[0] = at
            elif self.entries[at, 0] == key and self.entries[at, 1] == pane:
                return at
            at = (at + 1) & self.mask

    cdef inline void _place(self, Py_ssize_t empty, Py_ssize_t hole, int64_t key, int64_t pane,
                            int64_t slot) noexcept nogil:
        """Store a missing pair whose probe ended at ``empty``, in its first tombstone ``hole`` if any."""
        if hole < 0:
            hole = empty
            self.used += 1
        self.entries[hole, 0] = key
        self.entries[hole, 1] = pane
        self.entries[hole, 2] = slot
        self.live += 1

    cdef void _reserve(self, Py_ssize_t extra):
        """Rebuild into a larger (or tombstone-free) table when ``extra`` more entries would fill half."""
        if 2 * (self.used + extra) <= self.mask + 1:
            return
        cdef int64_t[:, ::1] old = self.entries
        cdef Py_ssize_t i
        self._allocate(self.live + extra)
        for i in range(old.shape[0]):
            if old[i, 2] >= 0:
                self._put(old[i, 0], old[i, 1], old[i, 2])

    def lookup(self, const int64_t[::1] keys, const int64_t[::1] panes):
        """The slot of each pair; -1 where the pair is not in the index."""
        cdef Py_ssize_t n = keys.shape[0], i, at
        _same_length(n, panes.shape[0])
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] found = out
        with nogil:
            for i in range(n):
                if i + AHEAD < n:
                    self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
                at = self._find(keys[i], panes[i])
                found[i] = self.entries[at, 2] if at >= 0 else -1
        return out

    def lookup_missing(self, const int64_t[::1] keys, const int64_t[::1] panes):
        """The slot of each pair (-1 where the pair is not in the index), and the pairs missing from it
        told apart: the position of each distinct missing pair's first occurrence (in the order they
        first occur), and each pair's index among them (-1 where the pair was found)."""
        cdef Py_ssize_t n = keys.shape[0], i, at, missing = 0, distinct = 0, size = 16
        cdef uint64_t mask
        cdef int64_t entry
        _same_length(n, panes.shape[0])
        slots_array = np.empty(n, dtype=np.int64)
        missing_array = np.full(n, -1, dtype=np.int64)
        cdef int64_t[::1] slots = slots_array
        cdef int64_t[::1] missing_of = missing_array
        with nogil:
            for i in range(n):
                if i + AHEAD < n:
                    self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
                at = self._find(keys[i], panes[i])
                slots[i] = self.entries[at, 2] if at >= 0 else -1
                missing += at < 0
        if missing == 0:
            return slots_array, np.zeros(0, dtype=np.int64), missing_array
        while size < 2 * missing:
            size *= 2
        mask = <uint64_t>(size - 1)
        table_array = np.full(size, -1, dtype=np.int64)  # index of a distinct missing pair, or -1
        firsts_array = np.empty(missing, dtype=np.int64)
        cdef int64_t[::1] table = table_array
        cdef int64_t[::1] firsts = firsts_array
        with nogil:
            for i in range(n):
                if slots[i] >= 0:
                    continue
                at = <Py_ssize_t>(mix(keys[i], panes[i]) & mask)
                while True:
                    entry = table[at]
                    if entry < 0:
                        table[at] = distinct
                        firsts[distinct] = i
                        missing_of[i] = distinct
                        distinct += 1
                        break
                    if keys[firsts[entry]] == keys[i] and panes[firsts[entry]] == panes[i]:
                        missing_of[i] = entry
                        break
                    at = (at + 1) & <Py_ssize_t>mask
        return slots_array, firsts_array[:distinct], missing_array

    def insert(self, const int64_t[::1] keys, const int64_t[::1] panes, const int64_t[::1] slots):
        """Add pairs that are not in the index, with their (non-negative) slots."""
        cdef Py_ssize_t n = keys.shape[0], i
        _same_length(n, panes.shape[0])
        _same_length(n, slots.shape[0])
        self._reserve(n)
        for i in range(n):
            if i + AHEAD < n:
                self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
            if slots[i] < 0:
                raise ValueError(f"pane ({keys[i]}, {panes[i]}) cannot take slot {slots[i]}: slots are not negative.")
            if not self._insert_once(keys[i], panes[i], slots[i]):
                raise ValueError(f"pane ({keys[i]}, {panes[i]}) is in the index already.")

    def create(self, const int64_t[::1] keys, const int64_t[::1] panes, const int64_t[::1] slots,
               int64_t[::1] key_ids, int64_t[::1] pane_of, uint8_t[::1] alive, uint8_t[::1] stored,
               int64_t[::1] touched, int64_t stamp):
        """Add panes that are not in the index with their new slots, as ``insert``, and fill in the pane
        table's columns of those slots (per-slot arrays): each one's key id and pane start, alive, not
        stored, and touched by add number ``stamp``."""
        cdef Py_ssize_t n = keys.shape[0], capacity = key_ids.shape[0], i
        cdef int64_t slot
        _same_length(n, panes.shape[0])
        _same_length(n, slots.shape[0])
        _same_slots(capacity, pane_of.shape[0], alive.shape[0], stored.shape[0], touched.shape[0])
        self._reserve(n)
        for i in range(n):
            if i + AHEAD < n:
                self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
            slot = slots[i]
            if slot < 0 or slot >= capacity:
                raise IndexError(f"pane ({keys[i]}, {panes[i]}) cannot take slot {slot}: the table has {capacity}.")
            if not self._insert_once(keys[i], panes[i], slot):
                raise ValueError(f"pane ({keys[i]}, {panes[i]}) is in the index already.")
            key_ids[slot] = keys[i]
            pane_of[slot] = panes[i]
            alive[slot] = 1
            stored[slot] = 0
            touched[slot] = stamp

    def add_panes(self, const int64_t[::1] keys, const int64_t[::1] panes, Py_ssize_t start, int64_t[:, ::1] out,
                  int64_t[::1] counts, const int64_t[::1] free, int64_t[::1] key_ids, int64_t[::1] pane_of,
                  uint8_t[::1] alive, uint8_t[::1] stored, uint8_t[::1] changed, int64_t[::1] touched,
                  int64_t[::1] position, int64_t stamp):
        """A pane table's add, in one pass over the pairs from ``start`` on: the slot of each pair's pane,
        creating the missing ones as they come (with the slots on top of the ``free`` stack first, then new
        ones from the high water mark; each created slot set as ``create`` sets it), and the distinct slots
        in the order they first occur, each marked touched by add ``stamp`` and changed.

        ``out`` has four rows of at least ``len(keys)`` entries: each pair's slot, each pair's index among the
        distinct slots, the distinct slots, the slots created (in that order). ``counts`` holds, and is
        left holding, how many slots were created and how many are distinct so far, how many entries of
        ``free`` are free slots, and the high water mark. ``position`` is per-slot scratch. Returns where
        it stopped: ``len(keys)``, or the first pair whose pane needs a slot when every slot is in use (the
        table must grow; call again from there)."""
        cdef Py_ssize_t n = keys.shape[0], capacity = key_ids.shape[0], i = start
        cdef int64_t made = counts[0], distinct = counts[1], free_count = counts[2], high_water = counts[3]
        _same_length(n, panes.shape[0])
        _same_slots(capacity, pane_of.shape[0], alive.shape[0], stored.shape[0], touched.shape[0])
        _same_slots(capacity, changed.shape[0], position.shape[0], capacity, capacity)
        if out.shape[0] != 4 or out.shape[1] < n or counts.shape[0] != 4:
            raise ValueError(f"add_panes writes 4 rows of {n} and 4 counts, not {tuple(out.shape)[:2]} and {counts.shape[0]}.")
        if not (0 <= free_count <= free.shape[0] and 0 <= high_water <= capacity and 0 <= start <= n):
            raise ValueError(f"add_panes cannot start at {start} with {free_count} free slots and high water {high_water}.")
        # at most as many panes go in as there are slots to give them (not one per pair: most pairs find theirs)
        self._reserve(min(n - start, free_count + capacity - high_water))
        try:
            i = self._add_panes(keys, panes, start, out, free, key_ids, pane_of, alive, stored, changed, touched,
                                position, stamp, &made, &distinct, &free_count, &high_water)
        finally:  # what was done stays counted, even when a slot out of range stopped the pass
            counts[0], counts[1], counts[2], counts[3] = made, distinct, free_count, high_water
        return i

    cdef Py_ssize_t _add_panes(self, const int64_t[::1] keys, const int64_t[::1] panes, Py_ssize_t start,
                               int64_t[:, ::1] out, const int64_t[::1] free, int64_t[::1] key_ids,
                               int64_t[::1] pane_of, uint8_t[::1] alive, uint8_t[::1] stored, uint8_t[::1] changed,
                               int64_t[::1] touched, int64_t[::1] position, int64_t stamp, int64_t* made_at,
                               int64_t* distinct_at, int64_t* free_at, int64_t* high_at) except -1:
        """The pass of ``add_panes``, its counts kept at the pointers as it goes."""
        cdef Py_ssize_t n = keys.shape[0], capacity = key_ids.shape[0], i, at, hole
        cdef int64_t slot, held
        for i in range(start, n):
            if i + AHEAD < n:
                self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
            at = self._walk(keys[i], panes[i], &hole)
            held = self.entries[at, 2]
            if held >= 0:
                slot = held
                if slot >= capacity:
                    raise IndexError(f"pane ({keys[i]}, {panes[i]}) has slot {slot}, past the table's {capacity}.")
            else:  # missing: a slot for it, into the first free entry of its probe
                if free_at[0] > 0:
                    slot = free[free_at[0] - 1]
                    if slot < 0 or slot >= capacity:
                        raise IndexError(f"free slot {slot} is not among the {capacity} slots.")
                    free_at[0] -= 1
                elif high_at[0] < capacity:
                    slot = high_at[0]
                    high_at[0] += 1
                else:
                    break  # no slot left: the table grows, then goes on from this pair
                self._place(at, hole, keys[i], panes[i], slot)
                key_ids[slot] = keys[i]
                pane_of[slot] = panes[i]
                alive[slot] = 1
                stored[slot] = 0
                touched[slot] = stamp - 1  # not yet touched by this add: marked just below
                out[3, made_at[0]] = slot
                made_at[0] += 1
            if touched[slot] != stamp:
                touched[slot] = stamp
                changed[slot] = 1
                position[slot] = distinct_at[0]
                out[2, distinct_at[0]] = slot
                distinct_at[0] += 1
            out[0, i] = slot
            out[1, i] = position[slot]
        else:
            i = n
        return i

    def release(self, const int64_t[::1] slots, const int64_t[::1] key_ids, const int64_t[::1] pane_of,
                uint8_t[::1] alive, uint8_t[::1] changed, const uint8_t[::1] stored):
        """Take the panes of ``slots`` out of the index (each must be in it) and mark the slots dead and
        unchanged in the pane table's per-slot arrays; return the key ids and pane starts of those the
        store holds (``stored``), in their order."""
        cdef Py_ssize_t n = slots.shape[0], capacity = key_ids.shape[0], i, at, held = 0
        cdef int64_t slot
        _same_slots(capacity, pane_of.shape[0], alive.shape[0], changed.shape[0], stored.shape[0])
        for i in range(n):
            if slots[i] < 0 or slots[i] >= capacity:
                raise IndexError(f"slot {slots[i]} is not among the {capacity} slots.")
        for i in range(n):
            if i + 2 * AHEAD < n:  # the slots are all over the table: their key and pane first, then their entry
                __builtin_prefetch(&key_ids[slots[i + 2 * AHEAD]])
                __builtin_prefetch(&pane_of[slots[i + 2 * AHEAD]])
            if i + AHEAD < n:
                self._prefetch(key_ids[slots[i + AHEAD]], pane_of[slots[i + AHEAD]])
            slot = slots[i]
            at = self._find(key_ids[slot], pane_of[slot])
            if at < 0:
                raise KeyError(f"pane ({key_ids[slot]}, {pane_of[slot]}) is not in the index.")
            self.entries[at, 2] = REMOVED
            self.live -= 1
            alive[slot] = 0
            changed[slot] = 0
            held += stored[slot]
        held_keys = np.empty(held, dtype=np.int64)
        held_panes = np.empty(held, dtype=np.int64)
        cdef int64_t[::1] out_keys = held_keys, out_panes = held_panes
        if held:
            at = 0
            for i in range(n):
                if stored[slots[i]]:
                    out_keys[at] = key_ids[slots[i]]
                    out_panes[at] = pane_of[slots[i]]
                    at += 1
        return held_keys, held_panes

    def remove(self, const int64_t[::1] keys, const int64_t[::1] panes):
        """Take pairs out of the index; every one must be in it."""
        cdef Py_ssize_t n = keys.shape[0], i, at
        _same_length(n, panes.shape[0])
        for i in range(n):
            if i + AHEAD < n:
                self._prefetch(keys[i + AHEAD], panes[i + AHEAD])
            at = self._find(keys[i], panes[i])
            if at < 0:
                raise KeyError(f"pane ({keys[i]}, {panes[i]}) is not in the index.")
            self.entries[at, 2] = REMOVED
            self.live -= 1

def first_seen(const int64_t[::1] slots, int64_t[::1] mark, int64_t[::1] position, int64_t stamp):
    """The distinct ``slots`` in the order they first occur, and each one's index among them.

    Sets ``mark[slot]`` to ``stamp`` for each (``stamp`` must be a value no slot's mark holds yet: the
    pass tells a slot met before by it) and uses ``position[slot]`` as scratch; both are per-slot
    arrays covering every slot. A slot out of range raises ``IndexError`` with the marks of the slots
    before it already stamped."""
    cdef Py_ssize_t n = slots.shape[0], i, distinct = 0
    cdef Py_ssize_t capacity = mark.shape[0]
    cdef int64_t slot
    if position.shape[0] != capacity:
        raise ValueError(f"first_seen takes marks and positions for the same slots, got {capacity} and "
                         f"{position.shape[0]}.")
    unique_array = np.empty(n, dtype=np.int64)
    inverse_array = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] unique = unique_array
    cdef int64_t[::1] inverse = inverse_array
    for i in range(n):
        slot = slots[i]
        if slot < 0 or slot >= capacity:
            raise IndexError(f"slot {slot} is not among the {capacity} slots.")
        if mark[slot] != stamp:
            mark[slot] = stamp
            position[slot] = distinct
            unique[distinct] = slot
            distinct += 1
        inverse[i] = position[slot]
    return unique_array[:distinct], inverse_array


cdef inline void _same_length(Py_ssize_t expected, Py_ssize_t got) except *:
    if got != expected:
        raise ValueError(f"the pane index takes columns of equal length, got {expected} and {got}.")


cdef inline void _same_slots(Py_ssize_t expected, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c, Py_ssize_t d) except *:
    if a != expected or b != expected or c != expected or d != expected:
        raise ValueError(f"the pane table's per-slot arrays differ in length: {expected}, {a}, {b}, {c}, {d}.")
