# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Kafka's default partitioner: murmur2 over the key bytes, as the Java client computes it, in C.

A replay computes every new key's partition, and publishing a log every
event's: in Python the hash took about 3 µs a key.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t

import numpy as np

cdef uint32_t _SEED = 0x9747B28C
cdef uint32_t _M = 0x5BD1E995


cdef inline uint32_t _murmur2(const uint8_t* data, Py_ssize_t length) noexcept nogil:
    cdef uint32_t h = _SEED ^ <uint32_t>length, k
    cdef Py_ssize_t whole = length - length % 4, i
    for i in range(0, whole, 4):
        k = data[i] | (<uint32_t>data[i + 1] << 8) | (<uint32_t>data[i + 2] << 16) | (<uint32_t>data[i + 3] << 24)
        k *= _M
        k ^= k >> 24
        k *= _M
        h = (h * _M) ^ k
    i = length % 4
    if i >= 3:
        h ^= <uint32_t>data[whole + 2] << 16
    if i >= 2:
        h ^= <uint32_t>data[whole + 1] << 8
    if i >= 1:
        h ^= data[whole]
        h *= _M
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def murmur2(bytes data not None) -> int:
    """Kafka's ``Utils.murmur2`` as an unsigned 32-bit integer."""
    return _murmur2(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline int64_t _partition(bytes key, int64_t partitions) noexcept:
    return (_murmur2(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) & 0x7FFFFFFF) % partitions


def partition_for(bytes key not None, int64_t partitions) -> int:
    """The partition Kafka's default partitioner picks for a non-null key."""
    _check(partitions)
    return _partition(key, partitions)


def partitions_for(list keys not None, int64_t partitions):
    """``partition_for`` of each key (bytes), as an int64 array."""
    cdef Py_ssize_t n = PyList_GET_SIZE(keys), i
    _check(partitions)
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] chosen = out
    for i in range(n):
        key = <object>PyList_GET_ITEM(keys, i)
        if type(key) is not bytes:
            raise TypeError(f"key {i} is {type(key).__name__}, not bytes.")
        chosen[i] = _partition(<bytes>key, partitions)
    return out


cdef int _check(int64_t partitions) except -1:
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}.")
    return 0
