# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Which tumbling and hopping windows close, and which of their panes, in one pass each (see
``windows.pane_windows``).

A pane of ``gcd(size, step)`` ms starting at ``p`` belongs to the windows
starting every ``step`` ms from ``first_start(p)`` to ``last_start(p)``; a
window starting at ``s`` closes at ``s + size + grace``. Closing windows by
their panes took a dozen numpy passes over every pane (its key's lower bound,
the bounds of its run of closing windows, their counts, the pairs); these take
one. Times are epoch ms as int64; a bound that could wrap is clipped as the
numpy code did, and arithmetic wraps as numpy's (the extensions build with
``-fwrapv``).
"""

from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t

import numpy as np

cdef int64_t NO_TIME = INT64_MIN  # windows.stream_time's
cdef int64_t END_OF_TIME = INT64_MAX


cdef inline int64_t _floor_div(int64_t a, int64_t b) noexcept nogil:
    """``a // b`` rounded down, as Python's, for ``b > 0``."""
    cdef int64_t q = a / b
    if a % b < 0:
        q -= 1
    return q


cdef inline int64_t _first_start(int64_t pane, int64_t size, int64_t step) noexcept nogil:
    return (_floor_div(pane - size, step) + 1) * step


cdef inline int64_t _last_start(int64_t pane, int64_t step) noexcept nogil:
    return _floor_div(pane, step) * step


cdef inline int64_t _max(int64_t a, int64_t b) noexcept nogil:
    return a if a > b else b


cdef inline int64_t _min(int64_t a, int64_t b) noexcept nogil:
    return a if a < b else b


cdef inline int64_t _far_upto(const int64_t[::1] far_keys, const int64_t[::1] far_uptos, int64_t key) noexcept nogil:
    """The close point of ``key`` among the sorted ``far_keys`` (NO_TIME: not among them)."""
    cdef Py_ssize_t low = 0, high = far_keys.shape[0], middle
    while low < high:
        middle = (low + high) >> 1
        if far_keys[middle] < key:
            low = middle + 1
        else:
            high = middle
    if low < far_keys.shape[0] and far_keys[low] == key:
        return far_uptos[low]
    return NO_TIME


cdef inline void _check_steps(int64_t size, int64_t step, int64_t grace) except *:
    if step <= 0 or size < step or grace < 0:
        raise ValueError(f"windows of {size} ms every {step} ms with {grace} ms of grace cannot be closed by panes.")


