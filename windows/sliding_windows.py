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

from windows import sliding_points
from windows.definitions import SlidingWindows, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.operator import WindowOperator
from windows.pane_state import MergePlan
from windows.results import WindowResults
from windows.stream_time import END_OF_TIME, NO_TIME

#: Late points (see ``SlidingWindowOperator._apply``) are panes named ``_LATE_PANES + i``, below any record time.
_LATE_PANES = NO_TIME + 1


class _PointIndex:
    """Live points sorted by (key, time), kept in order as points come and go.

    A key's points are contiguous and time-ordered, so the points of any window
    are one range. Searches and merges run in C (``sliding_points.pyx``).
    """

    def __init__(self) -> None:
        self.slots = np.zeros(0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)
        self.times = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.slots.shape[0])

    def rebuild(self, slots: Int64Array, keys: Int64Array, times: Int64Array) -> None:
        order = np.lexsort((times, keys))
        self.slots, self.keys, self.times = slots[order], keys[order], times[order]

    def insert(self, slots: Int64Array, keys: Int64Array, times: Int64Array) -> None:
        order = np.lexsort((times, keys))
        self.keys, self.times, self.slots = sliding_points.merge(
            self.keys, self.times, self.slots, keys[order], times[order], slots[order]
        )

    def clear(self) -> None:
        """Forget every point (the operator rebuilds the index from its table when next used)."""
        self.slots = self.keys = self.times = np.zeros(0, dtype=np.int64)

    def keep(self, mask: np.ndarray) -> None:
        self.slots, self.keys, self.times = self.slots[mask], self.keys[mask], self.times[mask]

    def locate(self, keys: Int64Array, t: Int64Array, side: str) -> Int64Array:
        return sliding_points.locate(
            self.keys, self.times, np.ascontiguousarray(keys), np.ascontiguousarray(t), side == "right"
        )


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


