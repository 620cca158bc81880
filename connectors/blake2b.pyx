# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""BLAKE2b (RFC 7693) with a 16-byte digest and no key, in C.

The digest is the one ``hashlib.blake2b(data, digest_size=16)`` gives. Winnow
hashes in hot loops where a ``hashlib`` call per item costs more than the hash:
decision ids (``jobs/line_encoding.pyx``) and the trace ids of events that
carry no ``traceparent`` (``connectors/trace_ids.pyx``). Those extensions
``cimport`` ``blake2b_128`` from ``blake2b.pxd``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

cdef uint64_t[8] IV = [
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
]

cdef uint8_t[10][16] SIGMA = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
]


cdef inline uint64_t rotr(uint64_t x, int n) noexcept nogil:
    return (x >> n) | (x << (64 - n))


cdef inline void mix(uint64_t* v, int a, int b, int c, int d, uint64_t x, uint64_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = rotr(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = rotr(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = rotr(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = rotr(v[b] ^ v[c], 63)


cdef void compress(uint64_t* h, const uint8_t* block, uint64_t counter, bint last) noexcept nogil:
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef int i, j
    cdef const uint8_t* s
    for i in range(16):
        m[i] = 0
        for j in range(8):
            m[i] |= (<uint64_t>block[8 * i + j]) << (8 * j)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = IV[i]
    v[12] ^= counter
    if last:
        v[14] = ~v[14]
    for i in range(12):
        s = SIGMA[i % 10]
        mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef void blake2b_128(const uint8_t* data, Py_ssize_t n, uint8_t* digest) noexcept nogil:
    """Write the 16-byte BLAKE2b digest of ``data[:n]`` to ``digest`` (messages under 2**64 bytes)."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef Py_ssize_t done = 0
    cdef int i
    for i in range(8):
        h[i] = IV[i]
    h[0] ^= 0x01010000 ^ 16  # parameter block: digest length 16, no key, fanout 1, depth 1
    while n - done > 128:
        compress(h, data + done, <uint64_t>(done + 128), False)
        done += 128
    memset(block, 0, 128)
    memcpy(block, data + done, n - done)
    compress(h, block, <uint64_t>n, True)
    for i in range(16):
        digest[i] = <uint8_t>(h[i // 8] >> (8 * (i % 8)))


def digest_128(bytes data not None) -> bytes:
    """The 16-byte digest ``blake2b_128`` computes (for tests and tools)."""
    cdef uint8_t digest[16]
    blake2b_128(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), digest)
    return digest[:16]