def closing_pairs(
    const int64_t[::1] slots,
    const int64_t[::1] pane_of,
    const int64_t[::1] key_of,
    const int64_t[::1] uptos,
    int64_t closed_upto,
    const int64_t[::1] by_key,
    const int64_t[::1] far_keys,
    const int64_t[::1] far_uptos,
    int64_t size,
    int64_t step,
    int64_t grace,
):
    """``(pair_slots, pair_starts)``: for each of ``slots`` (whose pane starts and key ids are in the per-slot
    ``pane_of`` and ``key_of``), in order, the windows containing its pane that close after what its key has
    emitted and by its entry of ``uptos`` (one entry: the same for all), in start order. A tumbling window
    (``size == step``) is its pane: its start is the pane's.

    What a key has emitted is the largest of ``closed_upto``, its entry of ``by_key`` (by key id; ids beyond
    it have none) and its close point among ``far_keys`` (sorted ascending, distinct) in ``far_uptos``."""
    cdef Py_ssize_t n = slots.shape[0], slot_count = pane_of.shape[0], i, total = 0, at = 0
    cdef Py_ssize_t reach_keys = by_key.shape[0], far = far_keys.shape[0]
    cdef int64_t reach = size + grace, slot, key, lower, upto, low, high, count, j, pane
    cdef int64_t most = size / step + 1  # windows a pane can lie in
    cdef bint one_upto = uptos.shape[0] == 1, tumbling = size == step
    _check_steps(size, step, grace)
    if uptos.shape[0] != n and not one_upto:
        raise ValueError(f"closing_pairs takes one close point, or one for each of the {n} slots, not {uptos.shape[0]}.")
    if key_of.shape[0] != slot_count:
        raise ValueError(f"per-slot pane starts and key ids differ in length: {slot_count} and {key_of.shape[0]}.")
    if far_uptos.shape[0] != far:
        raise ValueError(f"{far} far keys need as many close points, not {far_uptos.shape[0]}.")
    for i in range(n):
        if slots[i] < 0 or slots[i] >= slot_count:
            raise IndexError(f"slot {slots[i]} is not among the {slot_count} slots.")
    counts_array = np.empty(n, dtype=np.int64)
    lows_array = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] counts = counts_array, lows = lows_array
    with nogil:
        for i in range(n):
            slot = slots[i]
            pane = pane_of[slot]
            key = key_of[slot]
            lower = closed_upto
            if 0 <= key < reach_keys:
                lower = _max(lower, by_key[key])
            if far:
                lower = _max(lower, _far_upto(far_keys, far_uptos, key))
            # clipped so that no step of the sums can wrap: a bound within a step of the extremes holds no pane
            lower = _min(_max(lower, NO_TIME + reach), END_OF_TIME - step)
            upto = _max(uptos[0] if one_upto else uptos[i], NO_TIME + reach + step)
            low = _max(_first_start(pane, size, step), (_floor_div(lower - reach, step) + 1) * step)
            high = _min(_last_start(pane, step), _floor_div(upto - reach, step) * step)
            count = (high - low) / step + 1 if high >= low else 0
            if tumbling and count:  # the pane's one window, whose start is the pane's
                count, low = 1, pane
            elif count < 0 or count > most:  # its window starts wrapped around the earliest time
                with gil:
                    raise ValueError(
                        f"the windows of pane {pane} ({size} ms every {step} ms) start before the earliest time."
                    )
            counts[i] = count
            lows[i] = low
            total += count
    pair_slots_array = np.empty(total, dtype=np.int64)
    pair_starts_array = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] pair_slots = pair_slots_array, pair_starts = pair_starts_array
    with nogil:
        for i in range(n):
            low = lows[i]
            for j in range(counts[i]):
                pair_slots[at] = slots[i]
                pair_starts[at] = low + j * step
                at += 1
    return pair_slots_array, pair_starts_array


def closing_panes(
    const uint8_t[::1] alive,
    const int64_t[::1] pane_of,
    Py_ssize_t high_water,
    int64_t upto,
    int64_t closed_upto,
    int64_t size,
    int64_t step,
    int64_t grace,
):
    """``(near, dead)`` among the live slots below ``high_water`` (``alive``), in slot order: those whose pane
    may have a window closing in ``(closed_upto, upto]`` (its first window closes by ``upto`` and its last
    after ``closed_upto``; ``closing_pairs`` picks the windows), and those whose pane's last window closes by
    ``upto`` (its pane is then released)."""
    cdef Py_ssize_t i, near_count = 0, dead_count = 0
    cdef int64_t pane, last
    _check_steps(size, step, grace)
    if not 0 <= high_water <= alive.shape[0] or pane_of.shape[0] < high_water:
        raise ValueError(f"{high_water} slots in use do not fit {alive.shape[0]} flags and {pane_of.shape[0]} panes.")
    near_array = np.empty(high_water, dtype=np.int64)
    dead_array = np.empty(high_water, dtype=np.int64)
    cdef int64_t[::1] near = near_array, dead = dead_array
    with nogil:
        for i in range(high_water):
            if not alive[i]:
                continue
            pane = pane_of[i]
            last = _last_start(pane, step) + size + grace
            if _first_start(pane, size, step) + size + grace <= upto and last > closed_upto:
                near[near_count] = i
                near_count += 1
            if last <= upto:
                dead[dead_count] = i
                dead_count += 1
    return near_array[:near_count].copy(), dead_array[:dead_count].copy()
