# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The newest trace entries of panes and windows, kept in C.

A trace row holds up to ``links`` entries ``(ts, seq, origin, trace high,
trace low)`` (the layout is in trace_links.pxd), newest first: latest event time first, ties going to the later
arrival (higher ``seq``); an empty entry has ``seq`` NO_SEQ. These loops keep
the newest entries as events arrive and as panes merge into windows, with
k-entry insertion instead of sorting every entry (``links`` is small).
Entries equal in ``(ts, seq)`` keep the order they were met in.
"""

from libc.stdint cimport int64_t

from windows.prefetch cimport __builtin_prefetch, prefetch_span

import numpy as np



cdef inline void insert(int64_t* row, Py_ssize_t links, const int64_t* entry) noexcept nogil:
    """Put ``entry`` into ``row`` (newest first) if it is among the ``links`` newest; drop the oldest."""
    cdef Py_ssize_t at = 0, j, f
    while at < links and row[LINK_FIELDS * at + LINK_SEQ] != NO_SEQ:
        if entry[LINK_TS] > row[LINK_FIELDS * at + LINK_TS] or (
            entry[LINK_TS] == row[LINK_FIELDS * at + LINK_TS]
            and entry[LINK_SEQ] > row[LINK_FIELDS * at + LINK_SEQ]
        ):
            break
        at += 1
    if at == links:
        return
    j = links - 1
    while j > at:
        for f in range(LINK_FIELDS):
            row[LINK_FIELDS * j + f] = row[LINK_FIELDS * (j - 1) + f]
        j -= 1
    for f in range(LINK_FIELDS):
        row[LINK_FIELDS * at + f] = entry[f]


cdef inline void fold(int64_t* kept, const int64_t* row, Py_ssize_t links) noexcept nogil:
    """Put each present entry of ``row`` into ``kept`` (``insert``): ``kept`` keeps the newest of both."""
    cdef Py_ssize_t e
    for e in range(links):
        if row[LINK_FIELDS * e + LINK_SEQ] != NO_SEQ:
            insert(kept, links, row + LINK_FIELDS * e)


cdef inline void prefetch_row(const int64_t* row, Py_ssize_t links) noexcept nogil:
    """Have the CPU start loading a row of ``links`` entries."""
    prefetch_span(row, links * LINK_FIELDS * sizeof(int64_t))


def add_events(
    int64_t[:, :, ::1] rows,
    const int64_t[:] slots,
    const int64_t[:] ts,
    const int64_t[:] seq,
    const int64_t[:] origin,
    const int64_t[:] high,
    const int64_t[:] low,
) -> None:
    """Fold each event (its slot in ``slots``) into its slot's row of newest entries."""
    cdef Py_ssize_t n = slots.shape[0], links = rows.shape[1], i
    cdef int64_t entry[LINK_FIELDS]
    if rows.shape[2] != LINK_FIELDS:
        raise ValueError(f"trace rows have {rows.shape[2]} fields, not {LINK_FIELDS}")
    for i in range(n):
        if slots[i] < 0 or slots[i] >= rows.shape[0]:
            raise IndexError(f"slot {slots[i]} is outside the {rows.shape[0]} trace rows")
        if i + 8 < n and 0 <= slots[i + 8] < rows.shape[0]:  # the rows are all over the table: load ahead
            prefetch_row(&rows[slots[i + 8], 0, 0], links)
        entry[0] = ts[i]
        entry[1] = seq[i]
        entry[2] = origin[i]
        entry[3] = high[i]
        entry[4] = low[i]
        insert(&rows[slots[i], 0, 0], links, entry)


def merge_pairs(const int64_t[:, :, ::1] rows, const int64_t[:] groups, const int64_t[:] slots, Py_ssize_t n_groups):
    """Per group, the newest entries over the rows of its slots (``groups[i]`` owns ``slots[i]``)."""
    out_array = np.full((n_groups, rows.shape[1], LINK_FIELDS), NO_SEQ, dtype=np.int64)
    merge_into(out_array, rows, groups, slots)
    return out_array


def merge_ranges(
    const int64_t[:, :, ::1] rows, const int64_t[:] sorted_slots, const int64_t[:] lo, const int64_t[:] hi
):
    """Per group, the first ``links`` present entries of its panes ``sorted_slots[lo:hi]`` taken newest pane
    first (panes in time order hold disjoint, ordered times, so these are its newest entries; with no
    empty pane they come from the last ``links`` panes)."""
    cdef Py_ssize_t n_groups = lo.shape[0], links = rows.shape[1], g, p, e, f, taken
    out_array = np.empty((n_groups, links, LINK_FIELDS), dtype=np.int64)  # each row written once, below
    cdef int64_t[:, :, ::1] out = out_array
    cdef const int64_t* row
    for g in range(n_groups):
        if lo[g] < 0 or hi[g] > sorted_slots.shape[0]:
            raise IndexError(f"pane range [{lo[g]}, {hi[g]}) is outside the {sorted_slots.shape[0]} panes")
        if g + 4 < n_groups:  # the newest panes of the group 4 ahead (each pane mostly holds one event)
            p = hi[g + 4] - 1
            while p >= lo[g + 4] and p >= hi[g + 4] - links and 0 <= p < sorted_slots.shape[0]:
                if 0 <= sorted_slots[p] < rows.shape[0]:
                    __builtin_prefetch(&rows[sorted_slots[p], 0, 0])
                p -= 1
        taken = 0
        p = hi[g] - 1
        while p >= lo[g] and taken < links:
            if sorted_slots[p] < 0 or sorted_slots[p] >= rows.shape[0]:
                raise IndexError(f"slot {sorted_slots[p]} is outside the {rows.shape[0]} trace rows")
            row = &rows[sorted_slots[p], 0, 0]
            for e in range(links):
                if taken == links:
                    break
                if row[LINK_FIELDS * e + LINK_SEQ] != NO_SEQ:
                    for f in range(LINK_FIELDS):
                        out[g, taken, f] = row[LINK_FIELDS * e + f]
                    taken += 1
            p -= 1
        while taken < links:  # the entries no pane filled: empty
            for f in range(LINK_FIELDS):
                out[g, taken, f] = NO_SEQ
            taken += 1
    return out_array


