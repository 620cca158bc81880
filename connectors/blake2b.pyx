# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""BLAKE2b (RFC 7693) with a 16-byte digest and no key, in C.

The digest is the one ``hashlib.blake2b(data, digest_size=16)`` gives. Winnow
hashes in hot loops where a ``hashlib`` call per item costs more than the hash:
decision ids (``jobs/line_encoding.pyx``) and the trace ids of events that
carry no ``traceparent`` (``connectors/trace_ids.pyx``). Those extensions
``cimport`` ``blake2b_128`` and ``blake2b_128_many`` from ``blake2b.pxd``.

Those messages are short: most fit in one 128-byte block, one compression.
``blake2b_128_many`` hashes them eight at a time, each message in a lane of
vectors of eight 64-bit words (the same rounds, on eight states at once). GCC
on x86-64 Linux with glibc builds it for AVX-512, AVX2 and plain x86-64 and
picks one for the CPU when the module loads (``target_clones``); other
compilers and platforms build one generic version. Longer messages are hashed
one by one.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #include <stdint.h>

    /* BLAKE2b compression (RFC 7693, section 3.2). The twelve rounds are written out through macros so
       that every message-word index is a constant: the compiler then keeps the working vector in
       registers instead of indexing memory through the permutation table. */
    static const uint64_t winnow_b2b_iv[8] = {
        0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
        0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL,
    };
    static const uint8_t winnow_b2b_sigma[10][16] = {  /* round r uses row r % 10 */
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    };
    #define WINNOW_B2B_ROTR(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
    #define WINNOW_B2B_G(r, i, a, b, c, d)                                  \
        do {                                                                \
            a = a + b + m[winnow_b2b_sigma[(r) % 10][2 * (i)]];             \
            d = WINNOW_B2B_ROTR(d ^ a, 32);                                 \
            c = c + d;                                                      \
            b = WINNOW_B2B_ROTR(b ^ c, 24);                                 \
            a = a + b + m[winnow_b2b_sigma[(r) % 10][2 * (i) + 1]];         \
            d = WINNOW_B2B_ROTR(d ^ a, 16);                                 \
            c = c + d;                                                      \
            b = WINNOW_B2B_ROTR(b ^ c, 63);                                 \
        } while (0)
    #define WINNOW_B2B_ROUND(r)                                             \
        do {                                                                \
            WINNOW_B2B_G(r, 0, v[0], v[4], v[8], v[12]);                    \
            WINNOW_B2B_G(r, 1, v[1], v[5], v[9], v[13]);                    \
            WINNOW_B2B_G(r, 2, v[2], v[6], v[10], v[14]);                   \
            WINNOW_B2B_G(r, 3, v[3], v[7], v[11], v[15]);                   \
            WINNOW_B2B_G(r, 4, v[0], v[5], v[10], v[15]);                   \
            WINNOW_B2B_G(r, 5, v[1], v[6], v[11], v[12]);                   \
            WINNOW_B2B_G(r, 6, v[2], v[7], v[8], v[13]);                    \
            WINNOW_B2B_G(r, 7, v[3], v[4], v[9], v[14]);                    \
        } while (0)

    static inline uint64_t winnow_b2b_load64(const uint8_t* p) {
        /* little-endian load, whatever the host's byte order (compilers make it one move on x86) */
        return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24)
            | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) | ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
    }

    static void winnow_b2b_compress(uint64_t* h, const uint8_t* block, uint64_t counter, int last) {
        uint64_t m[16], v[16];
        int i;
        for (i = 0; i < 16; i++) m[i] = winnow_b2b_load64(block + 8 * i);
        for (i = 0; i < 8; i++) {
            v[i] = h[i];
            v[i + 8] = winnow_b2b_iv[i];
        }
        v[12] ^= counter;
        if (last) v[14] = ~v[14];
        WINNOW_B2B_ROUND(0); WINNOW_B2B_ROUND(1); WINNOW_B2B_ROUND(2); WINNOW_B2B_ROUND(3);
        WINNOW_B2B_ROUND(4); WINNOW_B2B_ROUND(5); WINNOW_B2B_ROUND(6); WINNOW_B2B_ROUND(7);
        WINNOW_B2B_ROUND(8); WINNOW_B2B_ROUND(9); WINNOW_B2B_ROUND(10); WINNOW_B2B_ROUND(11);
        for (i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
    }
    """
    const uint64_t winnow_b2b_iv[8]
    void winnow_b2b_compress(uint64_t* h, const uint8_t* block, uint64_t counter, int last) noexcept nogil


cdef extern from *:
    """
    /* Eight one-block messages at once: the compression above with every word a vector of eight lanes,
       one message per lane (words of vector type are lowered to whatever the target has). */
    #define WINNOW_B2B_LANES 8
    typedef uint64_t winnow_b2b_lanes __attribute__((vector_size(8 * WINNOW_B2B_LANES)));
    /* target_clones needs GCC and the ifunc of glibc on Linux; elsewhere one generic build */
    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && defined(__GLIBC__)
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void winnow_b2b_compress_lanes(uint64_t* digests, const uint8_t* blocks, const uint64_t* counters) {
        /* blocks: WINNOW_B2B_LANES blocks of 128 bytes, each a whole message zero-padded, whose length is
           its counter; digests: the first two words of each lane's final state, lane by lane */
        winnow_b2b_lanes m[16], v[16];
        int i, lane;
        for (i = 0; i < 16; i++)
            for (lane = 0; lane < WINNOW_B2B_LANES; lane++)
                m[i][lane] = winnow_b2b_load64(blocks + 128 * lane + 8 * i);
        for (i = 0; i < 8; i++) {
            v[i] = (winnow_b2b_lanes){0} + winnow_b2b_iv[i];
            v[i + 8] = v[i];
        }
        v[0] ^= (winnow_b2b_lanes){0} + (uint64_t)(0x01010000 ^ 16);  /* digest length 16, no key */
        for (lane = 0; lane < WINNOW_B2B_LANES; lane++) v[12][lane] ^= counters[lane];
        v[14] = ~v[14];  /* the last block */
        {
            winnow_b2b_lanes h0 = v[0], h1 = v[1];
            WINNOW_B2B_ROUND(0); WINNOW_B2B_ROUND(1); WINNOW_B2B_ROUND(2); WINNOW_B2B_ROUND(3);
            WINNOW_B2B_ROUND(4); WINNOW_B2B_ROUND(5); WINNOW_B2B_ROUND(6); WINNOW_B2B_ROUND(7);
            WINNOW_B2B_ROUND(8); WINNOW_B2B_ROUND(9); WINNOW_B2B_ROUND(10); WINNOW_B2B_ROUND(11);
            h0 ^= v[0] ^ v[8];
            h1 ^= v[1] ^ v[9];
            for (lane = 0; lane < WINNOW_B2B_LANES; lane++) {
                digests[2 * lane] = h0[lane];
                digests[2 * lane + 1] = h1[lane];
            }
        }
    }
    """
    int LANES "WINNOW_B2B_LANES"


cdef extern from *:
    """
    /* The 16 digest bytes of a state's first two words: their bytes in little-endian order, which is how a
       little-endian CPU holds them (one copy); byte by byte elsewhere. */
    static inline void winnow_b2b_store_digest(uint8_t* out, const uint64_t* words) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(out, words, 16);
    #else
        int b;
        for (b = 0; b < 16; b++) out[b] = (uint8_t)(words[b / 8] >> (8 * (b % 8)));
    #endif
    }
    """
    void winnow_b2b_store_digest(uint8_t* out, const uint64_t* words) noexcept nogil
    void winnow_b2b_compress_lanes(uint64_t* digests, const uint8_t* blocks, const uint64_t* counters) noexcept nogil


cdef void blake2b_128(const uint8_t* data, Py_ssize_t n, uint8_t* digest) noexcept nogil:
    """Write the 16-byte BLAKE2b digest of ``data[:n]`` to ``digest`` (messages under 2**64 bytes)."""
    cdef uint64_t h[8]
    cdef uint8_t block[128]
    cdef Py_ssize_t done = 0
    cdef int i
    for i in range(8):
        h[i] = winnow_b2b_iv[i]
    h[0] ^= 0x01010000 ^ 16  # parameter block: digest length 16, no key, fanout 1, depth 1
    while n - done > 128:
        winnow_b2b_compress(h, data + done, <uint64_t>(done + 128), 0)
        done += 128
    memset(block, 0, 128)
    memcpy(block, data + done, n - done)
    winnow_b2b_compress(h, block, <uint64_t>n, 1)
    for i in range(16):
        digest[i] = <uint8_t>(h[i // 8] >> (8 * (i % 8)))


cdef inline void _flush_lanes(uint8_t* blocks, uint64_t* counters, const Py_ssize_t* which, int filled,
                              uint8_t* digests) noexcept nogil:
    """Hash the ``filled`` messages in ``blocks`` (the other lanes hash an empty message, unread) and write
    message ``lane``'s digest to ``digests + 16 * which[lane]``."""
    cdef uint64_t words[16]
    cdef int lane
    for lane in range(filled, LANES):
        memset(blocks + 128 * lane, 0, 128)
        counters[lane] = 0
    winnow_b2b_compress_lanes(words, blocks, counters)
    for lane in range(filled):
        winnow_b2b_store_digest(digests + 16 * which[lane], words + 2 * lane)


