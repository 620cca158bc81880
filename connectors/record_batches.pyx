# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Kafka record batches (message format v2) built in C from packed output lines.

A busy job writes several output records per input event. Handing each one to
aiokafka's batch builder costs a Python call, a ``bytes`` object for the value
and a metadata object per record. ``build_batch`` instead writes a whole
producer batch straight from a packed line buffer (``connectors.line_blocks``):
the v2 batch header, one record per line (its line break left out) keyed by
the bytes of its key id, and the batch's CRC-32C. The records are byte for
byte those aiokafka's own builder writes; the header differs only in the base
sequence (-1, "none", as Kafka's Java producer writes, where aiokafka writes 0).
Any Kafka client reads the batches.

The format (Kafka's ``DefaultRecordBatch``): a 61-byte big-endian header (base
offset, batch length, partition leader epoch, magic 2, CRC-32C of everything
after the CRC field, attributes, last offset delta, first and max timestamps,
producer id, epoch and base sequence, record count), then per record its
length, attributes, timestamp delta, offset delta, key, value and header
count, with zigzag varints for lengths and deltas.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    _HEADER_BYTES = 61  # the batch header
    _CRC_FROM = 21  # where the part the CRC covers begins: the attributes

#: Bytes of the batch header, and where the part the CRC covers begins.
HEADER_BYTES = _HEADER_BYTES
CRC_FROM = _CRC_FROM

cdef uint32_t _TABLE[8][256]
cdef uint16_t _ONE = 1


cdef void _make_table():
    """Slice-by-8 tables of the reflected Castagnoli polynomial."""
    cdef uint32_t crc
    cdef int i, j, k
    for i in range(256):
        crc = i
        for j in range(8):
            crc = (crc >> 1) ^ (0x82F63B78U if crc & 1 else 0)
        _TABLE[0][i] = crc
    for i in range(256):
        crc = _TABLE[0][i]
        for k in range(1, 8):
            crc = (crc >> 8) ^ _TABLE[0][crc & 0xFF]
            _TABLE[k][i] = crc


_make_table()


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* The SSE 4.2 crc32 instruction computes CRC-32C itself, 8 bytes at a time. */
    __attribute__((target("sse4.2")))
    static uint32_t winnow_crc32c_hw(uint32_t crc, const uint8_t* data, Py_ssize_t n) {
        uint64_t c = crc, word;
        while (n >= 8) { memcpy(&word, data, 8); c = __builtin_ia32_crc32di(c, word); data += 8; n -= 8; }
        crc = (uint32_t)c;
        while (n > 0) { crc = __builtin_ia32_crc32qi(crc, *data); data++; n--; }
        return crc;
    }
    static int winnow_crc32c_hw_present(void) { return __builtin_cpu_supports("sse4.2"); }
    #else
    static uint32_t winnow_crc32c_hw(uint32_t crc, const uint8_t* data, Py_ssize_t n) { return crc; }
    static int winnow_crc32c_hw_present(void) { return 0; }
    #endif
    """
    uint32_t _crc32c_hw "winnow_crc32c_hw"(uint32_t crc, const uint8_t* data, Py_ssize_t n) noexcept nogil
    int _crc32c_hw_present "winnow_crc32c_hw_present"() noexcept nogil


cdef bint _HARDWARE = _crc32c_hw_present()

#: Whether CRC-32C runs on the processor's own instruction (x86-64 with SSE 4.2) or on tables.
HARDWARE_CRC = bool(_HARDWARE)


cdef uint32_t _crc32c(const uint8_t* data, Py_ssize_t n) noexcept nogil:
    cdef uint32_t crc = 0xFFFFFFFFU
    if _HARDWARE:
        return _crc32c_hw(crc, data, n) ^ 0xFFFFFFFFU
    return _crc32c_tables(crc, data, n) ^ 0xFFFFFFFFU


cdef bint _LITTLE_ENDIAN = (<const uint8_t*>&_ONE)[0] == 1


cdef uint32_t _crc32c_tables(uint32_t crc, const uint8_t* data, Py_ssize_t n) noexcept nogil:
    cdef uint64_t word
    while n >= 8 and _LITTLE_ENDIAN:  # slice-by-8 reads little-endian words; elsewhere a byte at a time
        memcpy(&word, data, 8)
        word ^= crc
        crc = (_TABLE[7][word & 0xFF] ^ _TABLE[6][(word >> 8) & 0xFF] ^ _TABLE[5][(word >> 16) & 0xFF]
               ^ _TABLE[4][(word >> 24) & 0xFF] ^ _TABLE[3][(word >> 32) & 0xFF] ^ _TABLE[2][(word >> 40) & 0xFF]
               ^ _TABLE[1][(word >> 48) & 0xFF] ^ _TABLE[0][word >> 56])
        data += 8
        n -= 8
    while n > 0:
        crc = (crc >> 8) ^ _TABLE[0][(crc ^ data[0]) & 0xFF]
        data += 1
        n -= 1
    return crc


def crc32c_tables(const uint8_t[::1] data) -> int:
    """``crc32c`` computed with the tables only (the fallback, tested against the instruction)."""
    if data.shape[0] == 0:
        return 0
    return _crc32c_tables(0xFFFFFFFFU, &data[0], data.shape[0]) ^ 0xFFFFFFFFU


def crc32c(const uint8_t[::1] data) -> int:
    """The CRC-32C (Castagnoli) of ``data``, as Kafka's record batches carry it."""
    if data.shape[0] == 0:
        return 0
    return _crc32c(&data[0], data.shape[0])


cdef inline int _varint_bytes(int64_t value) noexcept nogil:
    cdef uint64_t v = (<uint64_t>value << 1) ^ <uint64_t>(value >> 63)
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline char* _put_varint(char* at, int64_t value) noexcept nogil:
    cdef uint64_t v = (<uint64_t>value << 1) ^ <uint64_t>(value >> 63)
    while v >= 0x80:
        at[0] = <char>((v & 0x7F) | 0x80)
        v >>= 7
        at += 1
    at[0] = <char>v
    return at + 1


cdef inline char* _put_be(char* at, uint64_t value, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        at[i] = <char>((value >> (8 * (width - 1 - i))) & 0xFF)
    return at + width


cdef inline int64_t _key_length(object key, int64_t key_id) except -2:
    """The length of ``key``, key ``key_id`` of the keys given (-1: no key)."""
    if key is None:
        return -1
    if type(key) is not bytes:
        raise TypeError(f"key {key_id} is a {type(key).__name__}; record keys are bytes or None.")
    return PyBytes_GET_SIZE(key)


cdef inline int64_t _record_bytes(int64_t offset_delta, int64_t key_length, int64_t value_length) noexcept nogil:
    """Bytes of a record's body (everything after its length): attributes, timestamp delta 0, offset delta,
    key, value and a header count of 0."""
    return (1 + 1 + _varint_bytes(offset_delta) + _varint_bytes(key_length) + max(key_length, 0)
            + _varint_bytes(value_length) + value_length + 1)


def build_batch(list datas not None, list line_starts not None, list line_keys not None, Py_ssize_t part,
                Py_ssize_t first, list keys not None,
                int64_t timestamp_ms, Py_ssize_t max_bytes):
    """One record batch of the lines of several packed buffers, from line ``first`` of buffer ``part`` on, as
    many as fit in ``max_bytes`` (at least one); returns the batch, how many lines it holds, and the
    (buffer, line) after its last line (``(len(datas), 0)`` when it holds the last one).

    Line ``i`` of buffer ``b`` is ``datas[b][line_starts[b][i]:line_starts[b][i + 1]]``; its record value
    leaves out its last byte (the line break), and its key is ``keys[line_keys[b][i]]`` (``bytes``, or
    ``None`` for no key). Every record gets the timestamp ``timestamp_ms`` (create time). The buffers are
    taken one after another as if they were one: a batch can span several."""
    cdef Py_ssize_t parts = len(datas), n_keys = PyList_GET_SIZE(keys), b, i, total, count, lines
    cdef int64_t length, key_length, body, key_id, delta
    cdef object key
    cdef const int64_t[::1] starts
    cdef const int64_t[::1] key_ids
    if len(line_starts) != parts or len(line_keys) != parts:
        raise ValueError(f"build_batch takes one offsets array and one key id array per buffer: {parts} buffers, "
                         f"{len(line_starts)} offsets arrays and {len(line_keys)} key id arrays.")
    if part < 0 or part >= parts or first < 0 or first >= len(line_starts[part]) - 1:
        raise IndexError(f"line {first} of buffer {part} is not among the lines given.")
    # First pass: how many lines fit, and the batch's exact size.
    total = _HEADER_BYTES
    count = 0
    b, i = part, first
    while b < parts:
        starts, key_ids = line_starts[b], line_keys[b]
        if type(datas[b]) is not bytes or starts.shape[0] == 0:
            raise TypeError(f"buffer {b} is not bytes with its line offsets.")
        lines = starts.shape[0] - 1
        if key_ids.shape[0] != lines:
            raise ValueError(f"build_batch takes one key id per line: {key_ids.shape[0]} key ids for {lines} lines "
                             f"in buffer {b}.")
        if starts[0] < 0 or starts[i] < 0 or starts[lines] > PyBytes_GET_SIZE(datas[b]):
            raise ValueError(f"line offsets reach outside a buffer of {PyBytes_GET_SIZE(datas[b])} bytes.")
        while i < lines:
            length = starts[i + 1] - starts[i] - 1
            if length < 0:
                raise ValueError(f"line {i} of buffer {b} is empty: every line ends in a line break.")
            key_id = key_ids[i]
            if key_id < 0 or key_id >= n_keys:
                raise IndexError(f"key id {key_id} of line {i} is not among the {n_keys} keys given.")
            key_length = _key_length(<object>PyList_GET_ITEM(keys, key_id), key_id)
            body = _record_bytes(count, key_length, length)
            if count and total + _varint_bytes(body) + body > max_bytes:
                break
            total += _varint_bytes(body) + body
            count += 1
            i += 1
        if i < lines:
            break
        b, i = b + 1, 0
    end_part, end_line = b, i
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* buffer = PyBytes_AS_STRING(out)
    cdef char* at = buffer
    cdef const char* source
    at = _put_be(at, 0, 8)  # base offset: the broker assigns it
    at = _put_be(at, <uint64_t>(total - 12), 4)  # batch length: what follows this field
    at = _put_be(at, <uint64_t>(<uint32_t>-1), 4)  # partition leader epoch: the broker sets it
    at[0] = 2  # magic
    at += 1 + 4  # the CRC goes in last
    at = _put_be(at, 0, 2)  # attributes: no compression, create time, not transactional, not control
    at = _put_be(at, <uint64_t>(count - 1), 4)  # last offset delta
    at = _put_be(at, <uint64_t>timestamp_ms, 8)  # first timestamp
    at = _put_be(at, <uint64_t>timestamp_ms, 8)  # max timestamp
    at = _put_be(at, <uint64_t>(<int64_t>-1), 8)  # producer id: none (not idempotent)
    at = _put_be(at, 0xFFFF, 2)  # producer epoch: none
    at = _put_be(at, <uint64_t>(<uint32_t>-1), 4)  # base sequence: none
    at = _put_be(at, <uint64_t>count, 4)
    delta = 0
    b, i = part, first
    while delta < count:
        starts, key_ids = line_starts[b], line_keys[b]
        source = PyBytes_AS_STRING(datas[b])
        lines = starts.shape[0] - 1
        while i < lines and delta < count:
            length = starts[i + 1] - starts[i] - 1
            key = <object>PyList_GET_ITEM(keys, key_ids[i])
            key_length = _key_length(key, key_ids[i])
            at = _put_varint(at, _record_bytes(delta, key_length, length))
            at[0] = 0  # record attributes
            at[1] = 0  # timestamp delta (zigzag 0)
            at = _put_varint(at + 2, delta)  # offset delta
            at = _put_varint(at, key_length)
            if key_length > 0:
                memcpy(at, PyBytes_AS_STRING(key), key_length)
                at += key_length
            at = _put_varint(at, length)
            memcpy(at, source + starts[i], length)
            at += length
            at[0] = 0  # no headers
            at += 1
            delta += 1
            i += 1
        b, i = b + 1, 0
    if at - buffer != total:
        raise AssertionError(f"a record batch came out {at - buffer} bytes long, not the {total} computed.")
    _put_be(buffer + 17, _crc32c(<const uint8_t*>buffer + _CRC_FROM, total - _CRC_FROM), 4)
    return out, count, end_part, end_line
