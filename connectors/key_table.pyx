# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Event keys' ids by their UTF-8 text, in C.

Every event's key becomes a dense integer id before the engine sees it. Held
in a Python dict, each lookup needed a ``str`` of the key: the scanner made
one per event (an allocation, a UTF-8 decode, a hash of the new string, a
free), about a third of a busy job's key handling. ``KeyTable`` holds the
keys' UTF-8 text and looks a key up by those bytes, so the scanner
(``connectors/event_scan.pyx``) finds an event's id in the bytes it reads,
and makes a string only for a key it has not seen (``jobs.keys.KeyRegistry``
registers those).

Open addressing with linear probing over (hash, id) places, at most half
full, the hash seeded at random per table; the texts lie one after another
in one buffer, in id order. Ids are 0, 1, 2, ... in the order keys are
added; the table never forgets one (the registry builds a new table when it
renumbers its keys).
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import os

import numpy as np


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


cdef uint64_t EMPTY = <uint64_t>-1


cdef inline uint64_t key_hash(const char* text, Py_ssize_t n, uint64_t seed) noexcept nogil:
    """A 64-bit hash of ``n`` bytes under ``seed``: eight bytes a step through a multiply-xorshift, then
    splitmix64's finalizer (the keys are short: one to three steps)."""
    cdef uint64_t h = (seed + 0x9E3779B97F4A7C15ULL) ^ <uint64_t>n
    cdef uint64_t word
    while n >= 8:
        memcpy(&word, text, 8)
        h = (h ^ word) * 0xBF58476D1CE4E5B9ULL
        h ^= h >> 31
        text += 8
        n -= 8
    word = 0
    memcpy(&word, text, n)
    h = (h ^ word) * 0x94D049BB133111EBULL
    h ^= h >> 29
    h *= 0xBF58476D1CE4E5B9ULL
    return h ^ (h >> 32)


