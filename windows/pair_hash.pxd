# A hash of a pair of int64s (splitmix64's finalizer over their mix), shared by the C modules that put pairs
# in open-addressing tables (``cimport``ed by windows/pane_index.pyx and windows/sliding_points.pyx).
from libc.stdint cimport int64_t, uint64_t


cdef inline uint64_t mix(int64_t key, int64_t pane) noexcept nogil:
    cdef uint64_t z = <uint64_t>key * 0x9E3779B97F4A7C15ULL + <uint64_t>pane
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)
