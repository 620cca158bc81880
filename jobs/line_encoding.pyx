# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""JSON lines of window results and decisions, written in C.

Every emitted result becomes one line, and most results of a busy job also
become a decision, so this is where replay and streaming spend their output
time. Each function takes the columns of a chunk and writes one line per row,
each ending in a line break, into one ``bytes`` buffer, returned with the
offset where each line starts (and the buffer's length last): the form of a
``connectors.line_blocks.LineBlock``. No Python object is made per line; the
file sink writes the buffer as it is, the Kafka sink builds record batches
from it (``connectors/record_batches.pyx``), one record per line.

Numbers are written in the format ``jobs/records.py`` documents: integral
values below 1e15 without a fraction, NaN as null, other floats as Python's
``repr`` (the shortest text that reads back to the same double). A decision's
id is BLAKE2b (RFC 7693, 16-byte digest, ``connectors/blake2b.pyx``) of its
job, rule, window, key and bounds, as ``hashlib.blake2b(..., digest_size=16)``
gives it.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.math cimport fabs, isnan, trunc
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, strlen

from connectors.blake2b cimport blake2b_128_many
from windows.int_text cimport write_int
from windows.prefetch cimport __builtin_prefetch, prefetch_span
from windows.trace_links cimport LINK_FIELDS, LINK_HIGH, LINK_LOW, LINK_ORIGIN, LINK_SEQ, NO_SEQ

import numpy as np


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t size) except -1


# ---- a growable byte buffer ------------------------------------------------------------

cdef extern from *:
    """
    /* The buffer the lines are written into. Appending is forced inline so that every fixed piece of text
       (its length a constant) is copied with a few moves instead of a call to memcpy; growing is not. */
    typedef struct {
        char* data;
        Py_ssize_t size;
        Py_ssize_t capacity;
        PyObject* owner;  /* the bytes object data lives in (output lines), or NULL (data is PyMem memory) */
    } WinnowBuffer;

    static int winnow_grow(WinnowBuffer* b, Py_ssize_t need) {
        Py_ssize_t capacity = b->capacity * 2;
        char* grown;
        while (capacity < need) capacity *= 2;
        if (b->owner != NULL) {  /* its bytes object grows (a large one by mremap: no copy, no second peak) */
            if (_PyBytes_Resize(&b->owner, capacity) < 0) return -1;
            b->data = PyBytes_AS_STRING(b->owner);
            b->capacity = capacity;
            return 0;
        }
        grown = (char*)PyMem_Realloc(b->data, capacity);
        if (grown == NULL) {
            PyErr_SetString(PyExc_MemoryError, "no memory for an output line buffer");
            return -1;
        }
        b->data = grown;
        b->capacity = capacity;
        return 0;
    }

    static inline __attribute__((always_inline)) int winnow_reserve(WinnowBuffer* b, Py_ssize_t extra) {
        return b->size + extra <= b->capacity ? 0 : winnow_grow(b, b->size + extra);
    }

    static inline __attribute__((always_inline)) int winnow_put(WinnowBuffer* b, const char* text, Py_ssize_t n) {
        if (winnow_reserve(b, n) < 0) return -1;
        memcpy(b->data + b->size, text, n);
        b->size += n;
        return 0;
    }
    """
    ctypedef struct Buffer "WinnowBuffer":
        char* data
        Py_ssize_t size
        Py_ssize_t capacity
        PyObject* owner
    int reserve "winnow_reserve"(Buffer* b, Py_ssize_t extra) except -1
    int put "winnow_put"(Buffer* b, const char* text, Py_ssize_t n) except -1


cdef int buffer_init(Buffer* b, Py_ssize_t capacity) except -1:
    """A scratch buffer in PyMem memory (free ``data`` with PyMem_Free)."""
    b.data = <char*>PyMem_Malloc(capacity)
    if b.data == NULL:
        raise MemoryError("no memory for an output line buffer")
    b.size = 0
    b.capacity = capacity
    b.owner = NULL
    return 0


