# Asking the CPU to start loading memory a loop will read a few steps later, shared by the C modules whose
# loops read rows all over a large table (``cimport``ed by windows/pane_index.pyx, windows/sketch_counts.pyx,
# windows/trace_links.pyx and jobs/line_encoding.pyx). A prefetch of any address is harmless: it never faults.

cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil


cdef inline void prefetch_span(const void* start, Py_ssize_t size) noexcept nogil:
    """Have the CPU start loading every cache line of the ``size`` bytes at ``start``."""
    cdef const char* at = <const char*>start
    cdef Py_ssize_t offset = 0
    while offset < size:
        __builtin_prefetch(at + offset)
        offset += 64
    __builtin_prefetch(at + size - 1)
