"""Columnar aggregation state: one column set per piece of state, one row (slot) per pane.

Each ``StateColumn`` implements the aggregator interface over many panes at
once: ``reset`` gives fresh slots their initial state, ``add`` folds a batch of
events into their panes, ``merge`` combines panes into windows, and
``snapshot``/``restore`` move a slot's state to and from plain data for the
state store. The output functions in ``windows.outputs`` turn merged state into
result values. Every running quantity is kept exactly (integers, exact
fixed-point sums, bucket counts, hash sets) so results never depend on how the
input was batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from windows import fixed_point, sketch, sketch_counts, sliding_points, trace_links
from windows.events import EventBatch, Float64Array, Int64Array
from windows.sort_order import lex_order

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


#: A sliding window's late points, as ranges: ``(lo, hi, bounds, times, arrivals, slots)`` (see ``MergePlan``).
LateRanges = tuple[Int64Array, Int64Array, Int64Array, Int64Array, Int64Array, Int64Array]


@dataclass(frozen=True)
class AddContext:
    """A batch of events to fold in, with the slot and pane end of each event."""

    batch: EventBatch
    slots: Int64Array
    pane_ends: Int64Array
    unique_slots: Int64Array
    inverse: Int64Array


class MergePlan:
    """Which panes make up which windows.

    Either explicit ``(group, slot)`` pairs, each group's pairs contiguous and in
    pane-time order, or *ranges*: a sliding window's points (panes 1 ms long),
    their slots and times sorted by time, and, per group, the half-open range
    ``[lo, hi)`` of them it holds. Ranges let additive state
    merge in one C loop (``sliding_points.range_sums``: prefix sums over the
    points the windows cover, or each window's own points when they are few);
    pairs are derived from them only for state that needs them.

    Ranges may come with *late* ranges ``(lo, hi, bounds, times, arrivals,
    slots)``: panes a group holds beyond its range, a sliding window's late
    points (each a pane of one event at its time). Group ``i`` holds the late
    points ``j`` in ``[lo[i], hi[i])`` (in time order) that arrived before
    ``bounds[i]``. Additive state and traces merge them from the ranges in C;
    they are listed as ``(group, slot, pane end)`` pairs (``extra``) only for
    state that needs pairs.
    """

    def __init__(
        self,
        n_groups: int,
        window_ends: Int64Array,
        *,
        groups: Int64Array | None = None,
        slots: Int64Array | None = None,
        pane_ends: Int64Array | None = None,
        ranges: tuple[Int64Array, Int64Array, Int64Array, Int64Array] | None = None,
        late: LateRanges | None = None,
    ) -> None:
        self.n_groups = n_groups
        self.window_ends = window_ends  # exclusive end of each group's window
        self.ranges = ranges  # (sorted slots, their times, lo, hi)
        self.late = late
        if ranges is None:
            assert groups is not None and slots is not None and pane_ends is not None
            self.__dict__.update(groups=groups, slots=slots, pane_ends=pane_ends)

    @cached_property
    def extra(self) -> tuple[Int64Array, Int64Array, Int64Array] | None:
        """The late ranges' late points as ``(group, slot, pane end)`` pairs, in group order, each group's in
        time order (None: none)."""
        if self.late is None:
            return None
        lo, hi, bounds, times, arrivals, slots = self.late
        pairs = sliding_points.late_pairs(lo, hi, bounds, times, arrivals, slots)
        return pairs if pairs[0].shape[0] else None

    @cached_property
    def _expanded(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        assert self.ranges is not None
        sorted_slots, sorted_times, lo, hi = self.ranges
        counts = hi - lo
        index = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        groups = np.repeat(np.arange(self.n_groups, dtype=np.int64), counts)
        slots, pane_ends = sorted_slots[index], sorted_times[index] + 1  # a point's pane ends 1 ms after it
        if self.extra is None:
            return groups, slots, pane_ends
        extra_groups, extra_slots, extra_ends = self.extra
        groups = np.concatenate([groups, extra_groups])
        pane_ends = np.concatenate([pane_ends, extra_ends])
        extra = np.repeat([False, True], [slots.shape[0], extra_slots.shape[0]])
        order = lex_order((extra, pane_ends, groups))  # by group, in time order, a range's pane first
        return groups[order], np.concatenate([slots, extra_slots])[order], pane_ends[order]

    @cached_property
    def groups(self) -> Int64Array:
        return self._expanded[0]

    @cached_property
    def slots(self) -> Int64Array:
        return self._expanded[1]

    @cached_property
    def pane_ends(self) -> Int64Array:
        return self._expanded[2]

    @cached_property
    def runs(self) -> tuple[Int64Array, Int64Array]:
        """Start index of each group's run of pairs, and the group of each run."""
        starts = np.flatnonzero(np.diff(self.groups, prepend=-1)).astype(np.int64)
        return starts, self.groups[starts]

    def reduce(self, ufunc: np.ufunc, values: np.ndarray, empty: Any) -> np.ndarray:
        """Reduce per-pair ``values`` into one value per group with ``ufunc`` (sum, min, max)."""
        out = np.full(self.n_groups, empty, dtype=values.dtype)
        if values.shape[0]:
            starts, groups = self.runs
            out[groups] = ufunc.reduceat(values, starts)
        return out

    def total(self, per_slot: Int64Array) -> Int64Array:
        """Exact per-group sums of an int64 per-slot column."""
        if self.ranges is None:
            return self.reduce(np.add, per_slot[self.slots], 0)
        sorted_slots, _, lo, hi = self.ranges
        sums = sliding_points.range_sums(per_slot, sorted_slots, lo, hi)  # in C: prefix sums or direct
        if self.late is not None:
            late_lo, late_hi, bounds, _, arrivals, late_slots = self.late
            sliding_points.add_late_sums(sums, per_slot, late_lo, late_hi, bounds, arrivals, late_slots)
        return sums


class StateColumn(Protocol):
    """The aggregator interface, over slots of a pane table."""

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` slots, keeping existing rows."""

    def reset(self, slots: Int64Array) -> None:
        """Give ``slots`` the initial (empty) state."""

    def add(self, ctx: AddContext) -> None:
        """Fold the events of ``ctx`` into their panes."""

    def merge(self, plan: MergePlan) -> Any:
        """Combine panes into windows as ``plan`` says; the shape is the column's own."""

    def snapshot(self, slots: Int64Array) -> list[Any]:
        """The state of each slot as plain JSON-compatible data."""

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        """Set slots from data produced by ``snapshot``."""


def _grown(array: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    if array.shape[0] >= capacity:
        return array
    out = np.empty(capacity, dtype=array.dtype)  # each byte written once: the rows kept, then the new ones
    out[: array.shape[0]] = array
    out[array.shape[0] :] = fill
    return out


class CountColumn:
    """Number of events per pane."""

    def __init__(self) -> None:
        self.n = np.zeros(0, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        self.n = _grown(self.n, capacity, 0)

    def reset(self, slots: Int64Array) -> None:
        self.n[slots] = 0

    def add(self, ctx: AddContext) -> None:
        self.n[ctx.unique_slots] += np.bincount(ctx.inverse, minlength=ctx.unique_slots.shape[0])

    def merge(self, plan: MergePlan) -> Int64Array:
        return plan.total(self.n)

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return self.n[slots].tolist()  # type: ignore[no-any-return]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        self.n[slots] = np.asarray(states, dtype=np.int64)


class FixedSumColumn:
    """An exact sum per pane (see ``windows.fixed_point``)."""

    def __init__(self) -> None:
        self.whole = np.zeros(0, dtype=np.int64)
        self.fraction = np.zeros(0, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        self.whole = _grown(self.whole, capacity, 0)
        self.fraction = _grown(self.fraction, capacity, 0)

    def reset(self, slots: Int64Array) -> None:
        self.whole[slots] = 0
        self.fraction[slots] = 0

    def add_values(self, slots: Int64Array, values: Float64Array) -> None:
        whole, fraction = fixed_point.split(values)
        np.add.at(self.whole, slots, whole)
        np.add.at(self.fraction, slots, fraction)

    def merged(self, plan: MergePlan) -> tuple[Int64Array, Int64Array]:
        return plan.total(self.whole), plan.total(self.fraction)

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return [[w, f] for w, f in zip(self.whole[slots].tolist(), self.fraction[slots].tolist())]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        pairs = np.asarray(states, dtype=np.int64).reshape(-1, 2)
        self.whole[slots] = pairs[:, 0]
        self.fraction[slots] = pairs[:, 1]


@dataclass(frozen=True)
class MergedSum:
    """Merged sum state: the exact sum and how many values it holds."""

    total: Float64Array
    count: Int64Array


class SumColumn:
    """Sum and number of present values of a numeric field (serves sum and mean)."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.sum = FixedSumColumn()
        self.present = CountColumn()

    def grow(self, capacity: int) -> None:
        self.sum.grow(capacity)
        self.present.grow(capacity)

    def reset(self, slots: Int64Array) -> None:
        self.sum.reset(slots)
        self.present.reset(slots)

    def add(self, ctx: AddContext) -> None:
        values = ctx.batch.numbers[self.field]
        ok = ~np.isnan(values)
        slots = ctx.slots[ok]
        self.sum.add_values(slots, values[ok])
        np.add.at(self.present.n, slots, 1)

    def merge(self, plan: MergePlan) -> MergedSum:
        whole, fraction = self.sum.merged(plan)
        return MergedSum(fixed_point.to_float(whole, fraction), self.present.merge(plan))

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return [[*s, n] for s, n in zip(self.sum.snapshot(slots), self.present.snapshot(slots))]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        self.sum.restore(slots, [s[:2] for s in states])
        self.present.restore(slots, [s[2] for s in states])


class ExtremeColumn:
    """Minimum or maximum of a numeric field; NaN where a pane has no value."""

    def __init__(self, field: str, *, maximum: bool) -> None:
        self.field = field
        self.maximum = maximum
        self.empty = -math.inf if maximum else math.inf
        self.ufunc = np.fmax if maximum else np.fmin
        self.v = np.zeros(0, dtype=np.float64)

    def grow(self, capacity: int) -> None:
        self.v = _grown(self.v, capacity, self.empty)

    def reset(self, slots: Int64Array) -> None:
        self.v[slots] = self.empty

    def add(self, ctx: AddContext) -> None:
        values = ctx.batch.numbers[self.field]
        ok = ~np.isnan(values)
        self.ufunc.at(self.v, ctx.slots[ok], values[ok])

    def merge(self, plan: MergePlan) -> Float64Array:
        out = plan.reduce(self.ufunc, self.v[plan.slots], self.empty)
        out[out == self.empty] = np.nan
        return out

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return [None if math.isinf(v) else v for v in self.v[slots].tolist()]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        self.v[slots] = [self.empty if s is None else s for s in states]


class ArrivalColumn:
    """The value of the earliest (``first``) or latest (``last``) event by timestamp.

    Ties on timestamp go to the earlier (first) or later (last) arrival.
    """

    def __init__(self, field: str, *, latest: bool) -> None:
        self.field = field
        self.latest = latest
        self.none_ts = _INT64_MIN if latest else _INT64_MAX
        self.ts = np.zeros(0, dtype=np.int64)
        self.seq = np.zeros(0, dtype=np.int64)
        self.v = np.zeros(0, dtype=np.float64)

    def grow(self, capacity: int) -> None:
        self.ts = _grown(self.ts, capacity, self.none_ts)
        self.seq = _grown(self.seq, capacity, 0)
        self.v = _grown(self.v, capacity, np.nan)

    def reset(self, slots: Int64Array) -> None:
        self.ts[slots] = self.none_ts
        self.seq[slots] = 0
        self.v[slots] = np.nan

    def _pick(self, groups: Int64Array, ts: Int64Array, seq: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Index of the winning row of each group, and the groups (sorted)."""
        order = lex_order((seq, ts, groups))
        sorted_groups = groups[order]
        if self.latest:
            boundary = np.flatnonzero(np.diff(sorted_groups, append=sorted_groups[-1] + 1))
        else:
            boundary = np.flatnonzero(np.diff(sorted_groups, prepend=sorted_groups[0] - 1))
        return order[boundary], sorted_groups[boundary]

    def add(self, ctx: AddContext) -> None:
        values = ctx.batch.numbers[self.field]
        ok = np.flatnonzero(~np.isnan(values))
        if ok.shape[0] == 0:
            return
        ts, seq, slots = ctx.batch.ts[ok], ctx.batch.seq[ok], ctx.slots[ok]
        winners, winner_slots = self._pick(slots, ts, seq)
        cand_ts, cand_seq = ts[winners], seq[winners]
        cur_ts, cur_seq = self.ts[winner_slots], self.seq[winner_slots]
        if self.latest:
            better = (cand_ts > cur_ts) | ((cand_ts == cur_ts) & (cand_seq > cur_seq))
        else:
            better = (cand_ts < cur_ts) | ((cand_ts == cur_ts) & (cand_seq < cur_seq))
        chosen = winner_slots[better]
        self.ts[chosen] = cand_ts[better]
        self.seq[chosen] = cand_seq[better]
        self.v[chosen] = values[ok][winners][better]

    def merge(self, plan: MergePlan) -> Float64Array:
        out = np.full(plan.n_groups, np.nan)
        if plan.slots.shape[0] == 0:
            return out
        ts = self.ts[plan.slots]
        # Panes without a value must never win: push them to the losing end.
        winners, groups = self._pick(plan.groups, ts, self.seq[plan.slots])
        has_value = ts[winners] != self.none_ts
        out[groups[has_value]] = self.v[plan.slots[winners[has_value]]]
        return out

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return [
            None if t == self.none_ts else [t, s, v]
            for t, s, v in zip(self.ts[slots].tolist(), self.seq[slots].tolist(), self.v[slots].tolist())
        ]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        for slot, state in zip(slots.tolist(), states):
            if state is None:
                self.ts[slot], self.seq[slot], self.v[slot] = self.none_ts, 0, np.nan
            else:
                self.ts[slot], self.seq[slot], self.v[slot] = state


class DistinctColumn:
    """The exact set of distinct values (as stable 64-bit hashes) per pane."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.sets: list[set[int] | None] = []

    def grow(self, capacity: int) -> None:
        self.sets.extend([None] * (capacity - len(self.sets)))

    def reset(self, slots: Int64Array) -> None:
        for slot in slots.tolist():
            self.sets[slot] = set()

    def add(self, ctx: AddContext) -> None:
        hashes = ctx.batch.hashes[self.field]
        ok = hashes != 0
        sets = self.sets
        for slot, value in zip(ctx.slots[ok].tolist(), hashes[ok].tolist()):
            sets[slot].add(value)  # type: ignore[union-attr]

    def merge(self, plan: MergePlan) -> Int64Array:
        merged: list[set[int]] = [set() for _ in range(plan.n_groups)]
        sets = self.sets
        for group, slot in zip(plan.groups.tolist(), plan.slots.tolist()):
            merged[group] |= sets[slot]  # type: ignore[operator]
        return np.array([len(s) for s in merged], dtype=np.int64)

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return [sorted(self.sets[s] or ()) for s in slots.tolist()]

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        for slot, state in zip(slots.tolist(), states):
            self.sets[slot] = set(state)


class SketchColumn:
    """Quantile sketch bucket counts of a numeric field per pane (see ``windows.sketch``), kept in C."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.table = sketch_counts.SketchTable()

    def grow(self, capacity: int) -> None:
        self.table.grow(capacity)

    def reset(self, slots: Int64Array) -> None:
        self.table.reset(slots)

    def add(self, ctx: AddContext) -> None:
        values = ctx.batch.numbers[self.field]
        ok = ~np.isnan(values)
        if not ok.any():
            return
        if ok.all():
            self.table.add(ctx.slots, sketch.bucket_codes(values))
        else:
            self.table.add(ctx.slots[ok], sketch.bucket_codes(values[ok]))

    def merge(self, plan: MergePlan) -> sketch_counts.MergedSketches:
        """Each window's bucket counts."""
        return self.table.merge(plan.groups, plan.slots, plan.n_groups)

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return self.table.snapshot(slots)

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        self.table.restore(slots, states)


class DecayColumn:
    """Exponentially decayed event count (or field sum), referenced to each pane's end.

    A pane keeps ``sum(w * 2 ** -((pane_end - t) / half_life))``; a window scales
    each pane's sum by ``2 ** -((window_end - pane_end) / half_life)`` and adds them.
    """

    def __init__(self, field: str | None, half_life: int) -> None:
        self.field = field
        self.half_life = half_life
        self.sum = FixedSumColumn()

    def grow(self, capacity: int) -> None:
        self.sum.grow(capacity)

    def reset(self, slots: Int64Array) -> None:
        self.sum.reset(slots)

    def add(self, ctx: AddContext) -> None:
        ages = (ctx.pane_ends - ctx.batch.ts).astype(np.float64)
        weights = np.exp2(-ages / self.half_life)
        if self.field is None:
            self.sum.add_values(ctx.slots, weights)
            return
        values = ctx.batch.numbers[self.field]
        ok = ~np.isnan(values)
        self.sum.add_values(ctx.slots[ok], weights[ok] * values[ok])

    def merge(self, plan: MergePlan) -> Float64Array:
        whole, fraction = self.sum.whole[plan.slots], self.sum.fraction[plan.slots]
        groups, pane_ends = plan.groups, plan.pane_ends
        split = (groups[1:] == groups[:-1]) & (pane_ends[1:] == pane_ends[:-1])
        if split.any():
            # a pane held in parts (a sliding window's late point beside its point): add them exactly
            # first, so the float is that of the whole pane, as when the parts were one
            first = np.flatnonzero(np.concatenate(([True], ~split)))
            whole, fraction = np.add.reduceat(whole, first), np.add.reduceat(fraction, first)
            groups, pane_ends = groups[first], pane_ends[first]
        pane_sums = fixed_point.to_float(whole, fraction)
        ages = (plan.window_ends[groups] - pane_ends).astype(np.float64)
        decayed = pane_sums * np.exp2(-ages / self.half_life)
        # reduceat adds each group's panes in pane-time order, a canonical order,
        # so the float result is the same however the input was batched.
        total = np.zeros(plan.n_groups, dtype=np.float64)
        if decayed.shape[0]:
            runs = np.flatnonzero(np.diff(groups, prepend=-1))
            total[groups[runs]] = np.add.reduceat(decayed, runs)
        scaled: Float64Array = total * (math.log(2.0) / (self.half_life / 1000.0))
        return scaled

    def snapshot(self, slots: Int64Array) -> list[Any]:
        return self.sum.snapshot(slots)

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        self.sum.restore(slots, states)


#: ``EventBatch.hashes`` entries carrying each event's trace: the 128-bit trace id in two
#: halves, and its origin time (epoch ms; 0 when unknown).
TRACE_HI = "__trace_hi"
TRACE_LO = "__trace_lo"
TRACE_ORIGIN = "__trace_origin"
NO_SEQ = _INT64_MIN  # an empty trace entry


class _Picked:
    """Some groups of a merge plan (ascending positions), numbered anew from 0 in their order."""

    def __init__(self, groups: Int64Array, n_groups: int) -> None:
        self.count = int(groups.shape[0])
        self.number = np.full(n_groups, -1, dtype=np.int64)
        self.number[groups] = np.arange(self.count, dtype=np.int64)

    def pairs(self, groups: Int64Array, slots: Int64Array) -> tuple[Int64Array, Int64Array]:
        """The (group, slot) pairs of the picked groups, in their order, with the groups' new numbers."""
        renumbered = self.number[groups]
        kept = renumbered >= 0
        return renumbered[kept], slots[kept]


class TraceColumn:
    """The traces of the ``links`` newest events of each pane and window.

    Newest means latest by event time, ties going to the later arrival. Each row
    keeps up to ``links`` entries ``(ts, seq, origin, trace hi, trace lo)``,
    newest first; merging panes keeps the newest ``links`` entries over all of
    them. The newest entry of a window is the event that last moved it forward,
    the one that made a rule fire on it. Sliding windows, whose panes are single
    record times in time order, merge from their newest panes back until
    ``links`` entries are found. The loops are in C (``trace_links.pyx``).
    """

    FIELDS = 5

    def __init__(self, links: int) -> None:
        self.links = links
        self.rows = np.full((0, links, self.FIELDS), NO_SEQ, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        if self.rows.shape[0] < capacity:
            grown = np.empty((capacity, self.links, self.FIELDS), dtype=np.int64)
            grown[: self.rows.shape[0]] = self.rows
            grown[self.rows.shape[0] :] = NO_SEQ
            self.rows = grown

    def reset(self, slots: Int64Array) -> None:
        trace_links.clear(self.rows, slots)

    def add(self, ctx: AddContext) -> None:
        hashes = ctx.batch.hashes
        if TRACE_HI not in hashes:
            return
        batch = ctx.batch
        trace_links.add_events(
            self.rows,
            ctx.slots,
            batch.ts,
            batch.seq,
            np.asarray(hashes[TRACE_ORIGIN], dtype=np.int64),
            np.asarray(hashes[TRACE_HI], dtype=np.int64),
            np.asarray(hashes[TRACE_LO], dtype=np.int64),
        )

    def merge(self, plan: MergePlan, groups: Int64Array | None = None) -> Int64Array:
        """The newest entries of each group of ``plan``, or of the ``groups`` given (ascending), in their order."""
        if groups is not None and groups.shape[0] == 0:  # none picked (a window no rule reads): nothing to merge
            return np.full((0, self.links, self.FIELDS), NO_SEQ, dtype=np.int64)
        picked = None if groups is None else _Picked(groups, plan.n_groups)
        if plan.ranges is not None:  # panes in time order: the newest entries are in the newest panes
            sorted_slots, _, lo, hi = plan.ranges
            if picked is not None:
                lo, hi = lo[groups], hi[groups]
            merged = trace_links.merge_ranges(self.rows, sorted_slots, lo, hi)
            if plan.late is not None:  # then each group's late points, newest first
                late_lo, late_hi, bounds, times, arrivals, late_slots = plan.late
                number = None if picked is None else picked.number
                trace_links.merge_held_late(
                    merged, self.rows, late_lo, late_hi, bounds, times, arrivals, late_slots, number
                )
            return merged
        if picked is None:
            return trace_links.merge_pairs(self.rows, plan.groups, plan.slots, plan.n_groups)
        pair_groups, pair_slots = picked.pairs(plan.groups, plan.slots)
        return trace_links.merge_pairs(self.rows, pair_groups, pair_slots, picked.count)

    def snapshot(self, slots: Int64Array) -> list[Any]:
        rows = self.rows[slots]
        present = rows[:, :, 1] != NO_SEQ
        entries = rows[present].tolist()  # only the present entries become Python lists, row by row
        states: list[Any] = []
        at = 0
        for count in present.sum(axis=1).tolist():
            states.append(entries[at : at + count])
            at += count
        return states

    def restore(self, slots: Int64Array, states: list[Any]) -> None:
        for slot, entries in zip(slots.tolist(), states):
            self.rows[slot] = NO_SEQ
            if entries:
                self.rows[slot, : len(entries)] = entries
