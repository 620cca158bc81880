# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Quantile sketch bucket counts per pane, added, merged and read in C (see ``windows.sketch``).

Each pane's sketch is a dict from bucket code to count. Folding a batch in,
merging panes into windows and reading a quantile were Python loops over
every (pane, code) pair; here they are C loops over the same dicts, with the
same results: counts are exact integers, and a quantile's representative
value is computed with the same floating-point operations as
``sketch.bucket_value``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetItem, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLong
from cpython.object cimport PyObject
from libc.math cimport ceil, pow
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, qsort

from windows.int_text cimport int_list_length, write_int_list

import numpy as np

from windows.sketch import GAMMA, OFFSET

cdef double _GAMMA = GAMMA
cdef int64_t _OFFSET = OFFSET


def add_codes(list buckets not None, const int64_t[::1] slots, const int64_t[::1] codes):
    """Count each event's bucket code into its slot's dict (``buckets[slot]``)."""
    cdef Py_ssize_t n = slots.shape[0], i
    cdef PyObject* found
    cdef object pane, code
    if codes.shape[0] != n:
        raise ValueError(f"sketch counts take one code per slot: {n} slots, {codes.shape[0]} codes.")
    _check_slots(slots, PyList_GET_SIZE(buckets))
    for i in range(n):
        pane = <object>PyList_GET_ITEM(buckets, slots[i])
        if type(pane) is not dict:
            raise TypeError(f"slot {slots[i]} holds no sketch counts.")
        code = codes[i]
        found = PyDict_GetItem(pane, code)
        if found is NULL:
            PyDict_SetItem(pane, code, 1)
        else:
            PyDict_SetItem(pane, code, <object>found + 1)


def merge_counts(list buckets not None, const int64_t[::1] groups, const int64_t[::1] slots, Py_ssize_t n_groups):
    """Each group's bucket counts summed over its slots' dicts, as a list of dicts (a group of one slot gets
    that slot's dict itself, to be read, not changed)."""
    cdef Py_ssize_t n = groups.shape[0], i, g, position
    cdef PyObject* code
    cdef PyObject* count
    cdef PyObject* found
    cdef object target, pane
    merged = [None] * n_groups
    owned = np.zeros(n_groups, dtype=np.uint8)
    cdef unsigned char[::1] own = owned
    if slots.shape[0] != n:
        raise ValueError(f"a merge takes one slot per group entry: {n} groups, {slots.shape[0]} slots.")
    _check_slots(slots, PyList_GET_SIZE(buckets))
    _check_slots(groups, n_groups)
    for i in range(n):
        g = groups[i]
        pane = <object>PyList_GET_ITEM(buckets, slots[i])
        if type(pane) is not dict:
            raise TypeError(f"slot {slots[i]} holds no sketch counts.")
        target = <object>PyList_GET_ITEM(merged, g)
        if target is None:
            merged[g] = pane
            continue
        if not own[g]:
            target = dict(target)
            merged[g] = target
            own[g] = 1
        position = 0
        while PyDict_Next(pane, &position, &code, &count):
            found = PyDict_GetItem(target, <object>code)
            if found is NULL:
                PyDict_SetItem(target, <object>code, <object>count)
            else:
                PyDict_SetItem(target, <object>code, <object>found + <object>count)
    for g in range(n_groups):
        if <object>PyList_GET_ITEM(merged, g) is None:
            merged[g] = {}
    return merged


cdef struct Bucket:
    int64_t code
    int64_t count


cdef Py_ssize_t _collect(dict pane, Bucket** items, Py_ssize_t* capacity) except -1:
    """Copy ``pane``'s (code, count) pairs into ``*items``, grown to hold them; return how many."""
    cdef Py_ssize_t size = PyDict_Size(pane), position = 0, at = 0
    cdef PyObject* code
    cdef PyObject* count
    cdef Bucket* grown
    if size > capacity[0]:
        grown = <Bucket*>malloc(size * sizeof(Bucket))
        if grown is NULL:
            raise MemoryError()
        free(items[0])
        items[0], capacity[0] = grown, size
    while at < size and PyDict_Next(pane, &position, &code, &count):
        items[0][at].code = PyLong_AsLongLong(<object>code)
        items[0][at].count = PyLong_AsLongLong(<object>count)
        at += 1
    return at


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


def quantiles(list merged not None, double q):
    """The ``q``-quantile (nearest rank) of each dict of bucket counts, NaN for an empty one."""
    cdef Py_ssize_t n = PyList_GET_SIZE(merged), i, at, position, capacity = 64
    cdef object pane
    cdef int64_t total, rank, seen
    cdef double nan = float("nan")
    cdef Bucket* items = <Bucket*>malloc(capacity * sizeof(Bucket))
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] values = out
    if items is NULL:
        raise MemoryError()
    try:
        for i in range(n):
            pane = <object>PyList_GET_ITEM(merged, i)
            if type(pane) is not dict:
                raise TypeError(f"window {i} has no sketch counts.")
            at = _collect(pane, &items, &capacity)
            total = 0
            for position in range(at):
                total += items[position].count
            if total == 0:
                values[i] = nan
                continue
            rank = <int64_t>ceil(q * <double>total) - 1
            if rank < 0:
                rank = 0
            qsort(items, at, sizeof(Bucket), _by_code)
            seen = 0
            values[i] = bucket_value(items[at - 1].code)
            for position in range(at):
                seen += items[position].count
                if seen > rank:
                    values[i] = bucket_value(items[position].code)
                    break
    finally:
        free(items)
    return out


def encoded_states(list buckets not None, const int64_t[::1] slots):
    """Each slot's bucket counts as the JSON text of their ``[code, count]`` pairs in code order: the bytes
    ``orjson.dumps(sorted(buckets[slot].items()))`` gives (``[]`` for a slot with no dict)."""
    cdef Py_ssize_t n = slots.shape[0], i, at, k, length, capacity = 64
    cdef object pane
    cdef char* out
    cdef Bucket* items = <Bucket*>malloc(capacity * sizeof(Bucket))
    cdef list encoded = [None] * n
    if items is NULL:
        raise MemoryError()
    try:
        _check_slots(slots, PyList_GET_SIZE(buckets))
        for i in range(n):
            pane = <object>PyList_GET_ITEM(buckets, slots[i])
            if pane is not None and type(pane) is not dict:
                raise TypeError(f"slot {slots[i]} holds no sketch counts.")
            at = 0 if pane is None else _collect(pane, &items, &capacity)
            length = 2 + (at - 1 if at else 0)  # brackets and commas
            for k in range(at):  # a bucket is two int64 in a row: [code,count]
                length += int_list_length(<const int64_t*>&items[k], 2)
            qsort(items, at, sizeof(Bucket), _by_code)
            text = PyBytes_FromStringAndSize(NULL, length)
            out = PyBytes_AS_STRING(text)
            out[0] = c'['
            out += 1
            for k in range(at):
                if k:
                    out[0] = c','
                    out += 1
                out = write_int_list(out, <const int64_t*>&items[k], 2)
            out[0] = c']'
            encoded[i] = text
    finally:
        free(items)
    return encoded


cdef int _check_slots(const int64_t[::1] indices, Py_ssize_t size) except -1:
    """Refuse an index outside ``[0, size)`` (the loops read lists without bounds checks)."""
    cdef Py_ssize_t i
    for i in range(indices.shape[0]):
        if indices[i] < 0 or indices[i] >= size:
            raise IndexError(f"index {indices[i]} is outside the {size} sketch slots or windows.")
    return 0