cdef int lines_init(Buffer* b, Py_ssize_t capacity) except -1:
    """A buffer inside a new bytes object, grown in place and handed out by ``lines_taken`` without a copy
    (release it with ``lines_free`` when not handed out)."""
    owner = PyBytes_FromStringAndSize(NULL, max(capacity, 64))
    Py_INCREF(owner)
    b.owner = <PyObject*>owner
    b.data = PyBytes_AS_STRING(owner)
    b.size = 0
    b.capacity = max(capacity, 64)
    return 0


cdef bytes lines_taken(Buffer* b):
    """The written bytes, as the buffer's own bytes object cut to size."""
    _PyBytes_Resize(&b.owner, b.size)
    result = <bytes>b.owner
    Py_XDECREF(b.owner)
    b.owner = NULL
    return result


cdef void lines_free(Buffer* b) noexcept:
    Py_XDECREF(b.owner)
    b.owner = NULL


cdef inline int put_c(Buffer* b, const char* text) except -1:
    return put(b, text, strlen(text))


cdef inline int put_bytes(Buffer* b, bytes text) except -1:
    return put(b, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))


cdef inline int put_int(Buffer* b, int64_t value) except -1:
    reserve(b, 20)  # the longest int64: -9223372036854775808
    b.size = write_int(b.data + b.size, value) - b.data
    return 0


cdef inline int put_number(Buffer* b, double value) except -1:
    cdef char* text
    if isnan(value):
        return put(b, "null", 4)
    if trunc(value) == value and fabs(value) < 1e15:
        return put_int(b, <int64_t>value)
    text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        put_c(b, text)
    finally:
        PyMem_Free(text)
    return 0


cdef char* HEX = b"0123456789abcdef"


cdef char HEX_PAIRS[512]  # the two hex digits of each byte value
cdef int _pair
for _pair in range(256):
    HEX_PAIRS[2 * _pair] = HEX[_pair >> 4]
    HEX_PAIRS[2 * _pair + 1] = HEX[_pair & 15]


cdef inline int put_hex64(Buffer* b, uint64_t value) except -1:
    cdef int i
    cdef char* at
    reserve(b, 16)
    at = b.data + b.size
    for i in range(8):  # a byte a step, the high byte first
        memcpy(at + 2 * i, HEX_PAIRS + 2 * ((value >> (56 - 8 * i)) & 0xFF), 2)
    b.size += 16
    return 0


cdef inline int end_line(Buffer* b, int64_t[::1] line_starts, Py_ssize_t i) except -1:
    """Close line ``i`` with its line break and record where the next one starts."""
    put(b, "\n", 1)
    line_starts[i + 1] = b.size
    return 0


# ---- result values ---------------------------------------------------------------------

