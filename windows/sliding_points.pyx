# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Sliding-window points in C: sorted by ``(key id, time)``, searched, merged, and the windows they anchor.

A sliding window's state is one point per ``(key, record time)``; the windows
are derived from the points when they are emitted (see ``sliding_windows``).
Every close, per-key close and update looks up a few ranges of points per
key. As numpy calls over small arrays each lookup cost a few microseconds of
call overhead, and a close made dozens of them; here each is one loop.

The points are three parallel int64 arrays (keys, times, slots) sorted by
``(key, time)``; a key's points are contiguous and in time order. *Late points*
(events a window may not see, each with when it came) are the same columns plus
an arrival column: ``closing_late`` and ``late_held`` give windows as they were
when the late points were not all there yet.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint8_t, uint64_t

from windows.pair_hash cimport mix

import numpy as np


cdef inline Py_ssize_t _search(const int64_t[::1] values, Py_ssize_t lo, Py_ssize_t hi, int64_t t,
                               bint right) noexcept nogil:
    """The first position in ``[lo, hi)`` (sorted values) whose value is ``> t`` (``right``) or ``>= t``;
    ``hi`` when none is."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < t or (right and values[mid] == t):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _first_closing_after(const int64_t[::1] times, Py_ssize_t lo, Py_ssize_t hi,
                                            int64_t offset, int64_t low) noexcept nogil:
    """The first position in ``[lo, hi)`` whose time plus ``offset`` (a window's close point) is after
    ``low`` (compared without computing ``low - offset``, which overflows for the earliest time)."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if times[mid] + offset <= low:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef extern from *:
    """
    /* For each of m pairs (wanted_keys, wanted_times), the first of n >= 1 sorted (key, time) pairs not
       before it (right: after it), into out, by binary searches 16 at a time, step by step. Every search
       over the same n pairs takes the same steps, so the 16 advance together and their loads overlap
       instead of each waiting on the last; a step adds half or nothing to each base (arithmetic, not a
       branch the CPU would mispredict half the time). RIGHT is a constant in each copy of the loop. */
    #define WINNOW_SEARCH_PAIRS(RIGHT)                                                                   \
        for (i = 0; i < m; i += 16) {                                                                    \
            group = m - i < 16 ? m - i : 16;                                                             \
            for (j = 0; j < group; j++) {                                                                \
                base[j] = 0;                                                                             \
                want_key[j] = wanted_keys[i + j];                                                        \
                want_time[j] = wanted_times[i + j];                                                      \
            }                                                                                            \
            length = n;                                                                                  \
            while (length > 1) {                                                                         \
                half = length >> 1;                                                                      \
                for (j = 0; j < group; j++) {                                                            \
                    at = base[j] + half;                                                                 \
                    before = (keys[at] < want_key[j])                                                    \
                             | ((keys[at] == want_key[j])                                                \
                                & (RIGHT ? times[at] <= want_time[j] : times[at] < want_time[j]));       \
                    base[j] += half & -(Py_ssize_t)before;                                               \
                }                                                                                        \
                length -= half;                                                                          \
            }                                                                                            \
            for (j = 0; j < group; j++) {                                                                \
                at = base[j];                                                                            \
                before = (keys[at] < want_key[j])                                                        \
                         | ((keys[at] == want_key[j])                                                    \
                            & (RIGHT ? times[at] <= want_time[j] : times[at] < want_time[j]));           \
                out[i + j] = at + before;                                                                \
            }                                                                                            \
        }
    static void winnow_search_pairs(const int64_t* keys, const int64_t* times, Py_ssize_t n,
                                    const int64_t* wanted_keys, const int64_t* wanted_times, Py_ssize_t m,
                                    int right, int64_t* out) {
        Py_ssize_t base[16], i, j, group, length, half, at;
        int64_t want_key[16], want_time[16];
        int before;
        if (right) {
            WINNOW_SEARCH_PAIRS(1)
        } else {
            WINNOW_SEARCH_PAIRS(0)
        }
    }
    """
    void winnow_search_pairs(const int64_t* keys, const int64_t* times, Py_ssize_t n, const int64_t* wanted_keys,
                             const int64_t* wanted_times, Py_ssize_t m, int right, int64_t* out) noexcept nogil


cdef inline Py_ssize_t _search_pair(const int64_t[::1] keys, const int64_t[::1] times, int64_t key, int64_t t,
                                    bint right) noexcept nogil:
    """The first position among the sorted ``(keys, times)`` pairs after ``(key, t)`` (``right``) or not
    before it; the number of pairs when none is."""
    cdef Py_ssize_t lo = 0, hi = keys.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key or (keys[mid] == key and (times[mid] <= t if right else times[mid] < t)):
            lo = mid + 1
        else:
            hi = mid
    return lo


def _check_points(keys, times):
    if keys.shape[0] != times.shape[0]:
        raise ValueError(
            f"the points need one time per key: {keys.shape[0]} keys were given with {times.shape[0]} times."
        )


def locate(const int64_t[::1] point_keys, const int64_t[::1] point_times, const int64_t[::1] keys,
           const int64_t[::1] times, bint right=False):
    """Per ``(keys[i], times[i])``, where it falls among the sorted points: the first point not before it
    (``right``: not before or equal to it), as ``numpy.searchsorted`` over the pairs would say.

    The searches run 16 at a time, step for step (``winnow_search_pairs``): one search waits on each
    step's load from the points, 16 wait on theirs together."""
    _check_points(point_keys, point_times)
    _check_points(keys, times)
    cdef Py_ssize_t n = keys.shape[0]
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    if n == 0:
        return out
    if point_keys.shape[0] == 0:
        out[:] = 0
        return out
    with nogil:
        winnow_search_pairs(&point_keys[0], &point_times[0], point_keys.shape[0], &keys[0], &times[0], n, right, &o[0])
    return out


def merge(const int64_t[::1] keys, const int64_t[::1] times, const int64_t[::1] slots,
          const int64_t[::1] new_keys, const int64_t[::1] new_times, const int64_t[::1] new_slots):
    """The points and the new points (each sorted by ``(key, time)``, no pair in both) as one sorted set."""
    _check_points(keys, times)
    _check_points(keys, slots)
    _check_points(new_keys, new_times)
    _check_points(new_keys, new_slots)
    cdef Py_ssize_t n = keys.shape[0], m = new_keys.shape[0], i = 0, j = 0, at = 0
    out_keys = np.empty(n + m, dtype=np.int64)
    out_times = np.empty(n + m, dtype=np.int64)
    out_slots = np.empty(n + m, dtype=np.int64)
    cdef int64_t[::1] ok = out_keys, ot = out_times, os = out_slots
    cdef bint take_new
    with nogil:
        while i < n or j < m:
            if i == n:
                take_new = True
            elif j == m:
                take_new = False
            else:
                take_new = new_keys[j] < keys[i] or (new_keys[j] == keys[i] and new_times[j] < times[i])
            if take_new:
                ok[at], ot[at], os[at] = new_keys[j], new_times[j], new_slots[j]
                j += 1
            else:
                ok[at], ot[at], os[at] = keys[i], times[i], slots[i]
                i += 1
            at += 1
    return out_keys, out_times, out_slots


cdef inline void _add(int64_t[:, ::1] rows, Py_ssize_t* count, int64_t key, int64_t start, int64_t end,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Append a window (key, inclusive bounds, the half-open range of points it holds) to ``rows`` (one row
    per column); past their end, only count it (the caller then refuses the result)."""
    cdef Py_ssize_t at = count[0]
    count[0] = at + 1
    if at >= rows.shape[1]:
        return
    rows[0, at] = key
    rows[1, at] = start
    rows[2, at] = end
    rows[3, at] = lo
    rows[4, at] = hi


def _columns(rows, Py_ssize_t count, order=range(5)):
    """The first ``count`` entries of the rows of ``rows`` (one per column, in ``order``): views when they fill
    most of it, else copies, so that a close that made few windows does not keep room for many."""
    if 2 * count >= rows.shape[1]:
        return tuple(rows[c, :count] for c in order)
    return tuple(rows[c, :count].copy() for c in order)


cdef inline bint _expired(const int64_t[::1] exp_keys, const int64_t[::1] exp_times, int64_t key,
                          int64_t t) noexcept nogil:
    """Whether ``(key, t)`` is among the sorted expired pairs."""
    cdef Py_ssize_t at = _search_pair(exp_keys, exp_times, key, t, False)
    return at < exp_keys.shape[0] and exp_keys[at] == key and exp_times[at] == t


cdef inline bint _hides_late(const int64_t[::1] late_times, const int64_t[::1] late_arrivals, Py_ssize_t lo,
                            Py_ssize_t hi, int64_t start, int64_t end, int64_t close) noexcept nogil:
    """Whether a late point among ``[lo, hi)`` lies in ``[start, end]`` and came when or after a window
    closing at ``close`` had closed (the window must not hold it)."""
    cdef Py_ssize_t j = _search(late_times, lo, hi, start, False)
    while j < hi and late_times[j] <= end:
        if late_arrivals[j] >= close:
            return True
        j += 1
    return False


cdef void _key_windows(
    int64_t[:, ::1] rows, Py_ssize_t* count, const int64_t[::1] times, Py_ssize_t a, Py_ssize_t b,
    Py_ssize_t left_from, Py_ssize_t left_to, Py_ssize_t right_from, Py_ssize_t right_to,
    int64_t key, int64_t size, int64_t grace, const int64_t[::1] exp_keys, const int64_t[::1] exp_times,
    const int64_t[::1] late_times, const int64_t[::1] late_arrivals, Py_ssize_t la, Py_ssize_t lb,
) noexcept nogil:
    """The closing windows of one key (points ``[a, b)``): the left window ``[t - size, t]`` of each point
    ``t`` in ``[left_from, left_to)`` unless expired, and the right window ``[t + 1, t + 1 + size]`` of each
    point in ``[right_from, right_to)`` when a later point lies in ``(t, t + size]`` and none at
    ``t + 1 + size``; none that would hold a late point among ``[la, lb)`` that came after it closed."""
    cdef Py_ssize_t i, lo, within, hi
    cdef int64_t t
    cdef bint check_expired = exp_keys.shape[0] > 0, check_late = lb > la
    # A window's first point (left windows) and the points past its end (right windows) only move on as t
    # grows: found by one search for the first window, then by stepping on (the points' times are distinct).
    if left_from < left_to:
        lo = _search(times, a, left_from + 1, times[left_from] - size, False)
    for i in range(left_from, left_to):
        t = times[i]
        while times[lo] < t - size:  # stops at i at the latest
            lo += 1
        if check_expired and _expired(exp_keys, exp_times, key, t):
            continue
        if check_late and _hides_late(late_times, late_arrivals, la, lb, t - size, t, t + 1 + grace):
            continue
        _add(rows, count, key, t - size, t, lo, i + 1)
    if right_from < right_to:
        within = _search(times, right_from + 1, b, times[right_from] + size, True)
    for i in range(right_from, right_to):
        t = times[i]
        while within < b and times[within] <= t + size:  # past the points in (t, t + size]; at least i + 1
            within += 1
        hi = within + 1 if within < b and times[within] == t + 1 + size else within
        if within > i + 1 and hi == within:
            if check_late and _hides_late(late_times, late_arrivals, la, lb, t + 1, t + 1 + size, t + size + 2 + grace):
                continue
            _add(rows, count, key, t + 1, t + 1 + size, i + 1, hi)


def closing(const int64_t[::1] keys, const int64_t[::1] times, object select_keys, const int64_t[::1] uptos,
            int64_t closed_upto, const int64_t[::1] exp_keys, const int64_t[::1] exp_times, int64_t size,
            int64_t grace, const int64_t[::1] late_keys=None, const int64_t[::1] late_times=None,
            const int64_t[::1] late_arrivals=None):
    """The windows that close, as ``(keys, starts, ends, lo, hi)`` columns, ``[lo, hi)`` being the points each
    holds; per key in key order, its left windows then its right windows, each in time order.

    With ``select_keys`` (sorted, distinct) only those keys' windows closing by their ``uptos``; without, every
    key's windows closing by ``uptos[0]``. Windows closing by ``closed_upto`` were emitted before. Left windows
    of the ``(exp_keys, exp_times)`` points (sorted) are never emitted: they had closed before their point came.

    The points may hold *late* events, given as ``(late_keys, late_times, late_arrivals)`` sorted by key and
    time with the stream time each came at: a window that closed before one of them came (at or before its
    arrival) is not among these (``closing_late`` gives it, as it was then)."""
    if late_keys is None:
        late_keys = late_times = late_arrivals = np.zeros(0, dtype=np.int64)
    _check_points(keys, times)
    _check_points(exp_keys, exp_times)
    _check_points(late_keys, late_times)
    _check_points(late_keys, late_arrivals)
    cdef Py_ssize_t n = keys.shape[0], count = 0, i, a = 0, total = 0, made = 0, la = 0, lb = 0
    cdef Py_ssize_t m = late_keys.shape[0]
    cdef int64_t low
    cdef int64_t left = 1 + grace, right = size + 2 + grace  # a point's left and right window close this after it
    cdef bint every = select_keys is None
    if every:  # each key up to the same stream time
        if uptos.shape[0] != 1:
            raise ValueError(f"closing every key takes one stream time to close up to, not {uptos.shape[0]}.")
        for i in range(n):
            if i == 0 or keys[i] != keys[i - 1]:
                count += 1
        select_keys = np.empty(count, dtype=np.int64)
        uptos = np.full(count, uptos[0], dtype=np.int64)
    else:
        select_keys = np.array(select_keys, dtype=np.int64)  # a copy: written to below only in the other case
        count = select_keys.shape[0]
        if uptos.shape[0] != count:
            raise ValueError(f"closing {count} keys takes a stream time per key, not {uptos.shape[0]}.")
    cdef int64_t[::1] chosen = select_keys
    starts = np.empty(count, dtype=np.int64)
    stops = np.empty(count, dtype=np.int64)
    # per key, the points whose left (right) window closes in (low, upto]: the closes grow with the time
    spans = np.zeros((count, 4), dtype=np.int64)
    cdef int64_t[::1] first = starts, last = stops
    cdef int64_t[:, ::1] span = spans
    with nogil:
        for i in range(count):  # each key's run of points: every run in turn, or the chosen keys' runs
            if every:
                chosen[i] = keys[a]
            else:
                a = _search(keys, a, n, chosen[i], False)
            first[i], last[i] = a, _search(keys, a, n, chosen[i], True)
            low = closed_upto  # what the key emitted before
            if low < uptos[i]:
                span[i, 0] = _first_closing_after(times, a, last[i], left, low)
                span[i, 1] = _first_closing_after(times, span[i, 0], last[i], left, uptos[i])
                span[i, 2] = _first_closing_after(times, a, last[i], right, low)
                span[i, 3] = _first_closing_after(times, span[i, 2], last[i], right, uptos[i])
                # at most one window per such point: room for those only, not for two per point (a close
                # of every key would take megabytes each time)
                total += span[i, 1] - span[i, 0] + span[i, 3] - span[i, 2]
            a = last[i]
    out = np.empty((5, total), dtype=np.int64)  # a row per column: each column's entries are contiguous
    cdef int64_t[:, ::1] rows = out
    with nogil:
        for i in range(count):
            if m:
                la = _search(late_keys, lb, m, chosen[i], False)
                lb = _search(late_keys, la, m, chosen[i], True)
            _key_windows(rows, &made, times, first[i], last[i], span[i, 0], span[i, 1], span[i, 2], span[i, 3],
                         chosen[i], size, grace, exp_keys, exp_times, late_times, late_arrivals, la, lb)
    if made > total:
        raise RuntimeError(f"{made} windows close, more than the {total} their points were counted to allow.")
    return _columns(out, made)


def range_sums(const int64_t[::1] per_slot, const int64_t[::1] sorted_slots, const int64_t[::1] lo,
               const int64_t[::1] hi):
    """Per window ``i``, the sum of ``per_slot`` over the points ``sorted_slots[lo[i]:hi[i]]`` (int64,
    wrapping as numpy's sums do).

    Windows that hold few points in all are summed point by point; otherwise through prefix sums over
    the span of points they cover. A close of every key then costs one pass over its points, and a
    per-key close of a few keys only those keys' points. Every point in that span must name one of the
    slots (an operator's points always do), even one no window holds: the prefix sums read it."""
    cdef Py_ssize_t n = lo.shape[0], m = sorted_slots.shape[0], slots = per_slot.shape[0], i, j
    cdef Py_ssize_t first = m, last = 0, total = 0, bad = -1
    cdef uint64_t s
    cdef int64_t slot
    cdef uint64_t* prefix
    if hi.shape[0] != n:
        raise ValueError(f"each window needs both ends of its range of points: {n} starts, {hi.shape[0]} ends.")
    for i in range(n):
        if lo[i] < 0 or lo[i] > hi[i] or hi[i] > m:
            raise IndexError(f"window {i} holds points [{lo[i]}, {hi[i]}), outside the {m} points given.")
        if lo[i] < hi[i]:
            first, last = min(first, <Py_ssize_t>lo[i]), max(last, <Py_ssize_t>hi[i])
            total += hi[i] - lo[i]
    out = np.zeros(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    if total == 0:
        return out
    if total <= last - first:  # few points in all: sum each window's own
        with nogil:
            for i in range(n):
                s = 0
                for j in range(lo[i], hi[i]):
                    slot = sorted_slots[j]
                    if slot < 0 or slot >= slots:
                        bad = j
                        break
                    s += <uint64_t>per_slot[slot]
                if bad >= 0:
                    break
                o[i] = <int64_t>s
    else:
        prefix = <uint64_t*>PyMem_Malloc((last - first + 1) * sizeof(uint64_t))
        if prefix == NULL:
            raise MemoryError("there is no memory for the prefix sums of a window merge.")
        with nogil:
            prefix[0] = 0
            for j in range(first, last):
                slot = sorted_slots[j]
                if slot < 0 or slot >= slots:
                    bad = j
                    break
                prefix[j - first + 1] = prefix[j - first] + <uint64_t>per_slot[slot]
            if bad < 0:
                for i in range(n):
                    if lo[i] < hi[i]:
                        o[i] = <int64_t>(prefix[hi[i] - first] - prefix[lo[i] - first])
        PyMem_Free(prefix)
    if bad >= 0:
        raise IndexError(f"point {bad} is slot {sorted_slots[bad]}, outside the {slots} slots given.")
    return out


cdef inline bint _late_within(const int64_t[::1] late_times, const int64_t[::1] late_arrivals, Py_ssize_t lo,
                              Py_ssize_t hi, int64_t after, int64_t until, int64_t close) noexcept nogil:
    """Whether a late point among ``[lo, hi)`` lies in ``(after, until]`` and arrived before ``close``."""
    cdef Py_ssize_t j = _search(late_times, lo, hi, after, True)
    while j < hi and late_times[j] <= until:
        if late_arrivals[j] < close:
            return True
        j += 1
    return False


def closing_late(const int64_t[::1] keys, const int64_t[::1] times,
                 const int64_t[::1] late_keys, const int64_t[::1] late_times, const int64_t[::1] late_arrivals,
                 const int64_t[::1] select_keys, const int64_t[::1] uptos,
                 int64_t closed_upto, const int64_t[::1] exp_keys, const int64_t[::1] exp_times, int64_t size,
                 int64_t grace, bint hiding_only=False):
    """The windows of ``select_keys`` (sorted, distinct) that close by each one's ``uptos`` entry, as if each
    *late point* had been added only when it arrived; with ``hiding_only``, only those that closed before
    one of the late points they contain came (the others are as ``closing`` gives them once the late points
    are points).

    The points ``(keys, times)`` hold what every window still open holds. The late points
    ``(late_keys, late_times, late_arrivals)``, sorted by key and time, hold events that may
    have come after some window containing them had closed, each in a pane of its own, with the stream time it
    arrived at. A window closing at ``c`` sees a late point only when it arrived before ``c``: it neither
    holds it nor exists because of it otherwise (so a late point makes its own left window only when it
    came before that window closed). ``closed_upto`` and expired points are as in ``closing``.

    Returns ``(keys, starts, ends, lo, hi, late_lo, late_hi, closes)``: the windows, per key in key
    order, then by the time that makes them, each with the range ``[lo, hi)`` of points it holds (as
    ``closing`` gives them), the range ``[late_lo, late_hi)`` of late points within its bounds, and its
    close: it holds those of them that came before it (``late_pairs`` lists them)."""
    _check_points(keys, times)
    _check_points(late_keys, late_times)
    _check_points(late_keys, late_arrivals)
    _check_points(exp_keys, exp_times)
    cdef Py_ssize_t count = select_keys.shape[0], n = keys.shape[0], m = late_keys.shape[0]
    if uptos.shape[0] != count:
        raise ValueError(f"closing {count} keys takes a stream time per key, not {uptos.shape[0]}.")
    cdef Py_ssize_t i, p, q, a, b, la, lb, bound = 0, made = 0, at, beyond, lo, key_first
    cdef int64_t key, low, upto, t, c, start, end
    cdef bint check_expired = exp_keys.shape[0] > 0, made_here
    ranges = np.zeros((count, 4), dtype=np.int64)
    cdef int64_t[:, ::1] span = ranges
    with nogil:
        a = la = 0
        for i in range(count):
            key = select_keys[i]
            a = _search(keys, a, n, key, False)
            b = _search(keys, a, n, key, True)
            la = _search(late_keys, la, m, key, False)
            lb = _search(late_keys, la, m, key, True)
            span[i, 0], span[i, 1], span[i, 2], span[i, 3] = a, b, la, lb
            if closed_upto < uptos[i]:
                bound += 2 * (b - a + lb - la)  # a left and a right window per distinct time at most
            a, la = b, lb
    # window rows: key, start, end, close, then the ranges of points and late points it may hold
    rows = np.empty((8, bound), dtype=np.int64)  # a row per column: each column's entries are contiguous
    cdef int64_t[:, ::1] w = rows
    with nogil:
        for i in range(count):
            key, upto, low = select_keys[i], uptos[i], closed_upto  # windows closing by low were emitted
            if low >= upto:
                continue
            a, b, la, lb = span[i, 0], span[i, 1], span[i, 2], span[i, 3]
            p, q = a, la
            lo = a  # the first point of the left window of the time at hand: it only moves on as the time grows
            key_first = made
            while p < b or q < lb:  # every distinct time among points and late points, in order
                if q == lb or (p < b and times[p] <= late_times[q]):
                    t = times[p]
                else:
                    t = late_times[q]
                c = t + 1 + grace  # its left window [t - size, t] closes here
                made_here = False
                if p < b and times[p] == t:  # a point: unless its window had closed before it came
                    made_here = not (check_expired and _expired(exp_keys, exp_times, key, t))
                    p += 1
                while q < lb and late_times[q] == t:  # a late point that came before its window closed
                    if late_arrivals[q] < c:
                        made_here = True
                    q += 1
                if made_here and low < c <= upto:
                    while lo < p and times[lo] < t - size:
                        lo += 1
                    # p is the first point after t: the window's points are [lo, p)
                    w[0, made], w[1, made], w[2, made], w[3, made], w[4, made], w[5, made] = key, t - size, t, c, lo, p
                    made += 1
                c = t + size + 2 + grace  # its right window [t + 1, t + 1 + size] closes here
                if not (low < c <= upto):
                    continue
                at = p  # the first point after t
                beyond = _search(times, at, b, t + size, True)  # past the points in (t, t + size]
                if beyond < b and times[beyond] == t + 1 + size:
                    continue  # the left window of the point at its end
                if _late_within(late_times, late_arrivals, la, lb, t + size, t + 1 + size, c):
                    continue  # the left window of a late point at its end, which came before it closed
                if beyond > at or _late_within(late_times, late_arrivals, la, lb, t, t + size, c):
                    w[0, made], w[1, made], w[2, made], w[3, made] = key, t + 1, t + 1 + size, c
                    w[4, made], w[5, made] = at, beyond  # no point at t + 1 + size: [at, beyond) are its points
                    made += 1
            q = key_first
            p = q
            while p < made:  # this key's windows: their late ranges; with hiding_only, only those hiding one
                start, end, c = w[1, p], w[2, p], w[3, p]
                if hiding_only and not _hides_late(late_times, late_arrivals, la, lb, start, end, c):
                    p += 1
                    continue
                w[0, q], w[1, q], w[2, q], w[3, q], w[4, q], w[5, q] = key, start, end, c, w[4, p], w[5, p]
                w[6, q] = _search(late_times, la, lb, start, False)
                w[7, q] = _search(late_times, w[6, q], lb, end, True)
                p += 1
                q += 1
            made = q
    if made > bound:
        raise RuntimeError(f"{made} windows close, more than the {bound} their points were counted to allow.")
    return _columns(rows, made, (0, 1, 2, 4, 5, 6, 7, 3))


def running_max(const int64_t[::1] keys, const int64_t[::1] values, const int64_t[::1] initial):
    """Per position of ``keys`` (grouped: each key's positions together, in order), the largest of its
    key's ``initial`` entry (taken at the key's first position) and the ``values`` at the key's earlier
    positions."""
    _check_points(keys, values)
    _check_points(keys, initial)
    cdef Py_ssize_t n = keys.shape[0], i
    cdef int64_t high = 0
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            if i == 0 or keys[i] != keys[i - 1]:
                high = initial[i]
            o[i] = high
            if values[i] > high:
                high = values[i]
    return out


def tick_groups(const int64_t[::1] ticks, const int64_t[::1] keys, const int64_t[::1] newest, const uint8_t[::1] kept):
    """The changes of a batch's update ticks grouped by ``(tick, key)``: ``ticks`` (not going down), ``keys``,
    each change's key's ``newest`` time once it was made, and whether a close up to its tick keeps it
    (``kept``). Returns the ticks, keys and newest times (that of the group's last change) of the groups
    with a change kept, in the order their first changes come."""
    cdef Py_ssize_t n = ticks.shape[0], i, at, groups = 0, size = 16, chosen = 0
    cdef uint64_t mask
    cdef int64_t g
    if keys.shape[0] != n or newest.shape[0] != n or kept.shape[0] != n:
        raise ValueError(
            f"tick groups take one key, newest time and kept flag per change: {n} ticks, {keys.shape[0]} keys, "
            f"{newest.shape[0]} times, {kept.shape[0]} flags."
        )
    for i in range(1, n):
        if ticks[i] < ticks[i - 1]:
            raise ValueError(f"the changes' ticks go down at change {i}: {ticks[i - 1]}, then {ticks[i]}.")
    while size < 2 * n:
        size *= 2
    mask = <uint64_t>(size - 1)
    table_array = np.full(size, -1, dtype=np.int64)  # the group of each entry, or -1
    out_ticks = np.empty(n, dtype=np.int64)
    out_keys = np.empty(n, dtype=np.int64)
    out_newest = np.empty(n, dtype=np.int64)
    any_kept = np.zeros(n, dtype=np.uint8)
    cdef int64_t[::1] table = table_array
    cdef int64_t[::1] t = out_ticks, k = out_keys, w = out_newest
    cdef uint8_t[::1] any_ = any_kept
    with nogil:
        for i in range(n):
            at = <Py_ssize_t>(mix(keys[i], ticks[i]) & mask)
            while True:
                g = table[at]
                if g < 0:
                    g = groups
                    groups += 1
                    table[at] = g
                    t[g], k[g] = ticks[i], keys[i]
                    break
                if k[g] == keys[i] and t[g] == ticks[i]:
                    break
                at = (at + 1) & <Py_ssize_t>mask
            w[g] = newest[i]
            any_[g] |= kept[i]
        for g in range(groups):  # keep the groups with a change kept, in their order
            if any_[g]:
                t[chosen], k[chosen], w[chosen] = t[g], k[g], w[g]
                chosen += 1
    return out_ticks[:chosen], out_keys[:chosen], out_newest[:chosen]


def late_held(const int64_t[::1] late_keys, const int64_t[::1] late_times, const int64_t[::1] keys,
              const int64_t[::1] starts, const int64_t[::1] ends):
    """The late points (sorted by key and time) of each window ``i``'s key within ``[starts[i], ends[i]]``,
    as the range ``[lo, hi)`` of them; a window holds those of them that arrived before its bound
    (``late_pairs`` lists them)."""
    _check_points(late_keys, late_times)
    _check_points(keys, starts)
    _check_points(keys, ends)
    cdef Py_ssize_t n = keys.shape[0], i
    lo_array = np.empty(n, dtype=np.int64)
    hi_array = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] lo = lo_array, hi = hi_array
    with nogil:
        for i in range(n):
            lo[i] = _search_pair(late_keys, late_times, keys[i], starts[i], False)
            hi[i] = _search_pair(late_keys, late_times, keys[i], ends[i], True)
    return lo_array, hi_array


cdef int _check_late_ranges(const int64_t[::1] lo, const int64_t[::1] hi, const int64_t[::1] bounds,
                            Py_ssize_t late) except -1:
    cdef Py_ssize_t n = lo.shape[0], i
    if hi.shape[0] != n or bounds.shape[0] != n:
        raise ValueError(f"each window needs a range of late points and a bound: {n}, {hi.shape[0]}, {bounds.shape[0]}.")
    for i in range(n):
        if lo[i] < 0 or lo[i] > hi[i] or hi[i] > late:
            raise IndexError(f"window {i} holds late points [{lo[i]}, {hi[i]}), outside the {late} given.")
    return 0


def late_pairs(const int64_t[::1] lo, const int64_t[::1] hi, const int64_t[::1] bounds,
               const int64_t[::1] late_times, const int64_t[::1] late_arrivals, const int64_t[::1] late_slots):
    """The late points each window ``i`` holds, those in ``[lo[i], hi[i])`` that arrived before
    ``bounds[i]``, as ``(group, slot, pane end)`` pairs in window order, then time order."""
    _check_points(late_times, late_arrivals)
    _check_points(late_times, late_slots)
    _check_late_ranges(lo, hi, bounds, late_times.shape[0])
    cdef Py_ssize_t n = lo.shape[0], i, j, total = 0, at = 0
    with nogil:
        for i in range(n):
            for j in range(lo[i], hi[i]):
                if late_arrivals[j] < bounds[i]:
                    total += 1
    groups = np.empty(total, dtype=np.int64)
    slots = np.empty(total, dtype=np.int64)
    pane_ends = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] g = groups, s = slots, e = pane_ends
    with nogil:
        for i in range(n):
            for j in range(lo[i], hi[i]):
                if late_arrivals[j] < bounds[i]:
                    g[at], s[at], e[at] = i, late_slots[j], late_times[j] + 1
                    at += 1
    return groups, slots, pane_ends


def add_late_sums(int64_t[::1] sums, const int64_t[::1] per_slot, const int64_t[::1] lo, const int64_t[::1] hi,
                  const int64_t[::1] bounds, const int64_t[::1] late_arrivals, const int64_t[::1] late_slots) -> None:
    """Add to each window's entry of ``sums`` the ``per_slot`` values of the late points it holds (those of
    ``late_pairs``; int64, wrapping as numpy's sums do)."""
    _check_points(late_arrivals, late_slots)
    _check_late_ranges(lo, hi, bounds, late_slots.shape[0])
    cdef Py_ssize_t n = lo.shape[0], slots = per_slot.shape[0], i, j
    cdef uint64_t s
    if sums.shape[0] != n:
        raise ValueError(f"{n} windows take {n} sums, not {sums.shape[0]}.")
    for j in range(late_slots.shape[0]):
        if late_slots[j] < 0 or late_slots[j] >= slots:
            raise IndexError(f"late point {j} names slot {late_slots[j]}, outside the {slots} slots.")
    with nogil:
        for i in range(n):
            s = <uint64_t>sums[i]
            for j in range(lo[i], hi[i]):
                if late_arrivals[j] < bounds[i]:
                    s += <uint64_t>per_slot[late_slots[j]]
            sums[i] = <int64_t>s
