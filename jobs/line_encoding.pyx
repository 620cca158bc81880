# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""JSON lines of window results and decisions, written in C.

Every emitted result becomes one line, and most results of a busy job also
become a decision, so this is where replay and streaming spend their output
time. ``ResultRows`` and ``DecisionRows`` hold a chunk's columns and write one
line per row, each ending in a line break, when asked
(``connectors/line_source.pyx``): all at once into one ``bytes`` buffer with
the offset where each line starts (``lines``: the form of a
``connectors.line_blocks.LineBlock``, from which the Kafka sink builds record
batches, ``connectors/record_batches.pyx``), or a range of rows at a time
while a replay's merged files are written (``connectors/line_gather.pyx``).
No Python object is made per line.

Numbers are written in the format ``jobs/records.py`` documents: integral
values below 1e15 without a fraction, NaN as null, other floats as Python's
``repr`` (the shortest text that reads back to the same double). A decision's
id is BLAKE2b (RFC 7693, 16-byte digest, ``connectors/blake2b.pyx``) of its
job, rule, window, key and bounds, as ``hashlib.blake2b(..., digest_size=16)``
gives it.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from connectors.blake2b cimport blake2b_128_many
from connectors.line_buffer cimport (
    Buffer,
    buffer_init,
    put,
    put_bytes,
    put_int,
    put_number,
    reserve,
)
from connectors.line_source cimport LineSource
from windows.prefetch cimport __builtin_prefetch, prefetch_span
from windows.trace_links cimport LINK_FIELDS, LINK_HIGH, LINK_LOW, LINK_ORIGIN, LINK_SEQ, NO_SEQ

import numpy as np


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


cdef void _check_keys(list items, const int64_t[:] key_ids) except *:
    """Refuse key ids without a registered key text."""
    cdef Py_ssize_t i, known = PyList_GET_SIZE(items)
    for i in range(key_ids.shape[0]):
        if key_ids[i] < 0 or key_ids[i] >= known:
            raise IndexError(f"key id {key_ids[i]} is not registered")


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


cdef class PlacedRows(LineSource):
    """The columns every emitted row has: the fields its chunk shares (``head``, ending in a comma), its key
    (its JSON text from ``key_json``), bounds and emission time, and its ``names`` values from ``columns``."""

    cdef bytes head
    cdef list key_json
    cdef const int64_t[:] key_ids
    cdef const int64_t[:] starts
    cdef const int64_t[:] ends
    cdef const int64_t[:] emitted_at
    cdef Values values

    cdef int _hold(
        self,
        str rows,
        bytes head,
        list key_json,
        const int64_t[:] key_ids,
        const int64_t[:] starts,
        const int64_t[:] ends,
        const int64_t[:] emitted_at,
        list names,
        list columns,
    ) except -1:
        """Keep the columns of ``rows`` ("result" or "decision"), refusing ones of other lengths and key ids
        without a key text now, not when the lines are written."""
        cdef Py_ssize_t n = key_ids.shape[0]
        if starts.shape[0] != n or ends.shape[0] != n or emitted_at.shape[0] != n:
            raise ValueError(f"{rows} columns of {n} keys need as many starts, ends and emission times.")
        self.head, self.key_json = head, key_json
        self.key_ids, self.starts, self.ends, self.emitted_at = key_ids, starts, ends, emitted_at
        self.values = Values(names, columns)
        for column in self.values.arrays:
            if column.shape[0] != n:
                raise ValueError(f"a {rows} value column of {column.shape[0]} rows does not match {n} keys.")
        _check_keys(key_json, key_ids)
        self.count = n
        return 0


cdef class ResultRows(PlacedRows):
    """Result lines of a chunk's columns, one per row: ``head``, then the key, the bounds, the emission time
    and the values (``PlacedRows``)."""

    def __cinit__(
        self,
        bytes head not None,
        list key_json not None,
        const int64_t[:] key_ids,
        const int64_t[:] starts,
        const int64_t[:] ends,
        const int64_t[:] emitted_at,
        list names not None,
        list columns not None,
    ):
        self._hold("result", head, key_json, key_ids, starts, ends, emitted_at, names, columns)
        self.row_bytes = 8 * (4 + len(names))
        self.line_bytes = PyBytes_GET_SIZE(head) + 160

    cdef int write_row(self, Buffer* b, Py_ssize_t i) except -1:
        if i < 0 or i >= self.count:
            raise IndexError(f"result row {i} is not among the {self.count} rows.")
        put_bytes(b, self.head)
        prefetch_key(self.key_json, self.key_ids, i + 8)
        put_placement(b, key_item(self.key_json, self.key_ids[i]), self.starts[i], self.ends[i], self.emitted_at[i])
        put(b, ',"values":', 10)
        self.values.write(b, i)
        return put(b, "}\n", 2)


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