def merge_into(int64_t[:, :, ::1] out, const int64_t[:, :, ::1] rows, const int64_t[:] groups,
               const int64_t[:] slots) -> None:
    """Fold the entries of each pair's slot row into its group's row of ``out`` (rows of newest entries,
    one per group, as the merges return them), keeping each group's newest."""
    cdef Py_ssize_t links = rows.shape[1], i
    if out.shape[1] != links or out.shape[2] != rows.shape[2]:
        raise ValueError(f"merged rows of shape {tuple(out.shape)[1:]} cannot take entries of {tuple(rows.shape)[1:]}")
    if groups.shape[0] != slots.shape[0]:
        raise ValueError(f"each pair needs a group and a slot: {groups.shape[0]} groups, {slots.shape[0]} slots")
    for i in range(slots.shape[0]):
        if groups[i] < 0 or groups[i] >= out.shape[0] or slots[i] < 0 or slots[i] >= rows.shape[0]:
            raise IndexError(f"pair ({groups[i]}, {slots[i]}) is outside {out.shape[0]} groups or the trace rows")
        fold(&out[groups[i], 0, 0], &rows[slots[i], 0, 0], links)


def clear(int64_t[:, :, ::1] rows, const int64_t[:] slots) -> None:
    """Empty the rows of ``slots`` (every field of every entry NO_SEQ, as a new row is)."""
    cdef Py_ssize_t n = slots.shape[0], width = rows.shape[1] * rows.shape[2], i, f
    cdef int64_t* row
    for i in range(n):
        if slots[i] < 0 or slots[i] >= rows.shape[0]:
            raise IndexError(f"slot {slots[i]} is outside the {rows.shape[0]} trace rows")
        if i + 8 < n and 0 <= slots[i + 8] < rows.shape[0]:  # new slots are all over the table: load ahead
            prefetch_row(&rows[slots[i + 8], 0, 0], rows.shape[1])
        row = &rows[slots[i], 0, 0]
        for f in range(width):
            row[f] = NO_SEQ


def merge_held_late(int64_t[:, :, ::1] out, const int64_t[:, :, ::1] rows, const int64_t[:] lo, const int64_t[:] hi,
                    const int64_t[:] bounds, const int64_t[:] late_times, const int64_t[:] late_arrivals,
                    const int64_t[:] late_slots, number=None) -> None:
    """Fold into each window's row of newest entries (``merge_ranges`` made them) the late points it holds,
    given as ranges (``sliding_points.late_pairs`` lists them): window ``i`` holds the late points ``j`` in
    ``[lo[i], hi[i])`` (in time order) that arrived before ``bounds[i]``, each a pane of one event at
    ``late_times[j]``; its row is ``number[i]`` of ``out`` (-1: skipped; without ``number``, row ``i``).

    The late points are read newest first, and once the row is full, the first one older than every entry
    kept ends the window: it and every earlier one hold only older entries. A busy key's late windows each
    hold dozens of late points, of which a few are among the newest. (Reading them newest first keeps the
    same entries as reading them in time order because no two events share a ``(ts, seq)``: ``seq`` is a
    line number or a Kafka offset, unique within a partition.)"""
    cdef Py_ssize_t n = lo.shape[0], links = rows.shape[1], late = late_slots.shape[0], i, j
    cdef int64_t target
    cdef const int64_t[:] numbers
    cdef bint renumbered = number is not None
    cdef int64_t* kept
    if out.shape[1] != links or out.shape[2] != rows.shape[2] or rows.shape[2] != LINK_FIELDS:
        raise ValueError(f"merged rows of shape {tuple(out.shape)[1:]} cannot take entries of {tuple(rows.shape)[1:]}")
    if hi.shape[0] != n or bounds.shape[0] != n or late_times.shape[0] != late or late_arrivals.shape[0] != late:
        raise ValueError("each window needs a range and a bound, and each late point a time, an arrival and a slot")
    if renumbered:
        numbers = number
        if numbers.shape[0] != n:
            raise ValueError(f"{n} windows take {n} row numbers, not {numbers.shape[0]}")
    for i in range(n):
        target = numbers[i] if renumbered else i
        if target < 0:
            continue
        if target >= out.shape[0] or lo[i] < 0 or lo[i] > hi[i] or hi[i] > late:
            raise IndexError(f"window {i} (row {target}, late points [{lo[i]}, {hi[i]})) is outside the rows or points")
        kept = &out[target, 0, 0]
        j = hi[i] - 1
        while j >= lo[i]:
            if j + 1 < hi[i] and late_times[j] > late_times[j + 1]:
                raise ValueError(f"the late points of window {i} are not in time order (point {j}).")
            if late_arrivals[j] < bounds[i]:
                if kept[LINK_FIELDS * (links - 1) + LINK_SEQ] != NO_SEQ and late_times[j] < kept[LINK_FIELDS * (links - 1) + LINK_TS]:
                    break  # full, and this point (with every earlier one) is older than its oldest entry
                if late_slots[j] < 0 or late_slots[j] >= rows.shape[0]:
                    raise IndexError(f"slot {late_slots[j]} is outside the {rows.shape[0]} trace rows")
                fold(kept, &rows[late_slots[j], 0, 0], links)
            j -= 1