cdef class Values:
    """The columns of a chunk's ``"values"`` object, ready to be written row by row."""

    cdef list prefixes  # '{"name":' for the first column, ',"name":' for the others
    cdef list arrays  # each column as a contiguous float64 or int64 array (kept alive here)
    cdef Py_ssize_t count
    cdef const double** floats
    cdef const int64_t** ints

    def __cinit__(self, list names, list columns):
        cdef Py_ssize_t i
        cdef const double[::1] f
        cdef const int64_t[::1] k
        self.count = len(names)
        self.prefixes = []
        self.arrays = []
        self.floats = <const double**>PyMem_Malloc((self.count + 1) * sizeof(double*))
        self.ints = <const int64_t**>PyMem_Malloc((self.count + 1) * sizeof(int64_t*))
        if self.floats == NULL or self.ints == NULL:
            raise MemoryError("no memory for result columns")
        for i in range(self.count):
            self.prefixes.append((b"{" if i == 0 else b",") + names[i] + b":")
            column = np.asarray(columns[i])
            self.floats[i] = NULL
            self.ints[i] = NULL
            if column.dtype.kind in "iub":
                if column.dtype.kind == "u" and column.shape[0] and column.max() > INT64_MAX:
                    raise ValueError(
                        f"result column {names[i].decode()} holds {column.max()}, above the largest integer "
                        f"the line writer takes (2**63 - 1)."
                    )
                column = np.ascontiguousarray(column, dtype=np.int64)
                k = column
                if k.shape[0]:
                    self.ints[i] = &k[0]
            else:
                column = np.ascontiguousarray(column, dtype=np.float64)
                f = column
                if f.shape[0]:
                    self.floats[i] = &f[0]
            self.arrays.append(column)

    def __dealloc__(self):
        PyMem_Free(self.floats)
        PyMem_Free(self.ints)

    cdef int write(self, Buffer* b, Py_ssize_t row) except -1:
        cdef Py_ssize_t i
        if self.count == 0:
            return put(b, "{}", 2)
        for i in range(self.count):
            put_bytes(b, <bytes>PyList_GET_ITEM(self.prefixes, i))
            if self.ints[i] != NULL:
                put_int(b, self.ints[i][row])
            else:
                put_number(b, self.floats[i][row])
        return put(b, "}", 1)


cdef inline void prefetch_key(list items, const int64_t[:] key_ids, Py_ssize_t i) noexcept:
    """Have the CPU start loading the text of row ``i``'s key, if there is such a row and key (rows come in
    emission order, their keys' objects lie all over the heap)."""
    cdef int64_t key
    if i < key_ids.shape[0]:
        key = key_ids[i]
        if 0 <= key < PyList_GET_SIZE(items):
            __builtin_prefetch(<const void*>PyList_GET_ITEM(items, key))


cdef inline bytes key_item(list items, int64_t key):
    if key < 0 or key >= PyList_GET_SIZE(items):
        raise IndexError(f"key id {key} is not registered")
    return <bytes>PyList_GET_ITEM(items, key)


cdef int put_placement(Buffer* b, bytes key_json, int64_t start, int64_t end, int64_t emitted_at) except -1:
    """The fields that place a result: its key, bounds and emission time."""
    put(b, '"key":', 6)
    put_bytes(b, key_json)
    put(b, ',"start":', 9)
    put_int(b, start)
    put(b, ',"end":', 7)
    put_int(b, end)
    put(b, ',"emitted_at":', 14)
    return put_int(b, emitted_at)


def result_lines(
    bytes head,
    list key_json,
    const int64_t[:] key_ids,
    const int64_t[:] starts,
    const int64_t[:] ends,
    const int64_t[:] emitted_at,
    list names,
    list columns,
):
    """One line per result: ``head`` (the fields every row shares, ending in a comma), then the key (its
    JSON text from ``key_json``), the bounds, the emission time and the ``names`` values from ``columns``.
    Returns the lines (each with its line break) in one buffer, and the ``n + 1`` offsets where they start."""
    cdef Py_ssize_t n = key_ids.shape[0]
    cdef Py_ssize_t i
    cdef Buffer lines
    cdef Buffer* b = &lines
    cdef Values values = Values(names, columns)
    line_starts_array = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] line_starts = line_starts_array
    lines_init(b, 256 * n)
    try:
        for i in range(n):
            put_bytes(b, head)
            prefetch_key(key_json, key_ids, i + 8)
            put_placement(b, key_item(key_json, key_ids[i]), starts[i], ends[i], emitted_at[i])
            put(b, ',"values":', 10)
            values.write(b, i)
            put(b, "}", 1)
            end_line(b, line_starts, i)
        return lines_taken(b), line_starts_array
    finally:
        lines_free(b)


# ---- decisions -------------------------------------------------------------------------


cdef inline int put_trace(Buffer* b, const int64_t* link) except -1:
    """A link's trace id: 32 hex digits, its high half first."""
    put_hex64(b, <uint64_t>link[LINK_HIGH])
    return put_hex64(b, <uint64_t>link[LINK_LOW])


