# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The fields a job reads, taken out of decoded events in one C pass.

``event_fields`` takes the decoder's fast path over a batch of decoded JSON
objects: each event's key (a string, or an integer written as its decimal
string), its timestamp (as decoded; an int64 column for epoch milliseconds), and each numeric field as a float (NaN when
absent or null). It answers None as soon as an event does not fit that shape
(not an object, a missing key or timestamp, a key or number of another type,
a number too large for a float), and the decoder then checks the batch event
by event to say what is wrong.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsDouble, PyLong_AsLongLong
from libc.stdint cimport int64_t
from cpython.object cimport PyObject

import numpy as np


def event_fields(list docs not None, str key_field not None, str timestamp_field not None, tuple numeric_fields not None,
                 bint epoch_ms):
    """``(keys, timestamps, numbers)`` of ``docs``, or None when one of them is off (see the module). With
    ``epoch_ms`` the timestamps are an int64 array (each one must be an integer), else the values as decoded."""
    cdef Py_ssize_t n = PyList_GET_SIZE(docs), i, f, n_fields = len(numeric_fields)
    cdef object doc, key, name
    cdef PyObject* found
    cdef list keys = [None] * n
    cdef list times = [] if epoch_ms else [None] * n
    cdef int64_t[::1] stamps
    cdef double[:, ::1] values
    cdef double value, nan = float("nan")
    numbers = np.empty((n_fields, n), dtype=np.float64)
    stamped = np.empty(n if epoch_ms else 0, dtype=np.int64)
    stamps = stamped
    values = numbers
    for i in range(n):
        doc = <object>PyList_GET_ITEM(docs, i)
        if type(doc) is not dict:
            return None
        found = PyDict_GetItem(doc, key_field)
        if found is NULL:
            return None
        key = <object>found
        if type(key) is str:
            keys[i] = key
        elif type(key) is int:
            keys[i] = str(key)
        else:
            return None
        found = PyDict_GetItem(doc, timestamp_field)
        if found is NULL:
            return None
        if not epoch_ms:
            times[i] = <object>found
        elif type(<object>found) is int:
            try:
                stamps[i] = PyLong_AsLongLong(<object>found)
            except OverflowError:
                return None
        else:
            return None
        for f in range(n_fields):
            found = PyDict_GetItem(doc, numeric_fields[f])
            if found is NULL or <object>found is None:
                value = nan
            elif type(<object>found) is float:
                value = PyFloat_AS_DOUBLE(<object>found)
            elif type(<object>found) is int:
                try:
                    value = PyLong_AsDouble(<object>found)
                except OverflowError:
                    return None
            else:
                return None
            values[f, i] = value
    return keys, stamped if epoch_ms else times, {name: numbers[f] for f, name in enumerate(numeric_fields)}
