# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The columns a job reads of fetched Kafka records, taken in one C pass.

A streaming job hands its pipeline each record's value, offset and, when
traced, its ``traceparent`` header and timestamp. Four Python list
comprehensions (and a Python call per record to find the header) did that;
this loop reads the same attributes of each record once.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE


cdef inline object _traceparent(object headers):
    if headers is None:
        return None
    for header in headers:
        if header[0] == "traceparent":
            return header[1]
    return None


def record_columns(list records not None, bint traced):
    """``(values, offsets, traceparents, timestamps)`` of ``records`` as lists (a missing value as ``b""``;
    the last two None unless ``traced``)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(records), i
    cdef object record, value
    cdef list values = [None] * n
    cdef list offsets = [None] * n
    cdef list traceparents = [None] * n if traced else None
    cdef list timestamps = [None] * n if traced else None
    for i in range(n):
        record = <object>PyList_GET_ITEM(records, i)
        value = record.value
        values[i] = value if value is not None else b""
        offsets[i] = record.offset
        if traced:
            traceparents[i] = _traceparent(record.headers)
            timestamps[i] = record.timestamp
    return values, offsets, traceparents, timestamps
