# The table of event keys' ids by their UTF-8 text (see key_table.pyx): ``cimport``ed by
# connectors/event_scan.pyx, which looks each event's key up in the bytes it scans.
from libc.stdint cimport int64_t, uint64_t


cdef class KeyTable:
    cdef readonly uint64_t seed  # of the table's hash, random per table
    cdef uint64_t* entries  # per place: the key's hash, then its id (-1: an empty place)
    cdef Py_ssize_t mask  # places - 1 (a power of two, at least twice the keys)
    cdef char* text  # every key's UTF-8 text, one after another, in id order
    cdef Py_ssize_t text_size
    cdef Py_ssize_t text_room
    cdef int64_t* starts  # where each id's text starts in ``text``; starts[count] is its end
    cdef Py_ssize_t count
    cdef Py_ssize_t id_room

    cdef int64_t id_of(self, const char* key, Py_ssize_t n) noexcept nogil
    cdef int64_t find(self, const char* key, Py_ssize_t n, uint64_t hashed) noexcept nogil
    cdef int64_t insert(self, const char* key, Py_ssize_t n, uint64_t hashed) except -1
    cdef void _rehash(self, Py_ssize_t places) except *
    cdef void _grow_ids(self) except *
    cdef void _grow_text(self, Py_ssize_t need) except *
