# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Quantile sketch bucket counts per pane, kept, added, merged and read in C (see ``windows.sketch``).

A ``SketchTable`` holds one sketch per slot of a pane table: its buckets as
``(code, count)`` pairs in an array of its own, sorted by code, so adding an
event is a binary search and a count, with no Python object per pane or per
count. Merging panes into windows gives ``MergedSketches``, one sorted bucket
array per window, from which quantiles are read. Counts are exact integers,
and a quantile's representative value is computed with the same
floating-point operations as ``sketch.bucket_value``, so results are those of
the Python sketch to the bit.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.math cimport ceil, pow
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memmove

from windows.int_text cimport int_list_length, write_int_list
from windows.prefetch cimport __builtin_prefetch

import numpy as np

from windows.sketch import GAMMA, OFFSET

cdef double _GAMMA = GAMMA
cdef int64_t _OFFSET = OFFSET


cdef struct Bucket:
    int64_t code
    int64_t count


cdef struct Sketch:
    Bucket* items  # sorted by code, codes distinct
    Py_ssize_t size
    Py_ssize_t capacity


cdef inline Py_ssize_t _find(const Sketch* sketch, int64_t code) noexcept nogil:
    """The position of ``code`` in ``sketch``, or where it would go: a binary search whose steps pick the
    half by a conditional move, not a branch (which half is as good as random, so a branch is mispredicted
    every other step)."""
    cdef const Bucket* base = sketch.items
    cdef Py_ssize_t n = sketch.size, half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half].code < code else base
        n -= half
    return (base - sketch.items) + (base[0].code < code)


cdef int _count(Sketch* sketch, int64_t code, int64_t count, bint replace) except -1:
    """Add ``count`` to ``code``'s bucket (with ``replace``: set it to ``count``), making the bucket if new."""
    cdef Py_ssize_t at = _find(sketch, code), capacity
    cdef Bucket* grown
    if at < sketch.size and sketch.items[at].code == code:
        if replace:
            sketch.items[at].count = count
        else:
            sketch.items[at].count += count
        return 0
    if sketch.size == sketch.capacity:
        capacity = 8 if sketch.capacity == 0 else 2 * sketch.capacity
        grown = <Bucket*>realloc(sketch.items, capacity * sizeof(Bucket))
        if grown is NULL:
            raise MemoryError("no memory for a sketch's buckets")
        sketch.items, sketch.capacity = grown, capacity
    memmove(&sketch.items[at + 1], &sketch.items[at], (sketch.size - at) * sizeof(Bucket))
    sketch.items[at].code = code
    sketch.items[at].count = count
    sketch.size += 1
    return 0


cdef int _by_code(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<Bucket*>a).code, y = (<Bucket*>b).code
    return (x > y) - (x < y)


cdef inline double bucket_value(int64_t code) noexcept nogil:
    cdef int64_t index
    cdef double value
    if code == 0:
        return 0.0
    index = (code if code > 0 else -code) - _OFFSET
    value = 2.0 * pow(_GAMMA, <double>index) / (_GAMMA + 1.0)
    return value if code > 0 else -value


