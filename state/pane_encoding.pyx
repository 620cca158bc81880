# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""RocksDB puts of changed panes, written in C: keys and JSON values, byte for byte as ``key_encoding`` writes them.

A pane's value is the format version byte, then the JSON list of its column
states. Most panes hold only a count and trace entries; those two column kinds
are written here from their arrays (an integer; a list of five-integer
entries). Any other column comes already encoded, one JSON text per pane.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy

from windows.int_text cimport int_length, int_list_length, write_int, write_int_list

import numpy as np

cdef enum:
    TRACE_FIELDS = 5
    TRACE_SEQ = 1

cdef int64_t NO_SEQ = -0x7FFFFFFFFFFFFFFF - 1


cdef inline Py_ssize_t trace_length(const int64_t* row, Py_ssize_t links) noexcept nogil:
    cdef Py_ssize_t n = 2, entries = 0, e
    for e in range(links):
        if row[TRACE_FIELDS * e + TRACE_SEQ] == NO_SEQ:
            continue
        entries += 1
        n += int_list_length(row + TRACE_FIELDS * e, TRACE_FIELDS)
    if entries > 1:
        n += entries - 1
    return n


cdef inline char* write_trace(char* out, const int64_t* row, Py_ssize_t links) noexcept nogil:
    cdef Py_ssize_t e
    cdef bint first = True
    out[0] = c'['
    out += 1
    for e in range(links):
        if row[TRACE_FIELDS * e + TRACE_SEQ] == NO_SEQ:
            continue
        if not first:
            out[0] = c','
            out += 1
        first = False
        out = write_int_list(out, row + TRACE_FIELDS * e, TRACE_FIELDS)
    out[0] = c']'
    return out + 1


