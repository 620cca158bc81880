# CRC-32C of Kafka record batches in C, shared with the batch reader (cimport it; the code is in record_batches.pyx).
from libc.stdint cimport uint8_t, uint32_t

cdef uint32_t _crc32c(const uint8_t* data, Py_ssize_t n) noexcept nogil
