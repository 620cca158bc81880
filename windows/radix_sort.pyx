# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""An LSD radix sort of non-negative integers of known width, for the engine's packed sort keys (and the
slots a pane table gives up, ``pane_table._FreeSlots``).

``sort_order.lex_order`` packs the columns it orders by into one number per
row (with the row's position in the low bits) and sorts those numbers. On this
engine's batches (thousands to tens of thousands of rows) ``np.sort`` took
30-50 ns a row on the machines Winnow is measured on; the numbers' width is
known (the bits the columns span), and a least-significant-digit radix sort
over just those bits takes a few passes of a few nanoseconds each: one pass
counts every digit of every number, then each digit of up to 12 bits moves
the numbers once, from one buffer to the other. A digit every number shares
(the high bits of a narrow column, often) is skipped.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

#: Digits are at most this many bits: 4,096 counts (32 KiB) per digit stay in the CPU's first cache.
cdef int DIGIT_BITS = 12


cdef int _sort(uint64_t* values, Py_ssize_t n, int bits) noexcept nogil:
    """Sort ``values[:n]`` (each below ``2 ** bits``) ascending; -1 when memory is short."""
    cdef int passes = (bits + DIGIT_BITS - 1) // DIGIT_BITS
    cdef int digit = (bits + passes - 1) // passes  # the passes share the bits evenly
    cdef Py_ssize_t buckets = (<Py_ssize_t>1) << digit
    cdef uint64_t mask = <uint64_t>(buckets - 1)
    cdef Py_ssize_t* counts = <Py_ssize_t*>calloc(passes * buckets, sizeof(Py_ssize_t))
    cdef uint64_t* spare = <uint64_t*>malloc(n * sizeof(uint64_t))
    cdef uint64_t* source = values
    cdef uint64_t* target = spare
    cdef uint64_t* swap
    cdef uint64_t value
    cdef Py_ssize_t i, total, count
    cdef Py_ssize_t* at
    cdef int p, shift
    if counts == NULL or spare == NULL:
        free(counts)
        free(spare)
        return -1
    for i in range(n):  # every pass's counts in one read
        value = values[i]
        for p in range(passes):
            counts[p * buckets + <Py_ssize_t>((value >> (p * digit)) & mask)] += 1
    for p in range(passes):
        shift = p * digit
        at = counts + p * buckets
        if at[<Py_ssize_t>((source[0] >> shift) & mask)] == n:  # every number has this digit: nothing moves
            continue
        total = 0
        for i in range(buckets):  # each digit's first place
            count = at[i]
            at[i] = total
            total += count
        for i in range(n):
            value = source[i]
            target[at[<Py_ssize_t>((value >> shift) & mask)]] = value
            at[<Py_ssize_t>((value >> shift) & mask)] += 1
        swap = source
        source = target
        target = swap
    if source != values:
        memcpy(values, source, n * sizeof(uint64_t))
    free(counts)
    free(spare)
    return 0


def sort_packed(int64_t[::1] values, int bits) -> None:
    """Sort ``values`` ascending in place; every value must be in ``[0, 2 ** bits)``, ``bits`` at most 63
    (checked: a value outside would land out of order)."""
    cdef Py_ssize_t n = values.shape[0], i
    cdef uint64_t limit
    if bits < 0 or bits > 63:
        raise ValueError(f"packed sort keys are 0 to 63 bits wide, not {bits}.")
    if n < 2:
        return
    limit = (<uint64_t>1) << bits
    for i in range(n):
        if <uint64_t>values[i] >= limit:  # a negative value is above every limit as unsigned
            raise ValueError(f"packed sort key {values[i]} at row {i} is outside [0, 2**{bits}).")
    if bits == 0:
        return
    with nogil:
        if _sort(<uint64_t*>&values[0], n, bits) < 0:
            with gil:
                raise MemoryError("no memory to sort packed keys")