cdef class SketchTable:
    """One sketch per slot, each empty until counted into; ``grow`` makes room for more slots."""

    cdef Sketch* sketches
    cdef Py_ssize_t capacity

    def __cinit__(self) -> None:
        self.sketches = NULL
        self.capacity = 0

    def __dealloc__(self) -> None:
        cdef Py_ssize_t i
        if self.sketches is not NULL:
            for i in range(self.capacity):
                free(self.sketches[i].items)
            free(self.sketches)

    def __len__(self) -> int:
        return self.capacity

    def grow(self, Py_ssize_t capacity) -> None:
        """Make room for ``capacity`` slots (new ones empty), keeping existing sketches."""
        cdef Sketch* grown
        if capacity <= self.capacity:
            return
        grown = <Sketch*>realloc(self.sketches, capacity * sizeof(Sketch))
        if grown is NULL:
            raise MemoryError("no memory for sketch slots")
        for i in range(self.capacity, capacity):
            grown[i].items = NULL
            grown[i].size = grown[i].capacity = 0
        self.sketches, self.capacity = grown, capacity

    def reset(self, const int64_t[::1] slots) -> None:
        """Empty the sketches of ``slots``; a large one gives its memory back."""
        cdef Py_ssize_t i
        cdef Sketch* sketch
        _check_slots(slots, self.capacity)
        for i in range(slots.shape[0]):
            sketch = &self.sketches[slots[i]]
            sketch.size = 0
            if sketch.capacity > 64:
                free(sketch.items)
                sketch.items, sketch.capacity = NULL, 0

    def add(self, const int64_t[::1] slots, const int64_t[::1] codes) -> None:
        """Count each event's bucket code into its slot's sketch."""
        cdef Py_ssize_t n = slots.shape[0], i
        if codes.shape[0] != n:
            raise ValueError(f"sketch counts take one code per slot: {n} slots, {codes.shape[0]} codes.")
        _check_slots(slots, self.capacity)
        for i in range(n):
            # the slots come in event order, all over the table: ask the CPU for a sketch 16 events ahead and
            # for its buckets 8 ahead (by then its pointer is at hand)
            if i + 16 < n:
                __builtin_prefetch(&self.sketches[slots[i + 16]])
            if i + 8 < n and self.sketches[slots[i + 8]].items != NULL:
                __builtin_prefetch(self.sketches[slots[i + 8]].items + (self.sketches[slots[i + 8]].size >> 1))
            _count(&self.sketches[slots[i]], codes[i], 1, False)

    def merge(self, const int64_t[::1] groups, const int64_t[::1] slots, Py_ssize_t n_groups) -> MergedSketches:
        """Each group's sketch: the bucket counts of its slots' sketches summed (the slots are unchanged)."""
        cdef Py_ssize_t n = groups.shape[0], i, g, at, k, total
        cdef const Sketch* sketch
        cdef MergedSketches merged = MergedSketches.__new__(MergedSketches)
        if slots.shape[0] != n:
            raise ValueError(f"a merge takes one slot per group entry: {n} groups, {slots.shape[0]} slots.")
        _check_slots(slots, self.capacity)
        _check_slots(groups, n_groups)
        merged._allocate(n_groups)
        parts = np.zeros(n_groups, dtype=np.int64)
        cdef int64_t[::1] part_count = parts
        cdef int64_t* offsets = merged.offsets
        for i in range(n):  # room for every bucket of every slot of a group, then the buckets
            offsets[groups[i] + 1] += self.sketches[slots[i]].size
            part_count[groups[i]] += 1
        for g in range(n_groups):
            offsets[g + 1] += offsets[g]
        merged._reserve(offsets[n_groups])
        fill = np.zeros(n_groups, dtype=np.int64)
        cdef int64_t[::1] filled = fill
        for i in range(n):
            g = groups[i]
            sketch = &self.sketches[slots[i]]
            at = offsets[g] + filled[g]
            for k in range(sketch.size):
                merged.items[at + k] = sketch.items[k]
            filled[g] += sketch.size
        for g in range(n_groups):  # a group of several slots: sort, then add up equal codes
            total = filled[g]
            if part_count[g] > 1 and total > 1:
                merged.sizes[g] = _combine(&merged.items[offsets[g]], total)
            else:
                merged.sizes[g] = total
        return merged

    def encoded(self, const int64_t[::1] slots) -> list:
        """Each slot's bucket counts as the JSON text of its ``[code, count]`` pairs in code order: the bytes
        ``orjson.dumps(snapshot)`` gives for the slot."""
        cdef Py_ssize_t n = slots.shape[0], i, k, length
        cdef const Sketch* sketch
        cdef char* out
        cdef list encoded = [None] * n
        _check_slots(slots, self.capacity)
        for i in range(n):
            sketch = &self.sketches[slots[i]]
            length = 2 + (sketch.size - 1 if sketch.size else 0)  # brackets and commas
            for k in range(sketch.size):  # a bucket is two int64 in a row: [code,count]
                length += int_list_length(<const int64_t*>&sketch.items[k], 2)
            text = PyBytes_FromStringAndSize(NULL, length)
            out = PyBytes_AS_STRING(text)
            out[0] = c'['
            out += 1
            for k in range(sketch.size):
                if k:
                    out[0] = c','
                    out += 1
                out = write_int_list(out, <const int64_t*>&sketch.items[k], 2)
            out[0] = c']'
            encoded[i] = text
        return encoded

    def snapshot(self, const int64_t[::1] slots) -> list:
        """Each slot's ``(code, count)`` pairs in code order."""
        cdef Py_ssize_t i, k
        cdef const Sketch* sketch
        _check_slots(slots, self.capacity)
        states = []
        for i in range(slots.shape[0]):
            sketch = &self.sketches[slots[i]]
            states.append([(sketch.items[k].code, sketch.items[k].count) for k in range(sketch.size)])
        return states

    def restore(self, const int64_t[::1] slots, list states not None) -> None:
        """Set each slot's sketch to the ``(code, count)`` pairs of its state (a code given twice keeps its
        last count)."""
        cdef Py_ssize_t i
        cdef Sketch* sketch
        if len(states) != slots.shape[0]:
            raise ValueError(f"a restore takes one state per slot: {slots.shape[0]} slots, {len(states)} states.")
        _check_slots(slots, self.capacity)
        for i in range(slots.shape[0]):
            # the state read first: reading it runs Python code, which could grow the table and move it
            pairs = [(<int64_t>code, <int64_t>count) for code, count in states[i]]
            sketch = &self.sketches[slots[i]]
            sketch.size = 0
            for code, count in pairs:
                _count(sketch, code, count, True)


