# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The fields a job reads, scanned straight out of events' JSON bytes in C.

The decoder's first path over a batch. ``orjson.loads`` builds a dict, a
string and a number object for every member of every event, only for
``connectors.event_fields`` to read three to five of them and drop the rest:
about two thirds of a busy job's decoding time. ``scan_fields`` reads the
same fields from the bytes and builds only the key strings, or, given the
key registry's table (``connectors/key_table.pyx``), only those of keys it
has not seen.

It answers exactly what ``orjson.loads`` followed by ``event_fields`` (epoch
milliseconds) would, or None, and then the decoder takes that path. To be
sure of the first, it validates each event as strictly as orjson does (the
JSON grammar, UTF-8 without surrogates, no control characters in strings,
nothing after the object) and answers None on anything it does not read
itself:

* a string escape that encodes a surrogate (``\\ud800``), an escaped member
  name at the top level (it could spell a field's name), an escaped key;
* a field given twice at the top level (orjson keeps the last);
* a key, timestamp or whole-number value of more than 18 digits, and a
  number that reads as infinity (orjson refuses those);
* nesting deeper than 64;
* anything ``event_fields`` refuses: a missing key or timestamp, a key that
  is not a string or an integer, a timestamp that is not an integer, a
  numeric field that is not a number or null.

Numbers read as orjson reads them: integers of up to 18 digits exactly (a
numeric field's one then rounds to a double as ``float(int)`` does),
everything else by CPython's correctly rounded ``PyOS_string_to_double``.

Events come as a list of ``bytes`` (fetched records) or as ``EventLines``,
spans of one buffer (an event log's chunk), read in place. ``line_spans``
finds those spans: the lines of a log's text, with ``memchr``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.math cimport isinf
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcmp

from connectors.key_table cimport KeyTable
from windows.int_text cimport write_int

import numpy as np

from connectors.event_lines import spans


cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0


cdef enum:
    MAX_DEPTH = 64
    MAX_DIGITS = 18  # every integer of 18 digits fits an int64

cdef enum Kind:
    K_STRING
    K_NUMBER
    K_NULL
    K_OTHER  # true, false, an object or an array


cdef struct Value:
    Kind kind
    bint escaped  # a string with an escape in it
    const uint8_t* start  # a string's text (between the quotes) or a number's
    const uint8_t* end
    bint integral  # a number without fraction or exponent, of at most MAX_DIGITS digits
    int64_t integer  # its value when integral
    bint quick  # a number whose double is ``number`` (Clinger's fast path)
    double number


cdef inline bint is_digit(uint8_t c) noexcept nogil:
    return 48 <= c <= 57


cdef inline const uint8_t* skip_space(const uint8_t* p, const uint8_t* end) noexcept nogil:
    while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline int hex_digit(uint8_t c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef inline bint continuation(uint8_t c) noexcept nogil:
    return 0x80 <= c <= 0xBF


cdef const uint8_t* utf8_char(const uint8_t* p, const uint8_t* end) noexcept nogil:
    """Past one well-formed UTF-8 character of 2 to 4 bytes starting at ``p`` (no surrogate, nothing
    overlong, at most U+10FFFF), or NULL."""
    cdef uint8_t c = p[0]
    cdef Py_ssize_t left = end - p
    if 0xC2 <= c <= 0xDF:
        return p + 2 if left >= 2 and continuation(p[1]) else NULL
    if 0xE0 <= c <= 0xEF:
        if left < 3 or not continuation(p[1]) or not continuation(p[2]):
            return NULL
        if (c == 0xE0 and p[1] < 0xA0) or (c == 0xED and p[1] > 0x9F):
            return NULL  # overlong, or a surrogate
        return p + 3
    if 0xF0 <= c <= 0xF4:
        if left < 4 or not continuation(p[1]) or not continuation(p[2]) or not continuation(p[3]):
            return NULL
        if (c == 0xF0 and p[1] < 0x90) or (c == 0xF4 and p[1] > 0x8F):
            return NULL  # overlong, or beyond U+10FFFF
        return p + 4
    return NULL


cdef uint8_t[256] PLAIN  # 1 for a byte that stands for itself in a string: ASCII but no control, " or backslash
cdef int _byte
for _byte in range(256):
    PLAIN[_byte] = 0x20 <= _byte < 0x80 and _byte != 34 and _byte != 92


cdef const uint8_t* scan_string(const uint8_t* p, const uint8_t* end, Value* value) noexcept nogil:
    """``p`` just past an opening quote: past the closing quote, with the text's span in ``value``, or
    NULL."""
    cdef uint8_t c
    cdef int i, digit, code
    value.kind = K_STRING
    value.escaped = False
    value.start = p
    while p < end:
        while PLAIN[p[0]] and p + 1 < end:
            p += 1
        c = p[0]
        if c == 34:  # "
            value.end = p
            return p + 1
        if c == 92:  # backslash
            value.escaped = True
            if end - p < 2:
                return NULL
            c = p[1]
            if c == 117:  # u: four hex digits, not a surrogate
                if end - p < 6:
                    return NULL
                code = 0
                for i in range(2, 6):
                    digit = hex_digit(p[i])
                    if digit < 0:
                        return NULL
                    code = code * 16 + digit
                if 0xD800 <= code <= 0xDFFF:
                    return NULL
                p += 6
            elif c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
                p += 2
            else:
                return NULL
        elif c < 0x20:
            return NULL
        elif c < 0x80:  # the last byte before the end
            p += 1
        else:
            p = utf8_char(p, end)
            if p == NULL:
                return NULL
    return NULL


cdef double[23] POWERS_OF_TEN = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22,
]


cdef const uint8_t* scan_number(const uint8_t* p, const uint8_t* end, Value* value) noexcept nogil:
    """Past a JSON number starting at ``p``, described in ``value``, or NULL."""
    cdef bint negative = False, exact = True, exponent_negative = False
    cdef int digits = 0, int_digits, fraction = 0
    cdef int64_t mantissa = 0, exponent = 0
    value.kind = K_NUMBER
    value.start = p
    if p < end and p[0] == 45:  # -
        negative = True
        p += 1
    if p >= end or not is_digit(p[0]):
        return NULL
    if p[0] == 48:  # a leading 0 stands alone
        p += 1
        digits = 1
        if p < end and is_digit(p[0]):
            return NULL
    else:
        while p < end and is_digit(p[0]):
            if digits < MAX_DIGITS:
                mantissa = mantissa * 10 + (p[0] - 48)
            else:
                exact = False
            digits += 1
            p += 1
    int_digits = digits
    value.integral = exact
    if p < end and p[0] == 46:  # .
        p += 1
        if p >= end or not is_digit(p[0]):
            return NULL
        while p < end and is_digit(p[0]):
            if digits < MAX_DIGITS:
                mantissa = mantissa * 10 + (p[0] - 48)
                fraction += 1
            else:
                exact = False
            digits += 1
            p += 1
        value.integral = False
    if p < end and (p[0] == 101 or p[0] == 69):  # e E
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            exponent_negative = p[0] == 45
            p += 1
        if p >= end or not is_digit(p[0]):
            return NULL
        while p < end and is_digit(p[0]):
            if exponent < 10000:
                exponent = exponent * 10 + (p[0] - 48)
            p += 1
        value.integral = False
    value.end = p
    if value.integral:
        value.integer = -mantissa if negative else mantissa
    # Clinger's fast path: a mantissa below 2**53 times or over a power of ten up to 1e22 is one correctly
    # rounded operation on two exact doubles
    exponent = (-exponent if exponent_negative else exponent) - fraction
    value.quick = exact and mantissa < (1LL << 53) and -22 <= exponent <= 22
    if value.quick:
        value.number = <double>mantissa * POWERS_OF_TEN[exponent] if exponent >= 0 else <double>mantissa / POWERS_OF_TEN[-exponent]
        if negative:
            value.number = -value.number
    return p


cdef inline const uint8_t* scan_literal(const uint8_t* p, const uint8_t* end, const char* word, int n) noexcept nogil:
    if end - p < n or memcmp(p, word, n) != 0:
        return NULL
    return p + n


cdef const uint8_t* scan_value(const uint8_t* p, const uint8_t* end, Value* value, int depth) noexcept nogil:
    """Past one JSON value starting at ``p`` (no space before it), described in ``value``, or NULL."""
    cdef uint8_t c
    cdef Value inner
    if p >= end:
        return NULL
    c = p[0]
    if c == 34:
        return scan_string(p + 1, end, value)
    if c == 45 or is_digit(c):
        return scan_number(p, end, value)
    if c == 110:
        value.kind = K_NULL
        return scan_literal(p, end, "null", 4)
    value.kind = K_OTHER
    if c == 116:
        return scan_literal(p, end, "true", 4)
    if c == 102:
        return scan_literal(p, end, "false", 5)
    if c != 123 and c != 91:  # { [
        return NULL
    if depth >= MAX_DEPTH:
        return NULL
    p = skip_space(p + 1, end)
    if p < end and p[0] == c + 2:  # } is { + 2, ] is [ + 2
        return p + 1
    while True:
        if c == 123:  # a member: its name and a colon first
            if p >= end or p[0] != 34:
                return NULL
            p = scan_string(p + 1, end, &inner)
            if p == NULL:
                return NULL
            p = skip_space(p, end)
            if p >= end or p[0] != 58:  # :
                return NULL
            p = skip_space(p + 1, end)
        p = scan_value(p, end, &inner, depth + 1)
        if p == NULL:
            return NULL
        p = skip_space(p, end)
        if p >= end:
            return NULL
        if p[0] == c + 2:
            return p + 1
        if p[0] != 44:  # ,
            return NULL
        p = skip_space(p + 1, end)


cdef inline bint same_name(const uint8_t* start, const uint8_t* end, bytes name) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name)
    return end - start == n and memcmp(start, PyBytes_AS_STRING(name), n) == 0


cdef inline bint number_of(Value* value, double* out) noexcept:
    """``value`` (a number) as a double, as orjson and ``float()`` give it; False when not finite."""
    cdef char* stop
    if value.integral:
        out[0] = <double>value.integer
        return True
    if value.quick:
        out[0] = value.number
        return True
    try:  # no exception asked for on overflow: infinity comes back
        out[0] = PyOS_string_to_double(<const char*>value.start, &stop, NULL)
    except MemoryError:
        return False
    return <const uint8_t*>stop == value.end and not isinf(out[0])


def scan_fields(
    raws not None,
    str key_field not None,
    str timestamp_field not None,
    tuple numeric_fields not None,
    Py_ssize_t max_bytes,
    KeyTable table=None,
):
    """``(keys, timestamps, numbers, key_ids)`` of ``raws`` (JSON objects: a list of bytes, or ``EventLines``
    spans of one buffer) as ``event_fields`` gives them for epoch milliseconds, or None when one event is not
    plainly of that shape or is over ``max_bytes`` (see the module).

    With a key ``table``, each event's key is looked up there by its UTF-8 text: ``key_ids`` holds its id,
    or -1 for a key not in the table, and only those keys are made strings (the others are None in
    ``keys``). Without one, every key is a string and ``key_ids`` is None."""
    cdef bint listed = type(raws) is list
    cdef const uint8_t* base = NULL
    cdef const int64_t[::1] starts
    cdef const int64_t[::1] ends
    cdef Py_ssize_t n, n_fields = len(numeric_fields), i, f
    if listed:
        n = PyList_GET_SIZE(raws)
    else:
        data, starts, ends = spans(raws)
        base = <const uint8_t*>PyBytes_AS_STRING(data)
        n = starts.shape[0]
    cdef bytes key_name = key_field.encode("utf-8"), time_name = timestamp_field.encode("utf-8")
    cdef list field_names = [name.encode("utf-8") for name in numeric_fields]
    cdef list keys = [None] * n
    cdef const uint8_t* p
    cdef const uint8_t* end
    cdef const uint8_t* name_start
    cdef const uint8_t* name_end
    cdef Value member, value
    cdef bint have_key, have_time
    cdef double number
    cdef double nan = float("nan")
    cdef unsigned long long seen  # numeric fields met so far in this event (at most 64 are read here)
    if n_fields > 64:
        return None
    stamped = np.empty(n, dtype=np.int64)
    numbers = np.full((n_fields, n), nan, dtype=np.float64)
    cdef int64_t[::1] stamps = stamped
    key_ids = None if table is None else np.empty(n, dtype=np.int64)
    cdef int64_t[::1] ids
    if table is not None:
        ids = key_ids
    cdef char digits[24]
    cdef const char* key_text
    cdef Py_ssize_t key_size
    cdef double[:, ::1] values = numbers
    for i in range(n):
        if listed:
            raw = <object>PyList_GET_ITEM(raws, i)
            if type(raw) is not bytes or PyBytes_GET_SIZE(raw) > max_bytes:
                return None
            p = <const uint8_t*>PyBytes_AS_STRING(raw)
            end = p + PyBytes_GET_SIZE(raw)
        else:
            if ends[i] - starts[i] > max_bytes:
                return None
            p = base + starts[i]
            end = base + ends[i]
        have_key = have_time = False
        seen = 0
        p = skip_space(p, end)
        if p >= end or p[0] != 123:
            return None
        p = skip_space(p + 1, end)
        if p < end and p[0] == 125:
            return None  # {}: no key
        while True:
            if p >= end or p[0] != 34:
                return None
            p = scan_string(p + 1, end, &member)
            if p == NULL or member.escaped:
                return None
            p = skip_space(p, end)
            if p >= end or p[0] != 58:
                return None
            p = scan_value(skip_space(p + 1, end), end, &value, 1)
            if p == NULL:
                return None
            name_start, name_end = member.start, member.end
            if same_name(name_start, name_end, key_name):
                if have_key:
                    return None
                have_key = True
                if value.kind == K_STRING and not value.escaped:
                    key_text, key_size = <const char*>value.start, value.end - value.start
                elif value.kind == K_NUMBER and value.integral:
                    key_text = digits
                    key_size = write_int(digits, value.integer) - digits
                else:
                    return None
                if table is not None:
                    ids[i] = table.id_of(key_text, key_size)
                if table is None or ids[i] < 0:
                    keys[i] = PyUnicode_DecodeUTF8(key_text, key_size, NULL)
            if same_name(name_start, name_end, time_name):
                if have_time or value.kind != K_NUMBER or not value.integral:
                    return None
                have_time = True
                stamps[i] = value.integer
            for f in range(n_fields):
                if not same_name(name_start, name_end, <bytes>PyList_GET_ITEM(field_names, f)):
                    continue
                if seen & (1ULL << f):
                    return None
                seen |= 1ULL << f
                if value.kind == K_NUMBER:
                    if not number_of(&value, &number):
                        return None
                    values[f, i] = number
                elif value.kind != K_NULL:
                    return None
            p = skip_space(p, end)
            if p >= end:
                return None
            if p[0] == 125:
                break
            if p[0] != 44:
                return None
            p = skip_space(p + 1, end)
        if skip_space(p + 1, end) != end or not have_key or not have_time:
            return None
    return keys, stamped, {name: numbers[f] for f, name in enumerate(numeric_fields)}, key_ids


cdef extern from "string.h" nogil:
    const void* memchr(const void* s, int c, size_t n)


def line_spans(bytes data not None, Py_ssize_t limit=-1):
    """Where each line of ``data[:limit]`` (all of it by default: lines joined by line breaks, none after
    the last) starts and ends, the carriage returns before its break left out, and whether it is blank
    (empty or all white space, as ``bytes.strip`` sees it): ``(starts, ends, blank)``. Breaks are found
    with ``memchr``, a pass to count them and one to place them."""
    cdef const char* text = PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data) if limit < 0 else limit, lines = 1, i, start = 0, end, k, j
    cdef const char* at
    cdef const char* found
    cdef bint empty
    if size > PyBytes_GET_SIZE(data):
        raise ValueError(f"lines up to byte {size} of a {PyBytes_GET_SIZE(data)}-byte buffer.")
    with nogil:
        at = text
        while True:
            found = <const char*>memchr(at, 10, text + size - at) if at < text + size else NULL
            if found == NULL:
                break
            lines += 1
            at = found + 1
    starts_array = np.empty(lines, dtype=np.int64)
    ends_array = np.empty(lines, dtype=np.int64)
    blank_array = np.empty(lines, dtype=np.bool_)
    cdef int64_t[::1] starts = starts_array
    cdef int64_t[::1] ends = ends_array
    cdef uint8_t[::1] blank = blank_array.view(np.uint8)
    with nogil:
        for i in range(lines):
            if i == lines - 1:
                end = size
            else:
                end = <const char*>memchr(text + start, 10, size - start) - text
            starts[i] = start
            k = end
            while k > start and text[k - 1] == 13:
                k -= 1
            ends[i] = k
            empty = True
            for j in range(start, k):
                if not _is_space(<uint8_t>text[j]):
                    empty = False
                    break
            blank[i] = empty
            start = end + 1
    return starts_array, ends_array, blank_array


cdef inline bint _is_space(uint8_t c) noexcept nogil:
    """What ``bytes.strip`` strips: space, tab, line feed, carriage return, vertical tab, form feed."""
    return c == 32 or (9 <= c and c <= 13)
