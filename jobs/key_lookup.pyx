# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The ids of a batch's keys, looked up in the key registry's dict in one C pass.

Every event's key text becomes its integer id once per batch. As a Python
list comprehension that made a list of ints (and a second list when a key was
new) before numpy copied them into an array; here each id goes straight into
the array, and the registry only registers the keys left at -1.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLong
from cpython.object cimport PyObject
from libc.stdint cimport int64_t

import numpy as np


def known_ids(dict ids not None, list keys not None):
    """``(array of each key's id in ids, -1 where the key is not there; how many are not there)``."""
    cdef Py_ssize_t n = PyList_GET_SIZE(keys), i, missing = 0
    cdef PyObject* found
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] found_ids = out
    for i in range(n):
        found = PyDict_GetItem(ids, <object>PyList_GET_ITEM(keys, i))
        if found is NULL:
            found_ids[i] = -1
            missing += 1
        else:
            found_ids[i] = PyLong_AsLongLong(<object>found)
    return out, missing
