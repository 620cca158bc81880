# Decimal text of int64 values, as JSON writers (orjson among them) write them: shared by the C modules
# that write JSON straight into bytes (``cimport``ed by state/pane_encoding.pyx and
# windows/sketch_counts.pyx).
from libc.stdint cimport int64_t, uint64_t


cdef inline Py_ssize_t int_length(int64_t value) noexcept nogil:
    """The number of characters of ``value`` in decimal, its sign included."""
    cdef uint64_t magnitude = <uint64_t>(-(value + 1)) + 1 if value < 0 else <uint64_t>value
    cdef Py_ssize_t n = 2 if value < 0 else 1
    while magnitude >= 10:
        magnitude //= 10
        n += 1
    return n


cdef inline char* write_int(char* out, int64_t value) noexcept nogil:
    """Write ``value`` in decimal at ``out``; return the position after it."""
    cdef uint64_t magnitude = <uint64_t>(-(value + 1)) + 1 if value < 0 else <uint64_t>value
    cdef char digits[20]
    cdef Py_ssize_t n = 0
    if value < 0:
        out[0] = c'-'
        out += 1
    while True:
        digits[n] = <char>(c'0' + magnitude % 10)
        n += 1
        magnitude //= 10
        if magnitude == 0:
            break
    while n > 0:
        n -= 1
        out[0] = digits[n]
        out += 1
    return out


cdef inline Py_ssize_t int_list_length(const int64_t* values, Py_ssize_t n) noexcept nogil:
    """The number of characters of ``values[:n]`` as a JSON list, ``[v0,v1,...]``."""
    cdef Py_ssize_t length = 2 + (n - 1 if n else 0), i
    for i in range(n):
        length += int_length(values[i])
    return length


cdef inline char* write_int_list(char* out, const int64_t* values, Py_ssize_t n) noexcept nogil:
    """Write ``values[:n]`` as a JSON list at ``out``; return the position after it."""
    cdef Py_ssize_t i
    out[0] = c'['
    out += 1
    for i in range(n):
        if i:
            out[0] = c','
            out += 1
        out = write_int(out, values[i])
    out[0] = c']'
    return out + 1