cdef inline bint repeats_a_trace(const int64_t* row, Py_ssize_t j) noexcept:
    """Whether link ``j`` of ``row`` is empty, or carries the first link's trace or an earlier present one's."""
    cdef const int64_t* link = row + LINK_FIELDS * j
    cdef const int64_t* earlier
    cdef Py_ssize_t e
    if link[LINK_SEQ] == NO_SEQ:
        return True
    for e in range(j):
        earlier = row + LINK_FIELDS * e
        if e > 0 and earlier[LINK_SEQ] == NO_SEQ:
            continue
        if earlier[LINK_HIGH] == link[LINK_HIGH] and earlier[LINK_LOW] == link[LINK_LOW]:
            return True
    return False


#: How many decisions ahead ``decision_lines`` asks the CPU for a trace row: a chunk's rows come in result
#: order, not in the order of its trace entries, which are often larger than the CPU's cache.
cdef Py_ssize_t PREFETCH_AHEAD = 6


cdef inline void prefetch_row(const int64_t[:, :, ::1] trace, int64_t at, Py_ssize_t traced) noexcept:
    """Have the CPU start loading trace row ``at`` (every cache line of it), if there is one."""
    if 0 <= at < traced:
        prefetch_span(&trace[at, 0, 0], trace.shape[1] * trace.shape[2] * sizeof(int64_t))