cdef class KeyTable:
    """Keys' ids by their UTF-8 text; ids are handed out in the order keys are added."""

    def __cinit__(self):
        # a random seed per table: keys are event data, and with a fixed hash anybody could send keys that all
        # probe the same places (a dict's string hash is random per process for the same reason)
        self.seed = int.from_bytes(os.urandom(8), "little")
        self.mask = 63
        self.entries = <uint64_t*>PyMem_Malloc(2 * 64 * sizeof(uint64_t))
        self.text_room = 1024
        self.text = <char*>PyMem_Malloc(self.text_room)
        self.id_room = 64
        self.starts = <int64_t*>PyMem_Malloc((self.id_room + 1) * sizeof(int64_t))
        if self.entries == NULL or self.text == NULL or self.starts == NULL:
            raise MemoryError("no memory for a key table")
        memset(self.entries, 0xFF, 2 * 64 * sizeof(uint64_t))
        self.starts[0] = 0
        self.count = 0
        self.text_size = 0

    def __dealloc__(self):
        PyMem_Free(self.entries)
        PyMem_Free(self.text)
        PyMem_Free(self.starts)

    def __len__(self):
        return self.count

    cdef int64_t id_of(self, const char* key, Py_ssize_t n) noexcept nogil:
        """The id of the key ``key[:n]``, or -1."""
        return self.find(key, n, key_hash(key, n, self.seed))

    cdef int64_t find(self, const char* key, Py_ssize_t n, uint64_t hashed) noexcept nogil:
        """The id of the key ``key[:n]`` whose ``key_hash`` is ``hashed``, or -1."""
        cdef Py_ssize_t at = <Py_ssize_t>(hashed & <uint64_t>self.mask)
        cdef uint64_t held
        cdef int64_t found
        while True:
            held = self.entries[2 * at + 1]
            if held == EMPTY:
                return -1
            if self.entries[2 * at] == hashed:
                found = <int64_t>held
                if (
                    self.starts[found + 1] - self.starts[found] == n
                    and memcmp(self.text + self.starts[found], key, n) == 0
                ):
                    return found
            at = (at + 1) & self.mask

    cdef int64_t insert(self, const char* key, Py_ssize_t n, uint64_t hashed) except -1:
        """Add the key ``key[:n]`` (not in the table; ``hashed`` its ``key_hash``); return its new id."""
        cdef Py_ssize_t at
        cdef int64_t new_id = self.count
        if 2 * (self.count + 1) > self.mask + 1:
            self._rehash(2 * (self.mask + 1))
        if self.count == self.id_room:
            self._grow_ids()
        if self.text_size + n > self.text_room:
            self._grow_text(self.text_size + n)
        memcpy(self.text + self.text_size, key, n)
        self.text_size += n
        self.count += 1
        self.starts[self.count] = self.text_size
        at = <Py_ssize_t>(hashed & <uint64_t>self.mask)
        while self.entries[2 * at + 1] != EMPTY:
            at = (at + 1) & self.mask
        self.entries[2 * at] = hashed
        self.entries[2 * at + 1] = <uint64_t>new_id
        return new_id

    cdef void _rehash(self, Py_ssize_t places) except *:
        cdef uint64_t* grown = <uint64_t*>PyMem_Malloc(2 * places * sizeof(uint64_t))
        cdef Py_ssize_t i, at, mask = places - 1
        if grown == NULL:
            raise MemoryError("no memory to grow a key table")
        memset(grown, 0xFF, 2 * places * sizeof(uint64_t))
        for i in range(self.mask + 1):
            if self.entries[2 * i + 1] == EMPTY:
                continue
            at = <Py_ssize_t>(self.entries[2 * i] & <uint64_t>mask)
            while grown[2 * at + 1] != EMPTY:
                at = (at + 1) & mask
            grown[2 * at] = self.entries[2 * i]
            grown[2 * at + 1] = self.entries[2 * i + 1]
        PyMem_Free(self.entries)
        self.entries = grown
        self.mask = mask

    cdef void _grow_ids(self) except *:
        cdef int64_t* grown = <int64_t*>PyMem_Realloc(self.starts, (2 * self.id_room + 1) * sizeof(int64_t))
        if grown == NULL:
            raise MemoryError("no memory to grow a key table")
        self.starts = grown
        self.id_room *= 2

    cdef void _grow_text(self, Py_ssize_t need) except *:
        cdef Py_ssize_t room = 2 * self.text_room
        while room < need:
            room *= 2
        cdef char* grown = <char*>PyMem_Realloc(self.text, room)
        if grown == NULL:
            raise MemoryError("no memory to grow a key table")
        self.text = grown
        self.text_room = room

    def lookup(self, bytes key not None) -> int:
        """The id of ``key`` (UTF-8 text), or -1 when it is not in the table."""
        cdef const char* text = key
        cdef Py_ssize_t n = len(key)
        return self.id_of(text, n)

    def add(self, bytes key not None) -> int:
        """Add ``key`` (UTF-8 text); return its id, the number of keys before it."""
        cdef const char* text = key
        cdef Py_ssize_t n = len(key)
        cdef uint64_t hashed = key_hash(text, n, self.seed)
        if self.find(text, n, hashed) >= 0:
            raise ValueError(f"key {key!r} is in the table already.")
        return self.insert(text, n, hashed)

    def ids(self, list keys not None):
        """``(array of each key's id, -1 where it is not in the table; how many are not)`` of ``keys``
        (strings)."""
        cdef Py_ssize_t n = PyList_GET_SIZE(keys), i, size, missing = 0
        cdef const char* text
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] found = out
        for i in range(n):
            key = <object>PyList_GET_ITEM(keys, i)
            if type(key) is not str:
                raise TypeError(f"a key is a string, not {type(key).__name__}.")
            text = PyUnicode_AsUTF8AndSize(key, &size)
            found[i] = self.id_of(text, size)
            if found[i] < 0:
                missing += 1
        return out, missing
