# A growable byte buffer that JSON lines are written into, the appends the line writers use, and the check of
# written lines' offsets: shared by ``jobs/line_encoding.pyx`` (which writes result and decision lines),
# ``connectors/line_source.pyx`` and ``connectors/line_gather.pyx`` (which has lines written into a scratch
# buffer while it writes merged output files).
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.math cimport fabs, isnan, trunc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, strlen

from windows.int_text cimport write_int


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


cdef inline int buffer_init(Buffer* b, Py_ssize_t capacity) except -1:
    """A scratch buffer in PyMem memory (free ``data`` with PyMem_Free)."""
    b.data = <char*>PyMem_Malloc(capacity)
    if b.data == NULL:
        raise MemoryError("no memory for an output line buffer")
    b.size = 0
    b.capacity = capacity
    b.owner = NULL
    return 0


cdef inline int lines_init(Buffer* b, Py_ssize_t capacity) except -1:
    """A buffer inside a new bytes object, grown in place and handed out by ``lines_taken`` without a copy
    (release it with ``lines_free`` when not handed out)."""
    owner = PyBytes_FromStringAndSize(NULL, max(capacity, 64))
    Py_INCREF(owner)
    b.owner = <PyObject*>owner
    b.data = PyBytes_AS_STRING(owner)
    b.size = 0
    b.capacity = max(capacity, 64)
    return 0


cdef inline bytes lines_taken(Buffer* b):
    """The written bytes, as the buffer's own bytes object cut to size."""
    _PyBytes_Resize(&b.owner, b.size)
    result = <bytes>b.owner
    Py_XDECREF(b.owner)
    b.owner = NULL
    return result


cdef inline void lines_free(Buffer* b) noexcept:
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


cdef extern from *:
    """
    /* The shortest round-tripping text of doubles written lately, by their bits: Python's ``repr`` of a
       double (``PyOS_double_to_string``) costs about 300 ns, and result values repeat (a percentile is one
       of a few hundred bucket values). Direct-mapped; an entry of bits 0 is empty (0.0 is written as an
       integer and never looked up). One table per module that writes numbers, used under the GIL. */
    typedef struct {
        uint64_t bits;
        unsigned char length;
        char text[31];
    } WinnowFloatText;
    static WinnowFloatText winnow_float_texts[4096];

    static inline WinnowFloatText* winnow_float_entry(uint64_t bits) {
        return &winnow_float_texts[(bits * 0x9E3779B97F4A7C15ULL) >> 52];
    }
    """
    ctypedef struct FloatText "WinnowFloatText":
        uint64_t bits
        unsigned char length
        char text[31]
    FloatText* float_entry "winnow_float_entry"(uint64_t bits) noexcept nogil


cdef inline int put_number(Buffer* b, double value) except -1:
    cdef char* text
    cdef FloatText* entry
    cdef uint64_t bits
    cdef Py_ssize_t length
    if isnan(value):
        return put(b, "null", 4)
    if trunc(value) == value and fabs(value) < 1e15:
        return put_int(b, <int64_t>value)
    memcpy(&bits, &value, 8)
    entry = float_entry(bits)
    if entry.bits == bits and entry.length:
        return put(b, entry.text, entry.length)
    text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        length = strlen(text)
        put(b, text, length)
        if length <= 31:
            entry.bits = bits
            entry.length = <unsigned char>length
            memcpy(entry.text, text, length)
    finally:
        PyMem_Free(text)
    return 0


cdef inline void check_offsets(bytes data, const int64_t[::1] starts) except *:
    """Refuse line offsets into ``data`` that run backwards or reach outside it (lines are copied from them
    unchecked)."""
    cdef Py_ssize_t j
    if starts.shape[0] == 0 or starts[0] < 0 or starts[starts.shape[0] - 1] > len(data):
        raise ValueError(f"line offsets reach outside a buffer of {len(data)} bytes.")
    for j in range(starts.shape[0] - 1):
        if starts[j + 1] < starts[j]:
            raise ValueError(f"line {j} ends at {starts[j + 1]}, before its start {starts[j]}.")
