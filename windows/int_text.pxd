# Decimal text of int64 values, as JSON writers (orjson among them) write them: shared by the C modules
# that write JSON straight into bytes (``cimport``ed by state/pane_encoding.pyx and
# windows/sketch_counts.pyx).
from libc.stdint cimport int64_t, uint64_t


cdef extern from *:
    int __builtin_clzll(unsigned long long) noexcept nogil


cdef extern from *:
    """
    /* 10**0 .. 10**19, and the two-digit strings 00 .. 99 */
    static const unsigned long long winnow_pow10[20] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
        1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
        100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
        1000000000000000000ULL, 10000000000000000000ULL};
    static const char winnow_digit_pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    """
    const uint64_t POW10 "winnow_pow10"[20]
    const char DIGIT_PAIRS "winnow_digit_pairs"[201]


cdef inline Py_ssize_t digit_count(uint64_t magnitude) noexcept nogil:
    """The number of decimal digits of ``magnitude``: from its bit length, then one comparison."""
    cdef int bits = 64 - __builtin_clzll(magnitude | 1)
    cdef Py_ssize_t n = (bits * 1233) >> 12  # floor(log10(2**bits)): the count is this or one more
    return n + 1 if magnitude >= POW10[n] else n if n else 1


cdef inline Py_ssize_t int_length(int64_t value) noexcept nogil:
    """The number of characters of ``value`` in decimal, its sign included."""
    if value < 0:
        return 1 + digit_count(<uint64_t>(-(value + 1)) + 1)
    return digit_count(<uint64_t>value)


cdef inline char* write_int(char* out, int64_t value) noexcept nogil:
    """Write ``value`` in decimal at ``out``; return the position after it."""
    cdef uint64_t magnitude = <uint64_t>(-(value + 1)) + 1 if value < 0 else <uint64_t>value
    cdef uint64_t pair
    cdef Py_ssize_t at
    if value < 0:
        out[0] = c'-'
        out += 1
    at = digit_count(magnitude)
    out += at
    while magnitude >= 100:  # two digits a step, from the last
        pair = magnitude % 100
        magnitude //= 100
        out -= 2
        out[0] = DIGIT_PAIRS[2 * pair]
        out[1] = DIGIT_PAIRS[2 * pair + 1]
    if magnitude >= 10:
        out -= 2
        out[0] = DIGIT_PAIRS[2 * magnitude]
        out[1] = DIGIT_PAIRS[2 * magnitude + 1]
    else:
        out -= 1
        out[0] = <char>(c'0' + magnitude)
    return out + at


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