cdef void blake2b_128_many(const uint8_t** data, const Py_ssize_t* sizes, Py_ssize_t n, uint8_t* digests) noexcept nogil:
    """Write the 16-byte digest of each message ``data[i][:sizes[i]]`` to ``digests + 16 * i``: what
    ``blake2b_128`` gives, one-block messages eight at a time."""
    cdef uint8_t blocks[8 * 128]
    cdef uint64_t counters[8]
    cdef Py_ssize_t which[8]
    cdef Py_ssize_t i
    cdef int filled = 0
    for i in range(n):
        if sizes[i] > 128:
            blake2b_128(data[i], sizes[i], digests + 16 * i)
            continue
        memcpy(blocks + 128 * filled, data[i], sizes[i])
        memset(blocks + 128 * filled + sizes[i], 0, 128 - sizes[i])
        counters[filled] = <uint64_t>sizes[i]
        which[filled] = i
        filled += 1
        if filled == LANES:
            _flush_lanes(blocks, counters, which, filled, digests)
            filled = 0
    if filled:
        _flush_lanes(blocks, counters, which, filled, digests)


def digests_128(list messages not None) -> list:
    """The 16-byte digest of each ``bytes`` in ``messages``, hashed as ``blake2b_128_many`` does (for tests
    and tools)."""
    cdef Py_ssize_t n = len(messages), i
    cdef const uint8_t** data = <const uint8_t**>PyMem_Malloc(max(n, 1) * sizeof(uint8_t*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>PyMem_Malloc(max(n, 1) * sizeof(Py_ssize_t))
    cdef bytearray out = bytearray(16 * n)
    cdef uint8_t* digests = out
    if data == NULL or sizes == NULL:
        PyMem_Free(data)
        PyMem_Free(sizes)
        raise MemoryError("no memory to hash messages")
    try:
        for i in range(n):
            message = messages[i]
            if type(message) is not bytes:
                raise TypeError(f"message {i} is {type(message).__name__}, not bytes.")
            data[i] = <const uint8_t*>PyBytes_AS_STRING(message)
            sizes[i] = PyBytes_GET_SIZE(message)
        blake2b_128_many(data, sizes, n, digests)
    finally:
        PyMem_Free(data)
        PyMem_Free(sizes)
    return [bytes(out[16 * i : 16 * i + 16]) for i in range(n)]


def digest_128(bytes data not None) -> bytes:
    """The 16-byte digest ``blake2b_128`` computes (for tests and tools)."""
    cdef uint8_t digest[16]
    blake2b_128(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), digest)
    return digest[:16]
