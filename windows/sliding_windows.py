"""Kafka Streams sliding windows, derived from per-millisecond points.

State is one pane per (key, record time): a *point*. The windows are derived
from the points present when a window is emitted, as Kafka Streams'
``KStreamSlidingWindowAggregate`` creates them: for every point ``t`` a left
window ``[t - size, t]``, and a right window ``[t + 1, t + 1 + size]`` when a
later point lies in ``(t, t + size]`` (a point exactly at ``t + 1 + size`` makes
that window the left window of that point, emitted once). A window closes when
stream time reaches ``end + 1 + grace``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from windows.definitions import SlidingWindows, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.operator import WindowOperator
from windows.pane_state import MergePlan
from windows.results import WindowResults
from windows.stream_time import END_OF_TIME, NO_TIME


class _PointIndex:
    """Live points sorted by (key, time), kept in order as points come and go.

    Each point's position is ``key << shift | (time - base)``, one int64 axis on
    which a key's points are contiguous and time-ordered, so the points of any
    window are one ``searchsorted`` range. New points are inserted in place; the
    index is rebuilt (re-sorted, new base) only when a point falls outside the
    range the current base and shift can encode.
    """

    _MIN_KEY_BITS = 20

    def __init__(self, margin: int) -> None:
        self.margin = margin  # widest offset a query adds to or subtracts from a time
        self.slots = np.zeros(0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)
        self.times = np.zeros(0, dtype=np.int64)
        self.positions = np.zeros(0, dtype=np.int64)
        self.base = 0
        self.shift = 62 - self._MIN_KEY_BITS

    def __len__(self) -> int:
        return int(self.slots.shape[0])

    def fits(self, keys: Int64Array, times: Int64Array) -> bool:
        if keys.shape[0] == 0:
            return True
        if int(keys.max()).bit_length() + self.shift > 62:
            return False
        low, high = int(times.min()) - self.margin, int(times.max()) + self.margin
        return low >= self.base and high - self.base < (1 << self.shift)

    def encode(self, keys: Int64Array, times: Int64Array) -> Int64Array:
        return (keys << self.shift) + (times - self.base)

    def rebuild(self, slots: Int64Array, keys: Int64Array, times: Int64Array) -> None:
        order = np.lexsort((times, keys))
        self.slots, self.keys, self.times = slots[order], keys[order], times[order]
        if slots.shape[0]:
            key_bits = max(int(keys.max()).bit_length(), self._MIN_KEY_BITS)
            self.shift = 62 - key_bits
            self.base = int(times.min()) - 2 * self.margin
            if int(times.max()) + 2 * self.margin - self.base >= (1 << self.shift):
                raise OverflowError("sliding window points span too much time to index")
        self.positions = self.encode(self.keys, self.times)

    def insert(self, slots: Int64Array, keys: Int64Array, times: Int64Array) -> None:
        if not self.fits(keys, times):
            self.rebuild(
                np.concatenate([self.slots, slots]),
                np.concatenate([self.keys, keys]),
                np.concatenate([self.times, times]),
            )
            return
        order = np.lexsort((times, keys))
        slots, keys, times = slots[order], keys[order], times[order]
        positions = self.encode(keys, times)
        at = np.searchsorted(self.positions, positions)
        self.slots = np.insert(self.slots, at, slots)
        self.keys = np.insert(self.keys, at, keys)
        self.times = np.insert(self.times, at, times)
        self.positions = np.insert(self.positions, at, positions)

    def clear(self) -> None:
        """Forget every point (the operator rebuilds the index from its table when next used)."""
        self.slots = self.keys = self.times = self.positions = np.zeros(0, dtype=np.int64)

    def keep(self, mask: np.ndarray) -> None:
        self.slots, self.keys = self.slots[mask], self.keys[mask]
        self.times, self.positions = self.times[mask], self.positions[mask]

    def locate(self, keys: Int64Array, t: Int64Array, side: str) -> Int64Array:
        return np.searchsorted(self.positions, self.encode(keys, t), side=side)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class _Windows:
    """Candidate windows: key, inclusive bounds and the range of index points they hold."""

    keys: Int64Array
    starts: Int64Array
    ends: Int64Array
    lo: Int64Array
    hi: Int64Array

    def select(self, mask: np.ndarray) -> _Windows:
        return _Windows(self.keys[mask], self.starts[mask], self.ends[mask], self.lo[mask], self.hi[mask])

    @staticmethod
    def join(a: _Windows, b: _Windows) -> _Windows:
        pairs = zip((a.keys, a.starts, a.ends, a.lo, a.hi), (b.keys, b.starts, b.ends, b.lo, b.hi))
        return _Windows(*(np.concatenate([x, y]) for x, y in pairs))


class SlidingWindowOperator(WindowOperator):
    """Kafka Streams ``SlidingWindows`` semantics over one partition."""

    def __init__(self, spec: WindowSpec, index: int) -> None:
        definition = spec.definition
        assert isinstance(definition, SlidingWindows)
        super().__init__(spec, index, 1)
        self.size = definition.size
        self.grace = definition.grace
        self.point_index = _PointIndex(margin=self.size + 4)
        # (key, time) of points whose left window had closed before the point was created
        self.expired_left: set[tuple[int, int]] = set()

    # ---- geometry --------------------------------------------------------------------
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        return ts

    def first_close(self, ts: Int64Array) -> Int64Array:
        return ts + 1 + self.grace

    def last_close(self, ts: Int64Array) -> Int64Array:
        return ts + self.size + 1 + self.grace

    def release_point(self, panes: Int64Array) -> Int64Array:
        # a point stays until its own right window [t + 1, t + 1 + size], which starts as it leaves, has
        # closed: at t + size + 2 + grace
        return panes + self.size + 2 + self.grace

    def _close_of_end(self, ends: Int64Array) -> Int64Array:
        return ends + 1 + self.grace

    # ---- the point index -----------------------------------------------------------------
    def panes_created(self, slots: Int64Array) -> None:
        if len(self.point_index) + slots.shape[0] == len(self.table):
            self.point_index.insert(slots, self.table.key_ids[slots], self.table.panes[slots])
        else:
            self.point_index.clear()  # out of step (e.g. after a restore): rebuild

    def _points(self) -> _PointIndex:
        if len(self.point_index) != len(self.table):
            live = self.table.live_slots()
            self.point_index.rebuild(live, self.table.key_ids[live], self.table.panes[live])
        return self.point_index

    def slots_moved(self, mapping: Int64Array | None) -> None:
        super().slots_moved(mapping)
        self.point_index.clear()  # rebuilt from the table when next used

    def keys_renumbered(self, mapping: Int64Array) -> None:
        super().keys_renumbered(mapping)
        self.point_index.clear()
        self.expired_left = {(int(mapping[key]), time) for key, time in self.expired_left}

    def key_ids_in_use(self) -> Int64Array:
        expired = np.fromiter((key for key, _ in self.expired_left), dtype=np.int64, count=len(self.expired_left))
        return np.concatenate([super().key_ids_in_use(), expired])

    def close_needed(self, batch: EventBatch, partly_late: np.ndarray) -> np.ndarray:
        """A partly-late event needs windows closed before it only if a window containing it could close first.

        Such a window is anchored at a point of the same key within
        ``[t - size - 1, t + size]``; when the key has no other point there (in
        state or anywhere in the batch), no close is needed. Closing needlessly is
        always safe, so every doubt answers yes.
        """
        index = np.flatnonzero(partly_late)
        keys, t = batch.key_ids[index], batch.ts[index]
        low, high = t - self.size - 1, t + self.size
        points = self._points()
        spilled = self.table.spilled
        if spilled is not None and spilled[0] <= int(high.max()) and spilled[1] >= int(low.min()):
            in_state = np.ones(index.shape[0], dtype=bool)  # evicted points may be there: assume so
        elif len(points) == 0:
            in_state = np.zeros(index.shape[0], dtype=bool)
        elif points.fits(keys, low) and points.fits(keys, high):
            in_state = points.locate(keys, high, "right") > points.locate(keys, low, "left")
        else:
            in_state = np.ones(index.shape[0], dtype=bool)
        t_min = int(batch.ts.min()) - self.size - 2
        span = int(batch.ts.max()) + self.size + 2 - t_min
        if int(batch.key_ids.max()).bit_length() + span.bit_length() > 62:
            return partly_late
        axis = np.sort(batch.key_ids * span + (batch.ts - t_min))
        others = np.searchsorted(axis, keys * span + (high - t_min), "right") - np.searchsorted(
            axis, keys * span + (low - t_min), "left"
        )
        needed = np.zeros_like(partly_late)
        needed[index] = in_state | (others > 1)
        # An event that needs no close creates a point whose own left window closed before it came:
        # that window must not be emitted (one event at a time, the close would have passed it first).
        skipped = ~(in_state | (others > 1))
        for key, time in zip(keys[skipped].tolist(), t[skipped].tolist()):
            self.expired_left.add((key, time))
        return needed

    # ---- window derivation -------------------------------------------------------------
    def _candidates(self, points: _PointIndex, anchors: Int64Array) -> _Windows:
        """Left and (existing) right windows anchored at the given index positions."""
        keys, t = points.keys[anchors], points.times[anchors]
        left = _Windows(
            keys, t - self.size, t, points.locate(keys, t - self.size, "left"), points.locate(keys, t, "right")
        )
        if self.expired_left:
            expired = self.expired_left
            left = left.select(np.array([(k, s) not in expired for k, s in zip(keys.tolist(), t.tolist())], dtype=bool))
        lo = points.locate(keys, t + 1, "left")
        within = points.locate(keys, t + self.size, "right")
        hi = points.locate(keys, t + 1 + self.size, "right")
        exists = (within > lo) & (hi == within)  # a later point in (t, t+size], none at t+1+size
        right = _Windows(keys, t + 1, t + 1 + self.size, lo, hi).select(exists)
        return _Windows.join(left, right)

    def _emit_windows(
        self, points: _PointIndex, windows: _Windows, when: Int64Array | None = None
    ) -> WindowResults | None:
        """Final results of ``windows``, or their updates at the ticks ``when``."""
        n = int(windows.keys.shape[0])
        if n == 0:
            return None
        plan = MergePlan(n, windows.ends + 1, ranges=(points.slots, points.times + 1, windows.lo, windows.hi))
        values = self.table.aggregation.values(plan)
        emitted_at = self._close_of_end(windows.ends) if when is None else when
        return self._results(
            final=when is None,
            key_ids=windows.keys,
            starts=windows.starts,
            ends=windows.ends,
            emitted_at=emitted_at,
            values=values,
        )

    def close(self, upto: int) -> WindowResults | None:
        if upto <= self.closed_upto:
            return None
        if self.table.spilled is not None:
            self._load_for_close(upto)
        points = self._points()
        everything = np.arange(len(points))
        results = self._emit_closing(points, everything, np.full(everything.shape[0], upto, dtype=np.int64))
        right_close = self.release_point(points.times)
        if self.expired_left:
            self.expired_left = {(k, t) for k, t in self.expired_left if t + 1 + self.grace > upto}
        dead = right_close <= upto
        if dead.any():
            released = points.slots[dead].tolist()
            self.forget_pending(released)
            self.table.release(released)
            points.keep(~dead)
        self.closed_upto = upto
        return results

    def _close_keys(self, keys: Int64Array, uptos: Int64Array) -> WindowResults | None:
        if self.table.spilled is not None:
            self._load_for_close(int(uptos.max()), keys)
        points = self._points()
        first = np.searchsorted(points.keys, keys, "left")
        counts = np.searchsorted(points.keys, keys, "right") - first
        anchors = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return self._emit_closing(points, anchors, np.repeat(uptos, counts))

    def _emit_closing(self, points: _PointIndex, anchors: Int64Array, upto: Int64Array) -> WindowResults | None:
        """The windows anchored at index positions ``anchors`` that close after what their key has emitted
        and by the anchor's ``upto`` (the same for every anchor of a key)."""
        times = points.times[anchors]
        left_close = self.first_close(times)  # the anchor's left window [t - size, t]
        right_close = self.release_point(times)  # its right window [t + 1, t + 1 + size]
        # No key has emitted less than ``closed_upto``: anchors with nothing closing since are out before
        # their keys' own bounds are looked up (a close visits only the points it closes).
        maybe = np.flatnonzero(_closes_within(left_close, right_close, self.closed_upto, upto))
        anchors, upto, left_close, right_close = anchors[maybe], upto[maybe], left_close[maybe], right_close[maybe]
        keys = points.keys[anchors]
        low = self._lower_bounds(keys)
        near = _closes_within(left_close, right_close, low, upto)
        if not near.any():
            return None
        windows = self._candidates(points, anchors[near])
        # each window's key's upto and lower bound, from its key's first near anchor
        near_keys, first = np.unique(keys[near], return_index=True)
        of_key = np.searchsorted(near_keys, windows.keys)
        closes = self._close_of_end(windows.ends)
        closing = (closes <= upto[near][first][of_key]) & (closes > low[near][first][of_key])
        return self._emit_windows(points, windows.select(closing))

    def _load_for_close(self, upto: int, keys: Int64Array | None = None) -> None:
        """Read back the evicted points the windows closing in ``(closed_upto, upto]`` need (of ``keys``
        only, when given).

        Those windows are anchored at points in two narrow ranges (left windows
        closing now, right windows closing now); they hold points of the
        anchors' keys within a window size of the anchors, all before
        ``upto - grace``. Points of other keys stay in RocksDB.
        """
        table, size, grace = self.table, self.size, self.grace
        low = self.closed_upto if self.closed_upto != NO_TIME else NO_TIME // 2
        left = (low - grace, upto - grace)
        right = (low - size - 1 - grace, upto - size - 1 - grace)
        loaded = table.load_range(*left, keys).shape[0] + table.load_range(*right, keys).shape[0]
        live = table.live_slots()
        t = table.panes[live]
        anchors = ((t >= left[0]) & (t < left[1])) | ((t >= right[0]) & (t < right[1]))
        if keys is not None:
            anchors &= np.isin(table.key_ids[live], keys)
        if anchors.any():
            keys = np.unique(table.key_ids[live[anchors]])
            loaded += table.load_range(right[0] - size, upto - grace, keys).shape[0]
        if loaded:
            self.point_index.clear()

    def _updates(self, changed: Int64Array, when: Int64Array) -> WindowResults | None:
        """For each key with new points, its newest left window ``[t_max - size, t_max]``.

        Kafka Streams would re-send every window a record falls into; with many
        records per window that multiplies output without adding information a
        consumer of "the last ``size`` as of now" needs. Every window is still
        emitted once, in full, when it closes.
        """
        changed_keys, first = np.unique(self.table.key_ids[changed], return_index=True)
        key_when = when[first]  # one tick per key: its points changed before one tick only
        # the changed keys' evicted points within a window of their new ones
        earliest = int(self.table.panes[changed].min()) - self.size
        if self.table.load_range(earliest, END_OF_TIME, changed_keys).shape[0]:
            self.point_index.clear()
        points = self._points()
        if len(points) == 0:
            return None
        # the last index position of each key is its newest point
        last_of_key = np.flatnonzero(np.diff(points.keys, append=points.keys[-1] + 1))
        newest = last_of_key[np.isin(points.keys[last_of_key], changed_keys)]
        keys, t = points.keys[newest], points.times[newest]
        now = key_when[np.searchsorted(changed_keys, keys)]
        windows = _Windows(
            keys, t - self.size, t, points.locate(keys, t - self.size, "left"), points.locate(keys, t, "right")
        )
        open_ = self._close_of_end(windows.ends) > now
        return self._emit_windows(points, windows.select(open_), now[open_])

    def close_everything(self) -> WindowResults | None:
        if self.table.load_range(NO_TIME, END_OF_TIME).shape[0]:
            self.point_index.clear()
        points = self._points()
        everything = np.arange(len(points))
        results = self._emit_closing(points, everything, np.full(everything.shape[0], END_OF_TIME, dtype=np.int64))
        self.table.release(points.slots.tolist())
        points.keep(np.zeros(len(points), dtype=bool))
        self.pending = set()
        return results


def _closes_within(
    left_close: Int64Array, right_close: Int64Array, low: Int64Array | int, upto: Int64Array
) -> np.ndarray:
    """Per anchor, whether its left or its right window closes in ``(low, upto]``."""
    return ((left_close <= upto) & (left_close > low)) | ((right_close <= upto) & (right_close > low))