#: How many decisions ahead a decision source asks the CPU for a trace row: a chunk's rows come in result
#: order, not in the order of its trace entries, which are often larger than the CPU's cache.
cdef Py_ssize_t PREFETCH_AHEAD = 6


cdef class DecisionRows(PlacedRows):
    """Decision lines of a chunk's columns, one per row, and each row's trace origin time (epoch ms, 0:
    unknown) in ``origins``.

    ``head`` holds the fields every row shares; the id is BLAKE2b of ``id_prefix`` (job, rule and window,
    each followed by 0x1f), the key's UTF-8 text from ``key_text``, and the bounds: every id is hashed when
    the rows are made, eight at a time. Row ``i``'s trace entries are ``traces[trace_rows[i]]`` (traced x
    links x (ts, seq, origin, trace high, trace low); none when ``trace_rows[i]`` is -1 or both are None):
    the trace of the event that made the window fire (the first entry) and the other distinct traces it
    keeps. ``traces`` may come in parts (a tuple of such arrays, of one width), their entries numbered one
    after another, as joined result chunks hold them (``windows.results``): no part is copied."""

    cdef list trace_parts  # the arrays ``row_trace`` points into, kept alive here
    cdef const int64_t** row_trace  # each row's trace entries (NULL: none)
    cdef Py_ssize_t width
    cdef Py_ssize_t traced
    cdef bytes digests  # 16 bytes per row
    cdef readonly object origins

    def __cinit__(
        self,
        bytes head not None,
        bytes id_prefix not None,
        list key_text not None,
        list key_json not None,
        const int64_t[:] key_ids,
        const int64_t[:] starts,
        const int64_t[:] ends,
        const int64_t[:] emitted_at,
        list names not None,
        list columns not None,
        trace_rows,
        traces,
    ):
        cdef Py_ssize_t n = key_ids.shape[0], i, id_start
        self._hold("decision", head, key_json, key_ids, starts, ends, emitted_at, names, columns)
        if (trace_rows is None) != (traces is None):
            raise ValueError("decision trace entries need both their rows and the entries")
        origins_array = np.zeros(n, dtype=np.int64)
        cdef int64_t[::1] origins = origins_array
        self.width = self.traced = 0
        self.trace_parts = []
        if traces is not None:
            self._point_at_traces(trace_rows, traces, origins)
        self.origins = origins_array
        # every id's text, one after another, then their digests, many at a time (``blake2b_128_many``)
        cdef Buffer text
        cdef Py_ssize_t* id_ends = <Py_ssize_t*>PyMem_Malloc((n + 1) * sizeof(Py_ssize_t))
        cdef const uint8_t** id_texts = <const uint8_t**>PyMem_Malloc((n + 1) * sizeof(uint8_t*))
        self.digests = PyBytes_FromStringAndSize(NULL, 16 * n)
        text.data = NULL
        try:
            if id_ends == NULL or id_texts == NULL:
                raise MemoryError("no memory for decision ids")
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
            blake2b_128_many(id_texts, id_ends, n, <uint8_t*>PyBytes_AS_STRING(self.digests))
        finally:
            PyMem_Free(text.data)
            PyMem_Free(id_ends)
            PyMem_Free(id_texts)
        # the trace entries are the whole chunk's (its rows that met a rule's condition, often many more than
        # fired): each row counts its share of them, and its pointer to them
        self.row_bytes = 8 * (6 + len(names)) + 16 + (self.traced * self.width * LINK_FIELDS * 8) // max(n, 1)
        # a trace link takes about 35 bytes
        self.line_bytes = PyBytes_GET_SIZE(head) + 384 + 48 * self.width

    def __dealloc__(self):
        PyMem_Free(self.row_trace)

    cdef int _point_at_traces(self, trace_rows, traces, int64_t[::1] origins) except -1:
        """Find each row's trace entries in ``traces`` (an array or a tuple of parts) at ``trace_rows``; set
        ``origins`` from them."""
        cdef Py_ssize_t n = self.count, i, part_count, p, low, high
        cdef const int64_t[:] rows_traced = trace_rows
        cdef const int64_t[:, :, ::1] part
        cdef int64_t at
        cdef const int64_t* row
        parts = list(traces) if isinstance(traces, (tuple, list)) else [traces]
        part_count = len(parts)
        if rows_traced.shape[0] != n:
            raise ValueError(f"trace entries for {rows_traced.shape[0]} rows do not match {n} decisions")
        firsts_array = np.zeros(part_count + 1, dtype=np.int64)  # where each part's entries start, then the end
        cdef int64_t[::1] firsts = firsts_array
        cdef const int64_t** bases = <const int64_t**>PyMem_Malloc(max(part_count, 1) * sizeof(int64_t*))
        self.row_trace = <const int64_t**>PyMem_Malloc(max(n, 1) * sizeof(int64_t*))
        try:
            if bases == NULL or self.row_trace == NULL:
                raise MemoryError("no memory for decision trace entries")
            for p in range(part_count):
                array = np.ascontiguousarray(parts[p], dtype=np.int64)
                if array.ndim != 3 or array.shape[2] != LINK_FIELDS or (p and array.shape[1] != self.width):
                    raise ValueError(
                        f"trace entries of shape {np.shape(parts[p])} for {n} decisions are not (entries, "
                        f"{self.width if p else 'links'}, {LINK_FIELDS})"
                    )
                part = array
                self.trace_parts.append(array)
                self.width = array.shape[1]
                bases[p] = &part[0, 0, 0] if array.shape[0] and self.width else NULL
                firsts[p + 1] = firsts[p] + array.shape[0]
            self.traced = firsts[part_count]
            for i in range(n):
                at = rows_traced[i]
                if at >= self.traced:
                    raise IndexError(f"decision {i} points at trace entry {at}, past the {self.traced} given")
                self.row_trace[i] = NULL
                if at < 0 or not self.width:
                    continue
                low, high = 0, part_count - 1  # the last part starting at or before ``at``
                while low < high:
                    p = (low + high + 1) >> 1
                    if firsts[p] <= at:
                        low = p
                    else:
                        high = p - 1
                row = bases[low] + (at - firsts[low]) * self.width * LINK_FIELDS
                self.row_trace[i] = row
                if row[LINK_SEQ] != NO_SEQ:
                    origins[i] = row[LINK_ORIGIN]
        finally:
            PyMem_Free(bases)
        return 0

    cdef int write_row(self, Buffer* b, Py_ssize_t i) except -1:
        cdef Py_ssize_t j, at_id
        cdef const int64_t* row
        cdef bint any_link
        cdef int64_t origin
        if i < 0 or i >= self.count:
            raise IndexError(f"decision row {i} is not among the {self.count} rows.")
        if self.width and i + PREFETCH_AHEAD < self.count and self.row_trace[i + PREFETCH_AHEAD] != NULL:
            prefetch_span(self.row_trace[i + PREFETCH_AHEAD], self.width * LINK_FIELDS * sizeof(int64_t))
        put_bytes(b, self.head)
        put(b, '"id":"', 6)
        reserve(b, 32)
        at_id = b.size  # the id's hex digits, which the traceparent's parent id repeats
        put_hex_digest(b.data + b.size, <const uint8_t*>PyBytes_AS_STRING(self.digests) + 16 * i)
        b.size += 32
        put(b, '",', 2)
        prefetch_key(self.key_json, self.key_ids, i + 8)
        put_placement(b, key_item(self.key_json, self.key_ids[i]), self.starts[i], self.ends[i], self.emitted_at[i])
        put(b, ",", 1)
        row = self.row_trace[i] if self.width else NULL
        if row == NULL or row[LINK_SEQ] == NO_SEQ:
            put(b, '"trace_id":null,"traceparent":null,"trace_links":[],"origin_at":null,', 69)
        else:
            put(b, '"trace_id":"', 12)
            put_trace(b, row)
            put(b, '","traceparent":"00-', 20)
            put_trace(b, row)
            put(b, "-", 1)
            reserve(b, 16)
            memcpy(b.data + b.size, b.data + at_id, 16)
            b.size += 16
            put(b, '-01","trace_links":[', 20)
            any_link = False
            for j in range(1, self.width):
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
            else:
                put(b, "null", 4)
            put(b, ",", 1)
        put(b, '"values":', 9)
        self.values.write(b, i)
        return put(b, "}\n", 2)


# ---- decision ids ------------------------------------------------------------------------

cdef inline void put_hex_digest(char* out, const uint8_t* digest) noexcept nogil:
    """Write the 32 hex digits of a 16-byte digest to ``out``."""
    cdef int i
    for i in range(16):
        out[2 * i] = HEX[digest[i] >> 4]
        out[2 * i + 1] = HEX[digest[i] & 15]
