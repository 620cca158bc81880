# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""An emission order cut into runs of one chunk, in one pass.

``engine.emission_plan`` sorts a batch's results (rows of a few chunks, one
per window and kind, numbered across them) into emission order, then hands
them over as each chunk's rows in that order and the runs that interleave
the chunks. Finding those with numpy took a dozen passes over every row (the
chunk and position of each, a stable sort by chunk, the run boundaries) and a
Python step per run; this takes one.
"""

from libc.stdint cimport int64_t, uint8_t

import numpy as np


def emission_runs(const int64_t[::1] order, const int64_t[::1] bounds):
    """``(positions, runs)`` of ``order``, a permutation of the rows of chunks where chunk ``c`` holds rows
    ``[bounds[c], bounds[c + 1])`` (``bounds`` ascending, from 0): ``positions[bounds[c]:bounds[c + 1]]``
    are chunk ``c``'s rows, numbered within it, in the order ``order`` lists them, and ``runs`` lists
    ``(chunk, start, stop)`` for each run of consecutive rows of ``order`` in one chunk, ``start`` and
    ``stop`` counting that chunk's rows in emission order."""
    cdef Py_ssize_t n = order.shape[0], chunks = bounds.shape[0] - 1, i, c = -1, k, run_start = 0
    cdef int64_t row
    if chunks < 0 or bounds[0] != 0 or bounds[chunks] != n:
        raise ValueError(f"chunk bounds must run from 0 to the {n} rows ordered, not {np.asarray(bounds).tolist()}.")
    for k in range(chunks):
        if bounds[k + 1] < bounds[k]:
            raise ValueError(f"chunk bounds must not go down: {np.asarray(bounds).tolist()}.")
    positions_array = np.empty(n, dtype=np.int64)
    filled_array = np.array(bounds[:chunks], dtype=np.int64)  # where each chunk's next row goes
    seen_array = np.zeros(n, dtype=np.uint8)
    cdef int64_t[::1] positions = positions_array
    cdef int64_t[::1] filled = filled_array
    cdef uint8_t[::1] seen = seen_array
    runs = []
    for i in range(n):
        row = order[i]
        if c < 0 or row < bounds[c] or row >= bounds[c + 1]:  # another chunk: a new run
            if row < 0 or row >= n:
                raise IndexError(f"row {row} of the emission order is not among the {n} rows.")
            if c >= 0:
                runs.append((c, run_start - bounds[c], filled[c] - bounds[c]))
            c = 0
            while row >= bounds[c + 1]:
                c += 1
            run_start = filled[c]
        if seen[row]:
            raise ValueError(f"the emission order lists row {row} twice.")
        seen[row] = 1
        positions[filled[c]] = row - bounds[c]
        filled[c] += 1
    if c >= 0:
        runs.append((c, run_start - bounds[c], filled[c] - bounds[c]))
    return positions_array, runs