class SlidingWindowOperator(WindowOperator):
    """Kafka Streams ``SlidingWindows`` semantics over one partition."""

    def __init__(self, spec: WindowSpec, index: int) -> None:
        definition = spec.definition
        assert isinstance(definition, SlidingWindows)
        super().__init__(spec, index, 1)
        self.size = definition.size
        self.grace = definition.grace
        self.point_index = _PointIndex()
        # (key, time) of points whose left window had closed before the point was created
        self.expired_left: set[tuple[int, int]] = set()
        self.late_points = 0  # panes of late points in the table (within ``_apply`` only): not in the index

    # ---- geometry --------------------------------------------------------------------
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        return ts

    def first_close(self, ts: Int64Array) -> Int64Array:
        return self._close_of_end(ts)  # its left window [t - size, t]

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
        if len(self.point_index) + slots.shape[0] == len(self.table) - self.late_points:
            self.point_index.insert(slots, self.table.key_ids[slots], self.table.panes[slots])
        else:
            self.point_index.clear()  # out of step (e.g. after a restore): rebuild

    def _points(self) -> _PointIndex:
        if len(self.point_index) != len(self.table) - self.late_points:
            live = self.table.live_slots()
            if self.late_points:
                live = live[self.table.panes[live] >= _LATE_PANES + self.late_points]
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
        else:
            in_state = points.locate(keys, high, "right") > points.locate(keys, low, "left")
        # how many of the batch's events (this one included) have the key and a time in the range
        order = np.lexsort((batch.ts, batch.key_ids))
        batch_keys, batch_times = batch.key_ids[order], batch.ts[order]
        others = sliding_points.locate(batch_keys, batch_times, keys, high, True) - sliding_points.locate(
            batch_keys, batch_times, keys, low, False
        )
        needed = np.zeros_like(partly_late)
        needed[index] = in_state | (others > 1)
        # An event that needs no close creates a point whose own left window closed before it came:
        # that window must not be emitted (one event at a time, the close would have passed it first).
        skipped = ~(in_state | (others > 1))
        for key, time in zip(keys[skipped].tolist(), t[skipped].tolist()):
            self.expired_left.add((key, time))
        return needed

    # ---- partly-late events: late points -------------------------------------------------
    def _apply(
        self,
        batch: EventBatch,
        segment: Int64Array,
        needs_close: np.ndarray,
        st_before: Int64Array,
        emitted: list[WindowResults],
    ) -> tuple[Int64Array, Int64Array]:
        """Fold a segment's events into the points, without rounds.

        An event that needs its key's windows closed first (``close_needed``) goes,
        with the others, into a *late point*: a pane of its own that remembers the
        stream time it arrived at. Each of those keys then closes, in one pass, its
        windows up to the latest arrival among its late points, a window closing at
        ``c`` seeing only the late points that arrived before ``c``
        (``sliding_points.closing_late``): what closing before each event, one at a
        time, would have emitted. Every window of those keys still open then holds
        all of the late events, so they move into their points.
        """
        if segment.shape[0] == 0 or not needs_close.any():
            return super()._apply(batch, segment, needs_close, st_before, emitted)
        late = segment[needs_close]
        count = int(late.shape[0])
        ts = batch.ts[segment]
        panes = ts.copy()
        panes[needs_close] = _LATE_PANES + np.arange(count, dtype=np.int64)
        self.late_points = count
        touched, inverse = self.table.add(batch.take(segment), panes, ts + 1)
        created = self.table.last_created
        created = created[self.table.panes[created] >= _LATE_PANES + count]
        if created.shape[0]:
            self.panes_created(created)
        slots = touched[inverse]
        late_slots = slots[needs_close]
        keys, times, arrived = batch.key_ids[late], batch.ts[late], st_before[late]
        order = np.lexsort((times, keys))
        keys, times, arrived = keys[order], times[order], arrived[order]
        first = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
        uptos = np.maximum.reduceat(arrived, first)
        self._emit(emitted, self._close_late(keys[first], uptos, (keys, times, arrived, late_slots[order])))
        self.closed_keys.update(zip(keys[first].tolist(), uptos.tolist()))
        self.table.release(late_slots.tolist())
        self.late_points = 0
        moved, moved_inverse = self._add(batch.take(late))
        slots[needs_close] = moved[moved_inverse]
        touched, inverse = np.unique(slots, return_inverse=True)
        return touched, inverse.astype(np.int64)

    def _close_late(
        self, keys: Int64Array, uptos: Int64Array, late: tuple[Int64Array, Int64Array, Int64Array, Int64Array]
    ) -> WindowResults | None:
        """The windows of ``keys`` closing by their ``uptos``, each seeing the late points that arrived before
        it closed (``late``: their keys, times, arrivals and slots, sorted by key and time)."""
        if self.table.spilled is not None:
            self._load_for_close(int(uptos.max()), keys)
        points = self._points()
        known, known_uptos = self._closed_key_bounds()
        w_keys, starts, ends, lo, hi, groups, slots, pane_ends = sliding_points.closing_late(
            points.keys,
            points.times,
            points.slots,
            *late,
            keys,
            uptos,
            self.closed_upto,
            known,
            known_uptos,
            *self._expired_columns(),
            self.size,
            self.grace,
        )
        n = int(w_keys.shape[0])
        if n == 0:
            return None
        plan = MergePlan(n, ends + 1, ranges=(points.slots, points.times, lo, hi), extra=(groups, slots, pane_ends))
        return self._results(
            final=True,
            key_ids=w_keys,
            starts=starts,
            ends=ends,
            emitted_at=self._close_of_end(ends),
            values=self.table.aggregation.values(plan),
        )

    def _expired_columns(self) -> tuple[Int64Array, Int64Array]:
        """``expired_left`` as sorted key and time columns."""
        expired = sorted(self.expired_left)
        keys = np.fromiter((key for key, _ in expired), dtype=np.int64, count=len(expired))
        times = np.fromiter((time for _, time in expired), dtype=np.int64, count=len(expired))
        return keys, times

    # ---- window derivation -------------------------------------------------------------
    def _emit_windows(
        self, points: _PointIndex, windows: _Windows, when: Int64Array | None = None
    ) -> WindowResults | None:
        """Final results of ``windows``, or their updates at the ticks ``when``."""
        n = int(windows.keys.shape[0])
        if n == 0:
            return None
        plan = MergePlan(n, windows.ends + 1, ranges=(points.slots, points.times, windows.lo, windows.hi))
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
        results = self._emit_closing(None, np.asarray([upto], dtype=np.int64))
        points = self._points()
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
        return self._emit_closing(keys, uptos)

    def _emit_closing(self, keys: Int64Array | None, uptos: Int64Array) -> WindowResults | None:
        """The windows of ``keys`` (sorted, distinct) that close after what their key has emitted and by its
        entry in ``uptos``; without ``keys``, those of every key closing by ``uptos[0]``."""
        points = self._points()
        if len(points) == 0:
            return None
        known, known_uptos = self._closed_key_bounds()
        exp_keys, exp_times = self._expired_columns()
        windows = sliding_points.closing(
            points.keys,
            points.times,
            None if keys is None else np.ascontiguousarray(keys, dtype=np.int64),
            np.ascontiguousarray(uptos, dtype=np.int64),
            self.closed_upto,
            known,
            known_uptos,
            exp_keys,
            exp_times,
            self.size,
            self.grace,
        )
        return self._emit_windows(points, _Windows(*windows))

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
        # each changed key's newest point: the last one before the end of time
        newest = points.locate(changed_keys, np.full(changed_keys.shape[0], END_OF_TIME), "right") - 1
        held = newest >= 0
        held[held] = points.keys[newest[held]] == changed_keys[held]
        keys, newest, now = changed_keys[held], newest[held], key_when[held]
        t = points.times[newest]
        windows = _Windows(keys, t - self.size, t, points.locate(keys, t - self.size, "left"), newest + 1)
        open_ = self._close_of_end(windows.ends) > now
        return self._emit_windows(points, windows.select(open_), now[open_])

    def close_everything(self) -> WindowResults | None:
        if self.table.load_range(NO_TIME, END_OF_TIME).shape[0]:
            self.point_index.clear()
        results = self._emit_closing(None, np.asarray([END_OF_TIME], dtype=np.int64))
        points = self._points()
        self.table.release(points.slots.tolist())
        points.keep(np.zeros(len(points), dtype=bool))
        self.pending = set()
        return results
