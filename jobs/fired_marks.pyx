# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The windows a rule has fired on through an update, in a C hash set with expiry by window end.

A decision fires once per (rule, key, window): at the first emission where
its condition holds. An update that fires marks its window; the window's
later updates and its final result then make no new decision. About one
emitted result in three fires in the example job, so the check runs near a
million times per million events: as a Python set of tuples and a heap of
ends it cost a tuple, a hash and a heap push per row. Here each mark is a row
``(key id, start, end, state)`` of an open-addressing table (linear probing,
splitmix64 over the three numbers) and an entry of a binary min-heap on the
end, so that marks are dropped once the final results have passed them.
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cdef int64_t EMPTY = 0
cdef int64_t LIVE = 1
cdef int64_t REMOVED = 2


cdef inline uint64_t mix(int64_t key, int64_t start, int64_t end) noexcept nogil:
    cdef uint64_t z = (<uint64_t>key * 0x9E3779B97F4A7C15ULL + <uint64_t>start) * 0xD6E8FEB86659FD93ULL
    z += <uint64_t>end
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef class FiredMarks:
    """The windows ``(key id, start, end)`` one rule has fired on in one partition and that are still open."""

    cdef int64_t[:, ::1] entries  # (key id, start, end, state: EMPTY, LIVE or REMOVED)
    cdef Py_ssize_t mask
    cdef Py_ssize_t live
    cdef Py_ssize_t used  # live entries and tombstones
    cdef int64_t[:, ::1] heap  # (end, key id, start), a min-heap on the end
    cdef Py_ssize_t heap_size

    def __cinit__(self):
        self._allocate(0)
        self.heap = np.empty((64, 3), dtype=np.int64)
        self.heap_size = 0

    cdef void _allocate(self, Py_ssize_t expected):
        cdef Py_ssize_t size = 64
        while size < 4 * expected:
            size *= 2
        self.entries = np.zeros((size, 4), dtype=np.int64)
        self.mask = size - 1
        self.live = 0
        self.used = 0

    def __len__(self):
        return self.live

    cdef inline Py_ssize_t _find(self, int64_t key, int64_t start, int64_t end) noexcept nogil:
        """The entry holding the window, or -1."""
        cdef Py_ssize_t at = <Py_ssize_t>(mix(key, start, end) & <uint64_t>self.mask)
        cdef int64_t state
        while True:
            state = self.entries[at, 3]
            if state == EMPTY:
                return -1
            if (
                state == LIVE
                and self.entries[at, 0] == key
                and self.entries[at, 1] == start
                and self.entries[at, 2] == end
            ):
                return at
            at = (at + 1) & self.mask

    cdef inline void _put(self, int64_t key, int64_t start, int64_t end) noexcept nogil:
        """Store a window known to be absent, in the first free entry of its probe."""
        cdef Py_ssize_t at = <Py_ssize_t>(mix(key, start, end) & <uint64_t>self.mask)
        while self.entries[at, 3] == LIVE:
            at = (at + 1) & self.mask
        if self.entries[at, 3] == EMPTY:
            self.used += 1
        self.entries[at, 0] = key
        self.entries[at, 1] = start
        self.entries[at, 2] = end
        self.entries[at, 3] = LIVE
        self.live += 1

    cdef void _reserve(self, Py_ssize_t extra):
        """Rebuild into a larger (or tombstone-free) table when ``extra`` more entries would fill half."""
        if 2 * (self.used + extra) > self.mask + 1:
            self._rebuild(extra)

    cdef void _rebuild(self, Py_ssize_t extra=0):
        """Move the live entries into a fresh table sized for them and ``extra`` more."""
        cdef int64_t[:, ::1] old = self.entries
        cdef Py_ssize_t i
        self._allocate(self.live + extra)
        for i in range(old.shape[0]):
            if old[i, 3] == LIVE:
                self._put(old[i, 0], old[i, 1], old[i, 2])

    cdef void _heap_reserve(self, Py_ssize_t extra):
        cdef Py_ssize_t size = self.heap.shape[0]
        if self.heap_size + extra <= size:
            return
        while size < self.heap_size + extra:
            size *= 2
        grown = np.empty((size, 3), dtype=np.int64)
        grown[: self.heap_size] = np.asarray(self.heap[: self.heap_size])
        self.heap = grown

    cdef inline bint _less(self, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
        return self.heap[a, 0] < self.heap[b, 0]

    cdef inline void _swap(self, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
        cdef int64_t t
        cdef Py_ssize_t c
        for c in range(3):
            t = self.heap[a, c]
            self.heap[a, c] = self.heap[b, c]
            self.heap[b, c] = t

    cdef inline void _heap_push(self, int64_t key, int64_t start, int64_t end) noexcept nogil:
        cdef Py_ssize_t at = self.heap_size, parent
        self.heap[at, 0] = end
        self.heap[at, 1] = key
        self.heap[at, 2] = start
        self.heap_size += 1
        while at > 0:
            parent = (at - 1) >> 1
            if not self._less(at, parent):
                break
            self._swap(at, parent)
            at = parent

    cdef inline void _heap_pop(self) noexcept nogil:
        """Drop the heap's least entry."""
        cdef Py_ssize_t at = 0, child, n
        self.heap_size -= 1
        n = self.heap_size
        if n == 0:
            return
        self._swap(0, n)
        while True:
            child = 2 * at + 1
            if child >= n:
                break
            if child + 1 < n and self._less(child + 1, child):
                child += 1
            if not self._less(child, at):
                break
            self._swap(at, child)
            at = child

    def unmarked(self, const int64_t[::1] keys, const int64_t[::1] starts, const int64_t[::1] ends):
        """Positions of the windows (one per row) that carry no mark, in row order: the final results that
        still make a decision."""
        cdef Py_ssize_t n = keys.shape[0], i, kept = 0
        _same_lengths(n, starts.shape[0], ends.shape[0])
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] positions = out
        with nogil:
            for i in range(n):
                if self._find(keys[i], starts[i], ends[i]) < 0:
                    positions[kept] = i
                    kept += 1
        return out[:kept]

    def mark(self, const int64_t[::1] keys, const int64_t[::1] starts, const int64_t[::1] ends):
        """Mark the windows (one per row) that carry no mark yet; return their positions, in row order (a
        window on several rows counts at its first)."""
        cdef Py_ssize_t n = keys.shape[0], i, kept = 0, missing = 0
        _same_lengths(n, starts.shape[0], ends.shape[0])
        with nogil:
            for i in range(n):
                missing += self._find(keys[i], starts[i], ends[i]) < 0
        self._reserve(missing)  # room for the new marks only (rows marked already take none)
        self._heap_reserve(missing)
        out = np.empty(missing, dtype=np.int64)
        cdef int64_t[::1] positions = out
        with nogil:
            for i in range(n):
                if self._find(keys[i], starts[i], ends[i]) < 0:  # counted as missing above
                    self._put(keys[i], starts[i], ends[i])
                    self._heap_push(keys[i], starts[i], ends[i])
                    positions[kept] = i
                    kept += 1
        return out[:kept]

    def expire(self, int64_t horizon):
        """Drop the marks of windows ending before ``horizon``; return how many went. Storage shrinks
        when marks fill less than an eighth of it."""
        cdef Py_ssize_t dropped = 0, at
        with nogil:
            while self.heap_size > 0 and self.heap[0, 0] < horizon:
                at = self._find(self.heap[0, 1], self.heap[0, 2], self.heap[0, 0])
                if at >= 0:
                    self.entries[at, 3] = REMOVED
                    self.live -= 1
                    dropped += 1
                self._heap_pop()
        if dropped and self.mask + 1 > 64 and 8 * self.live < self.mask + 1:
            self._rebuild()
        if self.heap.shape[0] > 64 and 8 * self.heap_size < self.heap.shape[0]:
            self.heap = np.array(self.heap[: max(self.heap_size, 32) * 2], dtype=np.int64)
        return dropped

    def columns(self):
        """Every mark as columns ``(key ids, starts, ends)``, in no particular order."""
        heap = np.asarray(self.heap[: self.heap_size])
        return heap[:, 1].copy(), heap[:, 2].copy(), heap[:, 0].copy()


cdef void _same_lengths(Py_ssize_t n, Py_ssize_t starts, Py_ssize_t ends) except *:
    if starts != n or ends != n:
        raise ValueError(f"fired marks take equal columns: {n} keys, {starts} starts, {ends} ends.")