cdef Py_ssize_t _combine(Bucket* items, Py_ssize_t n) noexcept nogil:
    """Sort ``n`` buckets by code and add up those of equal codes in place; return how many are left."""
    cdef Py_ssize_t i, kept = 0
    qsort(items, n, sizeof(Bucket), _by_code)
    for i in range(1, n):
        if items[i].code == items[kept].code:
            items[kept].count += items[i].count
        else:
            kept += 1
            items[kept] = items[i]
    return kept + 1


cdef class MergedSketches:
    """The sketches of merged windows, one sorted bucket array each (``SketchTable.merge``)."""

    cdef Bucket* items
    cdef int64_t* offsets  # window g's buckets start at offsets[g]
    cdef int64_t* sizes
    cdef Py_ssize_t n

    def __cinit__(self) -> None:
        self.items = NULL
        self.offsets = NULL
        self.sizes = NULL
        self.n = 0

    def __dealloc__(self) -> None:
        free(self.items)
        free(self.offsets)
        free(self.sizes)

    cdef int _allocate(self, Py_ssize_t n) except -1:
        self.offsets = <int64_t*>calloc(n + 1, sizeof(int64_t))
        self.sizes = <int64_t*>calloc(n + 1, sizeof(int64_t))
        if self.offsets is NULL or self.sizes is NULL:
            raise MemoryError("no memory to merge sketches")
        self.n = n
        return 0

    cdef int _reserve(self, Py_ssize_t buckets) except -1:
        self.items = <Bucket*>malloc(max(buckets, 1) * sizeof(Bucket))
        if self.items is NULL:
            raise MemoryError("no memory to merge sketches")
        return 0

    def __len__(self) -> int:
        return self.n

    def buckets(self, Py_ssize_t window) -> dict:
        """Window ``window``'s bucket counts, code -> count."""
        cdef Py_ssize_t k
        if window < 0 or window >= self.n:
            raise IndexError(f"window {window} is not among the {self.n} merged.")
        return {self.items[k].code: self.items[k].count
                for k in range(self.offsets[window], self.offsets[window] + self.sizes[window])}

    def quantiles(self, double q):
        """The ``q``-quantile (nearest rank) of each window's values, NaN for an empty window."""
        cdef Py_ssize_t i, k, first, size
        cdef int64_t total, rank, seen
        cdef double nan = float("nan")
        out = np.empty(self.n, dtype=np.float64)
        cdef double[::1] values = out
        for i in range(self.n):
            first, size = self.offsets[i], self.sizes[i]
            total = 0
            for k in range(first, first + size):
                total += self.items[k].count
            if total == 0:
                values[i] = nan
                continue
            rank = <int64_t>ceil(q * <double>total) - 1
            if rank < 0:
                rank = 0
            seen = 0
            values[i] = bucket_value(self.items[first + size - 1].code)
            for k in range(first, first + size):
                seen += self.items[k].count
                if seen > rank:
                    values[i] = bucket_value(self.items[k].code)
                    break
        return out


cdef int _check_slots(const int64_t[::1] indices, Py_ssize_t size) except -1:
    """Refuse an index outside ``[0, size)`` (the loops read arrays without bounds checks)."""
    cdef Py_ssize_t i
    for i in range(indices.shape[0]):
        if indices[i] < 0 or indices[i] >= size:
            raise IndexError(f"index {indices[i]} is outside the {size} sketch slots or windows.")
    return 0