def decision_lines(
    bytes head,
    bytes id_prefix,
    list key_text,
    list key_json,
    const int64_t[:] key_ids,
    const int64_t[:] starts,
    const int64_t[:] ends,
    const int64_t[:] emitted_at,
    list names,
    list columns,
    trace_rows,
    traces,
):
    """One decision line per row, in one buffer with the ``n + 1`` offsets where the lines start (as
    ``result_lines``), and each row's trace origin time (epoch ms, 0: unknown).

    ``head`` holds the fields every row shares; the id is BLAKE2b of ``id_prefix`` (job, rule and
    window, each followed by 0x1f), the key's UTF-8 text from ``key_text``, and the bounds. Row ``i``'s
    trace entries are ``traces[trace_rows[i]]`` (traced x links x (ts, seq, origin, trace high, trace
    low); none when ``trace_rows[i]`` is -1 or both are None): the trace of the event that made the
    window fire (the first entry) and the other distinct traces it keeps."""
    cdef Py_ssize_t n = key_ids.shape[0]
    cdef Py_ssize_t i, j, width = 0, traced = 0
    cdef int64_t at
    cdef Buffer text
    cdef Values values = Values(names, columns)
    line_starts_array = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] line_starts = line_starts_array
    origins_array = np.zeros(n, dtype=np.int64)
    cdef int64_t[::1] origins = origins_array
    cdef char ident[32]
    cdef const int64_t[:, :, ::1] trace
    cdef const int64_t[:] rows_traced
    cdef const int64_t* row
    cdef bint any_link
    cdef int64_t origin
    if (trace_rows is None) != (traces is None):
        raise ValueError("decision trace entries need both their rows and the entries")
    if traces is not None:
        trace = np.ascontiguousarray(traces, dtype=np.int64)
        rows_traced = trace_rows
        width = trace.shape[1]
        traced = trace.shape[0]
        if rows_traced.shape[0] != n or trace.shape[2] != LINK_FIELDS:
            raise ValueError(
                f"trace entries of shape {np.shape(traces)} for {rows_traced.shape[0]} rows do not match {n} decisions"
            )
    cdef Buffer lines
    cdef Buffer* b = &lines
    lines.owner = NULL
    cdef Py_ssize_t id_start
    cdef Py_ssize_t* id_ends = <Py_ssize_t*>PyMem_Malloc((n + 1) * sizeof(Py_ssize_t))
    cdef const uint8_t** id_texts = <const uint8_t**>PyMem_Malloc((n + 1) * sizeof(uint8_t*))
    cdef uint8_t* digests = <uint8_t*>PyMem_Malloc((n + 1) * 16)
    text.data = NULL
    try:
        if id_ends == NULL or id_texts == NULL or digests == NULL:
            raise MemoryError("no memory for decision ids")
        # every id's text, one after another, then their digests, many at a time (``blake2b_128_many``)
        buffer_init(&text, (PyBytes_GET_SIZE(id_prefix) + 48) * n + 64)
        for i in range(n):
            put_bytes(&text, id_prefix)
            put_bytes(&text, key_item(key_text, key_ids[i]))
            put(&text, "\x1f", 1)
            put_int(&text, starts[i])
            put(&text, "\x1f", 1)
            put_int(&text, ends[i])
            id_ends[i] = text.size
        id_start = 0
        for i in range(n):  # each id's text where the buffer ended up; its end becomes its length
            id_texts[i] = <const uint8_t*>text.data + id_start
            id_ends[i], id_start = id_ends[i] - id_start, id_ends[i]
        blake2b_128_many(id_texts, id_ends, n, digests)
        # room enough for the lines as they usually come (a trace link takes about 35 bytes): growing a
        # buffer of a few megabytes copies it
        lines_init(b, (PyBytes_GET_SIZE(head) + 384 + 48 * width) * n)
        for i in range(n):
            if width and i + PREFETCH_AHEAD < n:
                prefetch_row(trace, rows_traced[i + PREFETCH_AHEAD], traced)
            put_hex_digest(ident, digests + 16 * i)

            put_bytes(b, head)
            put(b, '"id":"', 6)
            put(b, ident, 32)
            put(b, '",', 2)
            put_placement(b, key_item(key_json, key_ids[i]), starts[i], ends[i], emitted_at[i])
            put(b, ",", 1)
            at = rows_traced[i] if width else -1
            if at >= traced:
                raise IndexError(f"decision {i} points at trace entry {at}, past the {traced} given")
            if at < 0 or trace[at, 0, LINK_SEQ] == NO_SEQ:
                put(b, '"trace_id":null,"traceparent":null,"trace_links":[],"origin_at":null,', 69)
            else:
                row = &trace[at, 0, 0]
                put(b, '"trace_id":"', 12)
                put_trace(b, row)
                put(b, '","traceparent":"00-', 20)
                put_trace(b, row)
                put(b, "-", 1)
                put(b, ident, 16)
                put(b, '-01","trace_links":[', 20)
                any_link = False
                for j in range(1, width):
                    if repeats_a_trace(row, j):
                        continue
                    if any_link:
                        put(b, ',"', 2)
                    else:
                        put(b, '"', 1)
                    any_link = True
                    put_trace(b, row + LINK_FIELDS * j)
                    put(b, '"', 1)
                put(b, '],"origin_at":', 14)
                origin = row[LINK_ORIGIN]
                if origin:
                    put_int(b, origin)
                    origins[i] = origin
                else:
                    put(b, "null", 4)
                put(b, ",", 1)
            put(b, '"values":', 9)
            values.write(b, i)
            put(b, "}", 1)
            end_line(b, line_starts, i)
        return lines_taken(b), line_starts_array, origins_array
    finally:
        lines_free(b)
        PyMem_Free(text.data)
        PyMem_Free(id_ends)
        PyMem_Free(id_texts)
        PyMem_Free(digests)


# ---- decision ids ------------------------------------------------------------------------

cdef inline void put_hex_digest(char* out, const uint8_t* digest) noexcept nogil:
    """Write the 32 hex digits of a 16-byte digest to ``out``."""
    cdef int i
    for i in range(16):
        out[2 * i] = HEX[digest[i] >> 4]
        out[2 * i + 1] = HEX[digest[i] & 15]
