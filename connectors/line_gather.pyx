# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Copying lines out of a packed buffer in a new order, in C (see ``connectors.line_blocks``)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import numpy as np


def gather(bytes data, const int64_t[::1] starts, const int64_t[::1] index):
    """The lines ``index`` of a buffer whose line ``i`` is ``data[starts[i]:starts[i + 1]]``, packed in that
    order into a new buffer; returns it with the offsets where its lines start (its length last)."""
    cdef Py_ssize_t n = index.shape[0], lines = starts.shape[0] - 1, i, total = 0
    cdef int64_t line
    _check_offsets(data, starts)
    for i in range(n):
        line = index[i]
        if line < 0 or line >= lines:
            raise IndexError(f"line {line} is not among the {lines} lines of the block.")
        total += starts[line + 1] - starts[line]
    out = PyBytes_FromStringAndSize(NULL, total)
    new_starts_array = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] new_starts = new_starts_array
    cdef char* target = PyBytes_AS_STRING(out)
    cdef const char* source = PyBytes_AS_STRING(data)
    cdef int64_t at = 0, length
    new_starts[0] = 0
    with nogil:
        for i in range(n):
            line = index[i]
            length = starts[line + 1] - starts[line]
            memcpy(target + at, source + starts[line], length)
            at += length
            new_starts[i + 1] = at
    return out, new_starts_array


def write_merged(list datas, list line_starts, const int64_t[::1] block_of, const int64_t[::1] line_of, write,
                 Py_ssize_t buffer_size=1 << 20):
    """Write lines of several packed buffers in a given order through ``write`` (a file's ``write``).

    Output line ``i`` is line ``line_of[i]`` of buffer ``block_of[i]``, whose line ``j`` is
    ``datas[b][line_starts[b][j]:line_starts[b][j + 1]]``. Lines go through one reused buffer of
    ``buffer_size`` bytes (a longer line is written on its own), so no merged copy is ever made."""
    cdef Py_ssize_t n = block_of.shape[0], blocks = len(datas), i, b, at = 0
    cdef int64_t block, line, first, length
    if len(line_starts) != blocks or line_of.shape[0] != n:
        raise ValueError("write_merged takes one offsets array per buffer and one line per output position.")
    cdef list kept = []  # the offsets arrays the pointers below point into
    cdef const char** sources = <const char**>PyMem_Malloc(max(blocks, 1) * sizeof(char*))
    cdef const int64_t** offsets = <const int64_t**>PyMem_Malloc(max(blocks, 1) * sizeof(int64_t*))
    cdef Py_ssize_t* counts = <Py_ssize_t*>PyMem_Malloc(max(blocks, 1) * sizeof(Py_ssize_t))
    cdef const int64_t[::1] starts
    cdef bytearray out = bytearray(buffer_size)
    cdef char* target = out
    if sources == NULL or offsets == NULL or counts == NULL:
        PyMem_Free(sources)
        PyMem_Free(offsets)
        PyMem_Free(counts)
        raise MemoryError("no memory to merge output lines")
    try:
        for b in range(blocks):
            array = np.ascontiguousarray(line_starts[b], dtype=np.int64)
            kept.append(array)
            starts = array
            _check_offsets(datas[b], starts)
            sources[b] = PyBytes_AS_STRING(datas[b])
            offsets[b] = &starts[0]
            counts[b] = starts.shape[0] - 1
        for i in range(n):
            block = block_of[i]
            line = line_of[i]
            if block < 0 or block >= blocks:
                raise IndexError(f"buffer {block} is not among the {blocks} buffers.")
            if line < 0 or line >= counts[block]:
                raise IndexError(f"line {line} is not among the {counts[block]} lines of buffer {block}.")
            first = offsets[block][line]
            length = offsets[block][line + 1] - first
            if at + length > buffer_size:
                if at:
                    write(memoryview(out)[:at])
                    at = 0
                if length > buffer_size:
                    write(memoryview(datas[block])[first : first + length])
                    continue
            memcpy(target + at, sources[block] + first, length)
            at += length
        if at:
            write(memoryview(out)[:at])
    finally:
        PyMem_Free(sources)
        PyMem_Free(offsets)
        PyMem_Free(counts)


cdef void _check_offsets(bytes data, const int64_t[::1] starts) except *:
    """Refuse offsets that run backwards or reach outside ``data`` (lines are copied from them unchecked)."""
    cdef Py_ssize_t j
    if starts.shape[0] == 0 or starts[0] < 0 or starts[starts.shape[0] - 1] > len(data):
        raise ValueError(f"line offsets reach outside a buffer of {len(data)} bytes.")
    for j in range(starts.shape[0] - 1):
        if starts[j + 1] < starts[j]:
            raise ValueError(f"line {j} ends at {starts[j + 1]}, before its start {starts[j]}.")
