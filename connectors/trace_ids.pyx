# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Trace ids of events in C: read from W3C ``traceparent`` values, or derived from the event.

``connectors.trace_context.trace_id_bytes`` defines an event's trace id; this
loop computes the same ids for a whole batch, where a regular expression,
``bytes.fromhex`` or a ``hashlib`` call per event would cost about half a
microsecond to a microsecond each. It reads the plain form of a
``traceparent``, exactly 55 bytes ``vv-<32 hex trace id>-<16 hex parent
id>-ff`` with hex digits of either case and a trace id that is not all zeros,
and hashes the bytes of an event that has no ``traceparent`` (BLAKE2b-128,
``blake2b.pyx``). It leaves every other value (surrounding whitespace, wrong
length, bad digits) to ``trace_id_bytes``, which decides them one by one.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t

from cpython.mem cimport PyMem_Free, PyMem_Malloc

from connectors.blake2b cimport blake2b_128_many

from connectors.event_lines import spans

cdef enum:
    _LENGTH = 55

cdef uint8_t _DIGIT[256]


cdef void _make_digits():
    cdef int i
    for i in range(256):
        _DIGIT[i] = 255
    for i in range(10):
        _DIGIT[ord("0") + i] = i
    for i in range(6):
        _DIGIT[ord("a") + i] = 10 + i
        _DIGIT[ord("A") + i] = 10 + i


_make_digits()


cdef inline bint _hex(const uint8_t* text, int first, int last, uint64_t* value) noexcept nogil:
    """Read hex digits ``text[first:last]`` into ``value``; false on a non-digit."""
    cdef uint64_t v = 0
    cdef uint8_t digit
    cdef int i
    for i in range(first, last):
        digit = _DIGIT[text[i]]
        if digit == 255:
            return False
        v = (v << 4) | digit
    value[0] = v
    return True


cdef inline bint _parse(object value, uint64_t* hi, uint64_t* lo) noexcept:
    """Read the trace id of a plain, valid ``traceparent``; false for any other value."""
    cdef const uint8_t* text
    cdef uint64_t ignored
    if type(value) is not bytes or PyBytes_GET_SIZE(value) != _LENGTH:
        return False
    text = <const uint8_t*>PyBytes_AS_STRING(value)
    if text[2] != ord("-") or text[35] != ord("-") or text[52] != ord("-"):
        return False
    if not (_hex(text, 0, 2, &ignored) and _hex(text, 3, 19, hi) and _hex(text, 19, 35, lo)
            and _hex(text, 36, 52, &ignored) and _hex(text, 53, 55, &ignored)):
        return False
    return hi[0] != 0 or lo[0] != 0


cdef inline uint64_t _big_endian(const uint8_t* digest) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(8):
        value = (value << 8) | digest[i]
    return value


def trace_ids(traceparents, raws not None, int64_t[::1] high, int64_t[::1] low, uint8_t[::1] decided):
    """Set ``high[i]`` and ``low[i]`` to the halves (signed 64-bit, big-endian) of event ``i``'s trace id
    and ``decided[i]`` to 1 where this loop can tell it: the id of a plain, valid ``traceparent``, or,
    when the event has none (``traceparents`` is None, or its item is None), BLAKE2b-128 of event ``i``'s
    bytes (``raws``: a list of bytes, or ``EventLines`` spans of one buffer). Leave the other rows as they
    are."""
    cdef bint listed = type(raws) is list
    cdef const char* base = NULL
    cdef const int64_t[::1] starts
    cdef const int64_t[::1] ends
    cdef Py_ssize_t n, i, hashed = 0
    if listed:
        n = PyList_GET_SIZE(raws)
    else:
        buffer, starts, ends = spans(raws)
        base = PyBytes_AS_STRING(buffer)
        n = starts.shape[0]
    cdef list values
    cdef object value, raw
    cdef uint64_t hi, lo
    cdef const uint8_t** data = NULL
    cdef Py_ssize_t* sizes = NULL
    cdef Py_ssize_t* rows = NULL
    cdef uint8_t* digests = NULL
    if traceparents is not None:
        if type(traceparents) is not list:
            raise TypeError(f"trace_ids takes the traceparents as a list or None, not {type(traceparents).__name__}.")
        values = <list>traceparents
        if PyList_GET_SIZE(values) != n:
            raise ValueError(f"trace_ids takes one traceparent per event ({n}), got {PyList_GET_SIZE(values)}.")
    if high.shape[0] != n or low.shape[0] != n or decided.shape[0] != n:
        raise ValueError(f"trace_ids takes one output row per event ({n}), got "
                         f"{high.shape[0]}, {low.shape[0]} and {decided.shape[0]}.")
    data = <const uint8_t**>PyMem_Malloc(max(n, 1) * sizeof(uint8_t*))
    sizes = <Py_ssize_t*>PyMem_Malloc(max(n, 1) * sizeof(Py_ssize_t))
    rows = <Py_ssize_t*>PyMem_Malloc(max(n, 1) * sizeof(Py_ssize_t))
    digests = <uint8_t*>PyMem_Malloc(max(n, 1) * 16)
    try:
        if data == NULL or sizes == NULL or rows == NULL or digests == NULL:
            raise MemoryError("no memory to hash events for their trace ids")
        for i in range(n):
            value = None if traceparents is None else <object>PyList_GET_ITEM(values, i)
            if value is None:  # hashed below, all together (the list or buffer holds the bytes alive meanwhile)
                if listed:
                    raw = <object>PyList_GET_ITEM(raws, i)
                    if type(raw) is not bytes:
                        continue
                    data[hashed] = <const uint8_t*>PyBytes_AS_STRING(raw)
                    sizes[hashed] = PyBytes_GET_SIZE(raw)
                else:
                    data[hashed] = <const uint8_t*>(base + starts[i])
                    sizes[hashed] = ends[i] - starts[i]
                rows[hashed] = i
                hashed += 1
                continue
            if not _parse(value, &hi, &lo):
                continue
            high[i] = <int64_t>hi
            low[i] = <int64_t>lo
            decided[i] = 1
        blake2b_128_many(data, sizes, hashed, digests)
        for i in range(hashed):
            high[rows[i]] = <int64_t>_big_endian(digests + 16 * i)
            low[rows[i]] = <int64_t>_big_endian(digests + 16 * i + 8)
            decided[rows[i]] = 1
    finally:
        PyMem_Free(data)
        PyMem_Free(sizes)
        PyMem_Free(rows)
        PyMem_Free(digests)
