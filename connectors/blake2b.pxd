# BLAKE2b-128 in C, shared by the extensions that hash (cimport it; the code is in blake2b.pyx).
from libc.stdint cimport uint8_t

cdef void blake2b_128(const uint8_t* data, Py_ssize_t n, uint8_t* digest) noexcept nogil
cdef void blake2b_128_many(const uint8_t** data, const Py_ssize_t* sizes, Py_ssize_t n, uint8_t* digests) noexcept nogil
