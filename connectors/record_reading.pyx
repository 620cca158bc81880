# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Fetched Kafka record batches (message format v2) read into columns in C.

aiokafka turns each fetched record into a ``DefaultRecord`` object through a
Python generator, a microsecond or two per record spent in the consumer's
thread, holding the interpreter the job needs. A job reads only each
record's offset, key, value, timestamp and ``traceparent`` header, so
``read_batches`` reads those straight from the fetched bytes into columns:
the offsets and timestamps as int64 arrays, keys, values and traceparents as
lists of ``bytes`` (a missing value as ``b""``, a missing key or header as
None).

It reads what aiokafka's reader reads, the same way (see ``PartitionRecords``
in aiokafka's fetcher): whole batches only (a partial one at the end of a
fetch is left, as the broker cuts fetches mid-batch), the CRC-32C of each
when asked, control batches skipped, records before the fetched offset
skipped, log-append-time batches stamped with their max timestamp. Batches
it does not read (compressed ones, older formats) are found first by
``plain_batches``; the caller then leaves the whole fetch to aiokafka.

The format (Kafka's ``DefaultRecordBatch``, as in ``record_batches.pyx``): a
61-byte big-endian header, then per record its length, attributes,
timestamp delta, offset delta, key, value and headers, with zigzag varints
for lengths and deltas.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from connectors.record_batches cimport _crc32c

import numpy as np

cdef enum:
    HEADER_BYTES = 61
    CRC_FROM = 21
    MIN_BATCH_LENGTH = HEADER_BYTES - 12  # a batch's length field counts what follows it
    COMPRESSION_MASK = 0x07
    LOG_APPEND_TIME = 0x08
    CONTROL_BATCH = 0x20


class CorruptBatch(ValueError):
    """A fetched record batch that does not read as one (a CRC mismatch or lengths out of place)."""


cdef inline uint64_t be(const uint8_t* p, int width) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(width):
        value = (value << 8) | p[i]
    return value


cdef inline const uint8_t* varint(const uint8_t* p, const uint8_t* end, int64_t* out) noexcept nogil:
    """Past a zigzag varint at ``p`` (its value in ``out``), or NULL when it runs past ``end`` or 10 bytes."""
    cdef uint64_t value = 0
    cdef int shift = 0
    while p < end and shift < 70:
        value |= <uint64_t>(p[0] & 0x7F) << shift
        if p[0] < 0x80:
            out[0] = <int64_t>(value >> 1) ^ -<int64_t>(value & 1)
            return p + 1
        p += 1
        shift += 7
    return NULL


cdef inline const uint8_t* field(const uint8_t* p, const uint8_t* end, int64_t* length) noexcept nogil:
    """Past a varint length and that many bytes (none for -1), or NULL when they run past ``end``."""
    p = varint(p, end, length)
    if p == NULL or length[0] < -1 or (length[0] > 0 and length[0] > end - p):
        return NULL
    return p + (length[0] if length[0] > 0 else 0)


def plain_batches(bytes raw not None) -> bool:
    """Whether every whole batch in ``raw`` is of format v2 and uncompressed (the ones ``read_batches``
    reads)."""
    cdef const uint8_t* at = <const uint8_t*>PyBytes_AS_STRING(raw)
    cdef const uint8_t* end = at + PyBytes_GET_SIZE(raw)
    cdef int64_t length
    while end - at >= HEADER_BYTES:
        length = <int64_t>be(at + 8, 4)
        if length > end - at - 12:
            break
        if at[16] != 2 or be(at + CRC_FROM, 2) & COMPRESSION_MASK:
            return False
        at += 12 + length
    return True


cdef struct Column:
    int64_t* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int push(Column* column, int64_t value) except -1:
    cdef int64_t* grown
    if column.size == column.capacity:
        grown = <int64_t*>PyMem_Realloc(column.data, max(64, 2 * column.capacity) * sizeof(int64_t))
        if grown == NULL:
            raise MemoryError("no memory for fetched record offsets")
        column.data = grown
        column.capacity = max(64, 2 * column.capacity)
    column.data[column.size] = value
    column.size += 1
    return 0


cdef object as_array(Column* column):
    out = np.empty(column.size, dtype=np.int64)
    cdef int64_t[::1] view = out
    if column.size:
        memcpy(&view[0], column.data, column.size * sizeof(int64_t))
    return out


cdef inline object bytes_or_none(const uint8_t* start, int64_t length):
    return None if length < 0 else PyBytes_FromStringAndSize(<const char*>start, length)


def read_batches(bytes raw not None, Py_ssize_t pos, int64_t fetch_offset, Py_ssize_t wanted, bint check_crcs):
    """Read whole batches of ``raw`` from byte ``pos`` until ``wanted`` records at or after ``fetch_offset``
    are read or no whole batch is left (a batch is read to its end: more than ``wanted`` may come).

    Returns ``(offsets, keys, values, timestamps, traceparents, pos, next_offset, more)``: the records' columns,
    the byte after the last batch read, the offset after it (-1: no batch read) and whether a whole batch is
    left. Raises ``CorruptBatch`` for a batch that fails its CRC or does not parse."""
    cdef const uint8_t* base = <const uint8_t*>PyBytes_AS_STRING(raw)
    cdef const uint8_t* end = base + PyBytes_GET_SIZE(raw)
    cdef const uint8_t* at = base + pos
    cdef const uint8_t* p
    cdef const uint8_t* batch_end
    cdef const uint8_t* record_end
    cdef const uint8_t* key
    cdef const uint8_t* value
    cdef const uint8_t* name
    cdef const uint8_t* value_start
    cdef int64_t length, base_offset, first_time, max_time, count, r, h, delta, offset_delta, key_length
    cdef int64_t value_length, header_count, name_length, header_length, next_offset = -1, timestamp
    cdef Py_ssize_t taken = 0
    cdef int attributes
    cdef bint found
    cdef object traceparent
    cdef list keys = [], values = [], traceparents = []
    cdef Column offsets, timestamps
    if pos < 0 or pos > PyBytes_GET_SIZE(raw):
        raise IndexError(f"byte {pos} is outside the {PyBytes_GET_SIZE(raw)} fetched bytes.")
    offsets.data = timestamps.data = NULL
    offsets.size = offsets.capacity = timestamps.size = timestamps.capacity = 0
    try:
        while taken < wanted and end - at >= HEADER_BYTES:
            length = <int64_t>be(at + 8, 4)
            if length > end - at - 12:
                break  # the fetch ends inside this batch
            base_offset = <int64_t>be(at, 8)
            if length < MIN_BATCH_LENGTH or at[16] != 2:
                raise CorruptBatch(f"the record batch at offset {base_offset} is not a v2 batch of {length} bytes.")
            batch_end = at + 12 + length
            if check_crcs and <uint32_t>be(at + 17, 4) != _crc32c(at + CRC_FROM, batch_end - at - CRC_FROM):
                raise CorruptBatch(f"the record batch at offset {base_offset} fails its CRC-32C check.")
            attributes = <int>be(at + CRC_FROM, 2)
            if attributes & COMPRESSION_MASK:
                raise CorruptBatch(f"the record batch at offset {base_offset} is compressed; read it with aiokafka.")
            first_time = <int64_t>be(at + 27, 8)
            max_time = <int64_t>be(at + 35, 8)
            count = <int64_t>be(at + 57, 4)
            next_offset = base_offset + <int64_t>be(at + 23, 4) + 1
            p = at + HEADER_BYTES
            if not attributes & CONTROL_BATCH:
                for r in range(count):
                    p = varint(p, batch_end, &length)
                    if p == NULL or length < 0 or length > batch_end - p:
                        raise CorruptBatch(f"record {r} of the batch at offset {base_offset} runs past the batch.")
                    record_end = p + length
                    p = varint(p + 1, record_end, &delta)  # after the record's attributes: the timestamp delta
                    if p != NULL:
                        p = varint(p, record_end, &offset_delta)
                    if p != NULL:
                        key = varint(p, record_end, &key_length)
                        p = field(p, record_end, &key_length)
                    if p != NULL:
                        value = varint(p, record_end, &value_length)
                        p = field(p, record_end, &value_length)
                    if p != NULL:
                        p = varint(p, record_end, &header_count)
                    if p == NULL or header_count < 0:
                        raise CorruptBatch(f"record {r} of the batch at offset {base_offset} does not parse.")
                    traceparent = None
                    found = False
                    for h in range(header_count):
                        name = varint(p, record_end, &name_length)
                        p = field(p, record_end, &name_length)
                        if p != NULL:
                            header_length = 0
                            value_start = varint(p, record_end, &header_length)
                            p = field(p, record_end, &header_length)
                        if p == NULL or name_length < 0:
                            raise CorruptBatch(f"a header of record {r} of the batch at offset {base_offset} "
                                               f"does not parse.")
                        if not found and name_length == 11 and memcmp(name, b"traceparent", 11) == 0:
                            traceparent = bytes_or_none(value_start, header_length)  # the first one counts
                            found = True
                    if p != record_end:
                        raise CorruptBatch(f"record {r} of the batch at offset {base_offset} has {record_end - p} "
                                           f"bytes left over.")
                    if base_offset + offset_delta < fetch_offset:
                        continue  # before the fetched offset: the broker sends whole batches
                    timestamp = max_time if attributes & LOG_APPEND_TIME else first_time + delta
                    push(&offsets, base_offset + offset_delta)
                    push(&timestamps, timestamp)
                    PyList_Append(keys, bytes_or_none(key, key_length))
                    PyList_Append(values, b"" if value_length < 0 else bytes_or_none(value, value_length))
                    PyList_Append(traceparents, traceparent)
                    taken += 1
            at = batch_end
        more = end - at >= HEADER_BYTES and <int64_t>be(at + 8, 4) <= end - at - 12
        return (as_array(&offsets), keys, values, as_array(&timestamps), traceparents, at - base, next_offset, more)
    finally:
        PyMem_Free(offsets.data)
        PyMem_Free(timestamps.data)
