# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Trace ids read from W3C ``traceparent`` values in C (see ``connectors.trace_context``).

A streaming job reads one ``traceparent`` header per input event; a regular
expression and ``bytes.fromhex`` per event cost about a microsecond. This loop
reads the plain form, exactly 55 bytes ``vv-<32 hex trace id>-<16 hex parent
id>-ff`` with hex digits of either case and a trace id that is not all zeros,
and leaves every other value (surrounding whitespace, wrong length, bad digits)
to ``trace_context.trace_id_bytes``, which decides them one by one.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t

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


def parse_traceparents(list traceparents not None, int64_t[::1] high, int64_t[::1] low, uint8_t[::1] parsed):
    """For each plain, valid ``traceparent`` (``bytes``) at position ``i``, set ``high[i]`` and ``low[i]`` to
    its trace id's halves (as signed 64-bit integers) and ``parsed[i]`` to true; leave the others as they are."""
    cdef Py_ssize_t n = PyList_GET_SIZE(traceparents), i
    cdef object value
    cdef const uint8_t* text
    cdef uint64_t hi, lo, ignored
    if high.shape[0] != n or low.shape[0] != n or parsed.shape[0] != n:
        raise ValueError(f"parse_traceparents takes one output row per traceparent ({n}), got "
                         f"{high.shape[0]}, {low.shape[0]} and {parsed.shape[0]}.")
    for i in range(n):
        value = <object>PyList_GET_ITEM(traceparents, i)
        if type(value) is not bytes or PyBytes_GET_SIZE(value) != _LENGTH:
            continue
        text = <const uint8_t*>PyBytes_AS_STRING(value)
        if text[2] != ord("-") or text[35] != ord("-") or text[52] != ord("-"):
            continue
        if not (_hex(text, 0, 2, &ignored) and _hex(text, 3, 19, &hi) and _hex(text, 19, 35, &lo)
                and _hex(text, 36, 52, &ignored) and _hex(text, 53, 55, &ignored)):
            continue
        if hi == 0 and lo == 0:
            continue
        high[i] = <int64_t>hi
        low[i] = <int64_t>lo
        parsed[i] = 1