cdef bytes _pane_key(bytes prefix, int64_t start, object key, Py_ssize_t i):
    """``prefix | start + 2**63 (8 bytes, big-endian) | key`` (``key``, the ``i``-th, must be bytes)."""
    cdef Py_ssize_t prefix_length = PyBytes_GET_SIZE(prefix)
    cdef uint64_t biased = <uint64_t>start ^ (<uint64_t>1 << 63)
    cdef int b
    cdef char* at
    if type(key) is not bytes:
        raise TypeError(f"key {i} is not bytes.")
    pane_key = PyBytes_FromStringAndSize(NULL, prefix_length + 8 + PyBytes_GET_SIZE(key))
    at = PyBytes_AS_STRING(pane_key)
    memcpy(at, PyBytes_AS_STRING(prefix), prefix_length)
    for b in range(8):
        at[prefix_length + b] = <char>((biased >> (8 * (7 - b))) & 0xFF)
    memcpy(at + prefix_length + 8, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
    return pane_key


def delete_panes(delete, bytes prefix not None, const int64_t[::1] starts, list keys not None):
    """Call ``delete(key)`` with the key of each pane ``i``, ``prefix | starts[i] + 2**63 | keys[i]`` (as
    ``put_panes`` writes it); return the bytes of those keys. A commit hands its write batch's ``delete``: no
    list of keys is built."""
    cdef Py_ssize_t n = starts.shape[0], i, total = 0
    if PyList_GET_SIZE(keys) != n:
        raise ValueError(f"delete_panes takes one key per pane: {n} panes, {len(keys)} keys.")
    for i in range(n):
        pane_key = _pane_key(prefix, starts[i], <object>PyList_GET_ITEM(keys, i), i)
        delete(pane_key)
        total += PyBytes_GET_SIZE(pane_key)
    return total


def put_panes(
    put, bytes prefix not None, const int64_t[::1] starts, list keys not None, int version, list columns not None
):
    """Call ``put(key, value)`` for each pane ``i``: key ``prefix | starts[i] + 2**63 (8 bytes, big-endian) |
    keys[i]``; value ``version`` byte, then the JSON list of the pane's state in each of ``columns``. Return
    the bytes of the keys and values. A commit hands its write batch's ``put``: no list of pairs is built.

    A column is a 1-D int64 array (a count per pane), a 3-D int64 array
    ``(panes, links, 5)`` (trace entries; those with ``seq`` NO_SEQ are absent),
    or a list of ``bytes`` (each pane's state as JSON text)."""
    cdef Py_ssize_t n = starts.shape[0], n_columns = len(columns), i, c, length, size, total = 0
    cdef object key, pane_key, value, item, column
    cdef char* at
    cdef const int64_t[::1] ints
    cdef const int64_t[:, :, ::1] traces
    if PyList_GET_SIZE(keys) != n:
        raise ValueError(f"put_panes takes one key per pane: {n} panes, {len(keys)} keys.")
    if not 0 <= version < 256:
        raise ValueError(f"a format version is one byte, not {version}.")
    kept = []  # the arrays behind the pointers below
    kind_of = np.zeros(n_columns, dtype=np.int64)  # per column: 0 counts, 1 trace entries, 2 texts
    links_of = np.zeros(n_columns, dtype=np.int64)
    addresses = np.zeros(n_columns, dtype=np.uintp)
    cdef int64_t[::1] kind = kind_of
    cdef int64_t[::1] links = links_of
    cdef uintptr_t[::1] data_at = addresses
    for c in range(n_columns):
        column = columns[c]
        if isinstance(column, list):
            if len(column) != n:
                raise ValueError(f"an encoded column has {len(column)} states for {n} panes.")
            for item in column:
                if type(item) is not bytes:
                    raise TypeError("an encoded column holds each pane's state as bytes.")
            kind[c] = 2
            kept.append(column)
        elif isinstance(column, np.ndarray) and column.dtype == np.int64 and column.ndim == 1 and column.shape[0] == n:
            kind[c] = 0
            column = np.ascontiguousarray(column)
            kept.append(column)
            if n:
                ints = column
                data_at[c] = <uintptr_t>&ints[0]
        elif (isinstance(column, np.ndarray) and column.dtype == np.int64 and column.ndim == 3
              and column.shape[0] == n and column.shape[2] == TRACE_FIELDS):
            kind[c] = 1
            column = np.ascontiguousarray(column)
            kept.append(column)
            links[c] = column.shape[1]
            if n and links[c]:
                traces = column
                data_at[c] = <uintptr_t>&traces[0, 0, 0]
            else:
                links[c] = 0
        else:
            raise TypeError("a column is int64 counts (panes,), int64 trace entries (panes, links, 5) or a list of "
                            "JSON texts, one per pane.")
    for i in range(n):
        pane_key = _pane_key(prefix, starts[i], <object>PyList_GET_ITEM(keys, i), i)
        # the value: its length, then its bytes
        length = 3 + (n_columns - 1 if n_columns else 0)  # version byte, brackets, commas
        for c in range(n_columns):
            if kind[c] == 0:
                length += int_length((<const int64_t*>data_at[c])[i])
            elif kind[c] == 1:
                length += trace_length(<const int64_t*>data_at[c] + i * links[c] * TRACE_FIELDS, links[c])
            else:
                length += PyBytes_GET_SIZE(<object>PyList_GET_ITEM(<list>kept[c], i))
        value = PyBytes_FromStringAndSize(NULL, length)
        at = PyBytes_AS_STRING(value)
        at[0] = <char>version
        at[1] = c'['
        at += 2
        for c in range(n_columns):
            if c:
                at[0] = c','
                at += 1
            if kind[c] == 0:
                at = write_int(at, (<const int64_t*>data_at[c])[i])
            elif kind[c] == 1:
                at = write_trace(at, <const int64_t*>data_at[c] + i * links[c] * TRACE_FIELDS, links[c])
            else:
                item = <object>PyList_GET_ITEM(<list>kept[c], i)
                size = PyBytes_GET_SIZE(item)
                memcpy(at, PyBytes_AS_STRING(item), size)
                at += size
        at[0] = c']'
        put(pane_key, value)
        total += PyBytes_GET_SIZE(pane_key) + length
    return total
