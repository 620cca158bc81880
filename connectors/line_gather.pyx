# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Copying lines out of packed buffers in a new order, and writing merged lines, in C (see
``connectors.line_blocks``)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memmove

from connectors.line_buffer cimport Buffer, buffer_init, check_offsets, put
from connectors.line_source cimport LineSource


cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char* mem, Py_ssize_t size, int flags)
    int PyBUF_READ

import numpy as np


def gather(bytes data, const int64_t[::1] starts, const int64_t[::1] index):
    """The lines ``index`` of a buffer whose line ``i`` is ``data[starts[i]:starts[i + 1]]``, packed in that
    order into a new buffer; returns it with the offsets where its lines start (its length last)."""
    cdef Py_ssize_t n = index.shape[0], lines = starts.shape[0] - 1, i, total = 0
    cdef int64_t line
    check_offsets(data, starts)
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


#: ``write_merged`` has the rows of its sources written this many output lines at a time (see there): their
#: lines, about a megabyte, stay in the CPU's caches until they are copied (1,024 to 4,096 measured best).
STRETCH_LINES = 4096


def write_merged(list blocks, const int64_t[::1] block_of, const int64_t[::1] line_of, write,
                 Py_ssize_t buffer_size=1 << 20, Py_ssize_t stretch_lines=STRETCH_LINES):
    """Write lines of several blocks in a given order through ``write`` (a file's ``write``, which must not
    keep the view it is handed).

    Output line ``i`` is line ``line_of[i]`` of block ``block_of[i]``. A block is ``(text, offsets)``, lines
    written already (line ``j`` is ``text[offsets[j]:offsets[j + 1]]``), or ``(source, first, count)``,
    rows ``first .. first + count - 1`` of a ``LineSource``, whose lines are written here. Lines go out
    through one reused buffer in pieces of at most ``buffer_size`` bytes (a longer line on its own), so no
    merged copy of the whole is ever made. ``write`` gets a view that is released when it returns.

    A merge takes a few lines from one block, then a few from another: written line by line in that order,
    sources would read their columns a few rows at a time from dozens of places. Instead, for each stretch
    of ``stretch_lines`` output lines, each source writes the rows the stretch takes from it (one range, as
    a block's lines keep their order in a merge) into a scratch buffer small enough to stay in the CPU's
    caches, and the stretch's lines are copied from there. Lines of a block taken out of order, or again,
    come out right too, at the cost of writing every row between the lowest and highest the stretch takes."""
    cdef Py_ssize_t n = block_of.shape[0], count = len(blocks), i, j, b, before, start, stop, used, made, row
    cdef int64_t block, line, first, length
    if line_of.shape[0] != n:
        raise ValueError("write_merged takes one block and one line per output position.")
    if stretch_lines < 1 or buffer_size < 1:
        raise ValueError(
            f"write_merged writes stretches of at least one line and pieces of at least one byte, not "
            f"{stretch_lines} lines and {buffer_size} bytes."
        )
    cdef list kept = []  # the objects the pointers below point into
    cdef const char** sources = <const char**>PyMem_Malloc(max(count, 1) * sizeof(char*))
    cdef const int64_t** offsets = <const int64_t**>PyMem_Malloc(max(count, 1) * sizeof(int64_t*))
    cdef PyObject** rows = <PyObject**>PyMem_Malloc(max(count, 1) * sizeof(PyObject*))
    cdef int64_t* firsts = <int64_t*>PyMem_Malloc(max(count, 1) * sizeof(int64_t))
    cdef Py_ssize_t* counts = <Py_ssize_t*>PyMem_Malloc(max(count, 1) * sizeof(Py_ssize_t))
    # per block, within a stretch: the lowest and highest line taken (-1: none yet), and where its written
    # rows' offsets start in ``written``
    cdef int64_t* low = <int64_t*>PyMem_Malloc(max(count, 1) * sizeof(int64_t))
    cdef int64_t* high = <int64_t*>PyMem_Malloc(max(count, 1) * sizeof(int64_t))
    cdef Py_ssize_t* base = <Py_ssize_t*>PyMem_Malloc(max(count, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* touched = <Py_ssize_t*>PyMem_Malloc(max(count, 1) * sizeof(Py_ssize_t))
    cdef int64_t* written = NULL  # offsets of the rows written in ``scratch`` for the stretch
    # the stretch's (block, line) pairs as checked: ``write`` runs Python code, which could change the caller's
    cdef int64_t* pairs = <int64_t*>PyMem_Malloc(2 * min(max(n, 1), stretch_lines) * sizeof(int64_t))
    cdef Py_ssize_t written_room = 0, touched_count
    cdef const int64_t[::1] starts
    cdef Buffer out
    cdef Buffer scratch
    out.data = NULL
    scratch.data = NULL
    try:
        if (
            sources == NULL or offsets == NULL or rows == NULL or firsts == NULL or counts == NULL
            or low == NULL or high == NULL or base == NULL or touched == NULL or pairs == NULL
        ):
            raise MemoryError("no memory to merge output lines")
        for b in range(count):
            entry = blocks[b]
            low[b] = -1
            if isinstance(entry[0], LineSource):
                source, first, length = entry
                if first < 0 or length < 0 or first > (<LineSource>source).count - length:
                    raise ValueError(
                        f"rows {first} to {first + length} are not among the {(<LineSource>source).count} of a source."
                    )
                kept.append(source)
                rows[b] = <PyObject*>source
                firsts[b] = first
                counts[b] = length
                sources[b] = NULL
                offsets[b] = NULL
            else:
                data, line_starts = entry
                array = np.ascontiguousarray(line_starts, dtype=np.int64)
                kept.append(data)
                kept.append(array)
                starts = array
                check_offsets(data, starts)
                sources[b] = PyBytes_AS_STRING(data)
                offsets[b] = &starts[0]
                counts[b] = starts.shape[0] - 1
                rows[b] = NULL
        buffer_init(&out, buffer_size + 4096)
        buffer_init(&scratch, 1 << 16)
        for start in range(0, n, stretch_lines):
            stop = min(n, start + stretch_lines)
            # the range of lines each source gives this stretch
            touched_count = 0
            for i in range(start, stop):
                block = block_of[i]
                line = line_of[i]
                if block < 0 or block >= count:
                    raise IndexError(f"block {block} is not among the {count} blocks.")
                if line < 0 or line >= counts[block]:
                    raise IndexError(f"line {line} is not among the {counts[block]} lines of block {block}.")
                pairs[2 * (i - start)] = block
                pairs[2 * (i - start) + 1] = line
                if rows[block] == NULL:
                    continue
                if low[block] < 0:
                    low[block] = high[block] = line
                    touched[touched_count] = block
                    touched_count += 1
                elif line < low[block]:
                    low[block] = line
                elif line > high[block]:
                    high[block] = line
            # their rows, each source's written one after another
            used = 0
            for j in range(touched_count):
                used += high[touched[j]] - low[touched[j]] + 2
            if used > written_room:
                PyMem_Free(written)
                written_room = 2 * used
                written = <int64_t*>PyMem_Malloc(written_room * sizeof(int64_t))
                if written == NULL:
                    written_room = 0
                    raise MemoryError("no memory to merge output lines")
            scratch.size = 0
            made = 0
            for j in range(touched_count):
                b = touched[j]
                base[b] = made
                for row in range(low[b], high[b] + 1):
                    written[made] = scratch.size
                    made += 1
                    (<LineSource>rows[b]).write_row(&scratch, firsts[b] + row)
                written[made] = scratch.size
                made += 1
            # the stretch's lines, in order
            for i in range(start, stop):
                block = pairs[2 * (i - start)]
                line = pairs[2 * (i - start) + 1]
                before = out.size
                if rows[block] != NULL:
                    j = base[block] + line - low[block]
                    put(&out, scratch.data + written[j], written[j + 1] - written[j])
                else:
                    first = offsets[block][line]
                    put(&out, sources[block] + first, offsets[block][line + 1] - first)
                if out.size > buffer_size and before:  # the lines before this one first, then it begins the next
                    _write(write, out.data, before)
                    memmove(out.data, out.data + before, out.size - before)
                    out.size -= before
                if out.size >= buffer_size:
                    _write(write, out.data, out.size)
                    out.size = 0
            for j in range(touched_count):
                low[touched[j]] = -1
        if out.size:
            _write(write, out.data, out.size)
    finally:
        PyMem_Free(out.data)
        PyMem_Free(scratch.data)
        PyMem_Free(written)
        PyMem_Free(sources)
        PyMem_Free(offsets)
        PyMem_Free(rows)
        PyMem_Free(firsts)
        PyMem_Free(counts)
        PyMem_Free(low)
        PyMem_Free(high)
        PyMem_Free(base)
        PyMem_Free(touched)
        PyMem_Free(pairs)


cdef void _write(write, char* data, Py_ssize_t size) except *:
    """Hand ``write`` a view of ``size`` bytes at ``data``, released when it returns (the memory is reused:
    a view kept past the call cannot be read)."""
    view = PyMemoryView_FromMemory(data, size, PyBUF_READ)
    try:
        write(view)
    finally:
        view.release()
