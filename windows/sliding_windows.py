"""Kafka Streams sliding windows, derived from per-millisecond points.

State is one pane per (key, record time): a *point*. The windows are derived
from the points present when a window is emitted, as Kafka Streams'
``KStreamSlidingWindowAggregate`` creates them: for every point ``t`` a left
window ``[t - size, t]``, and a right window ``[t + 1, t + 1 + size]`` when a
later point lies in ``(t, t + size]`` (a point exactly at ``t + 1 + size`` makes
that window the left window of that point, emitted once). A window closes when
stream time reaches ``end + 1 + grace``.

Within a batch, an event that windows may not see yet (one that came after some
window containing it had closed, or, for updates, one that came after a tick
whose window contains its time) is held in a *late point* of its own, stamped
with when it came, until those windows are emitted (``SlidingWindowOperator._apply``
and ``process``); then it moves into its point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from windows import sliding_points
from windows.definitions import SlidingWindows, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.operator import WindowOperator
from windows.pane_state import MergePlan
from windows.results import WindowResults
from windows.sort_order import first_of_each, lex_order, stable_order
from windows.stream_time import END_OF_TIME, NO_TIME

#: Late points (see ``SlidingWindowOperator._apply``) are panes named ``_LATE_PANES + i``, below any record time.
_LATE_PANES = NO_TIME + 1
_LATE_LIMIT = _LATE_PANES + (1 << 40)  # every late point's name is below it, every record time above


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
        order = lex_order((times, keys))
        self.slots, self.keys, self.times = slots[order], keys[order], times[order]

    def insert(self, slots: Int64Array, keys: Int64Array, times: Int64Array) -> None:
        order = lex_order((times, keys))
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
        self.late_points = 0  # panes of late points in the table (within one batch only): not in the index
        # the late events of the batch's next close (keys, times, arrivals by key and time): it leaves out
        # the windows that closed before one of them came, which ``_close_late`` emitted
        self.late_events: tuple[Int64Array, Int64Array, Int64Array] | None = None

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

    def released_below(self) -> int:
        # a point t goes at release_point(t) <= closed_upto; an event that would make a point below that is
        # late for its last window [t, t + size] too, which closed at t + size + 1 + grace
        if self.closed_upto == NO_TIME:
            return NO_TIME
        return self.closed_upto - self.size - 1 - self.grace

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
                live = live[self.table.panes[live] >= _LATE_LIMIT]
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
        order = lex_order((batch.ts, batch.key_ids))
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

    # ---- a batch with updates, in one pass -------------------------------------------------
    def process(
        self,
        batch: EventBatch,
        st_before: Int64Array,
        st_after: Int64Array,
        st_start: int,
    ) -> tuple[list[WindowResults], np.ndarray, np.ndarray]:
        """Apply a batch of an ``emit: update`` window without cutting it at its update ticks.

        A tick's updates are each changed key's newest left window as of the tick
        (``_updates``). Events after the tick would change that window only if their
        time were within it, so not above the key's newest time so far: such
        events, with those that need windows closed first, go into late points
        (``_apply``) stamped with their place in the batch, and every other event
        into its point. A tick's window then holds its range of points and the late
        points that came before the tick (``sliding_points.late_held``), so every
        tick of the batch is computed at once, before the late points move into
        their points and the batch's close. A table with evicted points takes the
        general way (segments between ticks).
        """
        if not self.emits_updates or self.table.spilled is not None or len(batch) == 0:
            return super().process(batch, st_before, st_after, st_start)
        n = len(batch)
        ts, keys = batch.ts, batch.key_ids
        late_all = st_before >= self.last_close(ts)
        late_some = st_before >= self.first_close(ts)
        partly_late = late_some & ~late_all
        needs_close = self.close_needed(batch, partly_late) if partly_late.any() else np.zeros(n, dtype=bool)
        boundaries = np.flatnonzero(self._ticks(st_after, st_start))
        applied = np.flatnonzero(~late_all)
        emitted: list[WindowResults] = []
        pending = np.fromiter(self.pending, dtype=np.int64, count=len(self.pending))
        newest = self._newest_times(np.concatenate([keys[applied], self.table.key_ids[pending]]))
        # each applied event's key: its newest time before the event (points before the batch, then events)
        a_keys, a_ts = keys[applied], ts[applied]
        order = stable_order(a_keys)
        before = np.empty(applied.shape[0], dtype=np.int64)
        before[order] = sliding_points.running_max(a_keys[order], a_ts[order], newest[: applied.shape[0]][order])
        apart = needs_close[applied] | (a_ts <= before)
        held = applied[apart]
        slots = self._add_apart(batch, applied, apart)
        held_slots = slots[apart]
        h_order = lex_order((ts[held], keys[held]))
        late = (keys[held][h_order], ts[held][h_order], held[h_order], held_slots[h_order])
        if boundaries.shape[0]:
            ticked = self._updates_at_ticks(
                boundaries,
                np.where(boundaries > 0, st_after[np.maximum(boundaries - 1, 0)], st_start),
                (applied, a_keys, a_ts, np.maximum(before, a_ts)),
                (pending, newest[applied.shape[0] :]),
                late,
            )
            self._emit(emitted, ticked)
        # events on time for every window move into their points now (every close sees them), the others
        # once their keys' windows that closed before they came are emitted
        partly = needs_close[held]
        self._move_late(batch, applied, slots, apart, ~partly)
        if partly.any():
            closing = held[partly]
            c_keys, inverse_keys = np.unique(keys[closing], return_inverse=True)
            uptos = np.full(c_keys.shape[0], NO_TIME, dtype=np.int64)
            np.maximum.at(uptos, inverse_keys, st_before[closing])
            still = needs_close[late[2]]
            arrived = (late[0][still], late[1][still], st_before[late[2][still]], late[3][still])
            self._emit(emitted, self._close_late(c_keys, uptos, arrived))
            self._move_late(batch, applied, slots, apart, partly)
        if boundaries.shape[0]:
            self.pending = set(slots[applied >= boundaries[-1]].tolist())
        else:
            self.pending.update(slots.tolist())
        self._emit(emitted, self.close(int(st_after[-1])))
        return self._finals_together(emitted), late_all, late_some

    def _move_late(
        self, batch: EventBatch, applied: Int64Array, slots: Int64Array, apart: np.ndarray, moving: np.ndarray
    ) -> None:
        """Move late points into their points: of the applied events (batch positions ``applied``, slots
        ``slots``), those held ``apart`` and, among them, ``moving``; update ``slots``."""
        if not moving.any():
            return
        rows = np.flatnonzero(apart)[moving]
        self.table.release(slots[rows])
        self.late_points -= int(rows.shape[0])
        moved, inverse = self._add(batch.take(applied[rows]))
        slots[rows] = moved[inverse]

    def _newest_times(self, keys: Int64Array) -> Int64Array:
        """Each key's newest point time (``NO_TIME`` for a key without points)."""
        points = self._points()
        if len(points) == 0 or keys.shape[0] == 0:
            return np.full(keys.shape[0], NO_TIME, dtype=np.int64)
        # the index is sorted by (key, time): a key's last point is its newest. Key ids are dense: the
        # newest time of every key with points, by key id, then one gather (a search per key otherwise)
        last = np.flatnonzero(points.keys[1:] != points.keys[:-1])
        last = np.append(last, len(points) - 1)
        point_keys = points.keys[last]
        lowest, highest = min(int(point_keys[0]), int(keys.min())), max(int(point_keys[-1]), int(keys.max()))
        if lowest >= 0 and highest < 4 * (len(points) + keys.shape[0]) + 1024:
            by_key = np.full(highest + 1, NO_TIME, dtype=np.int64)
            by_key[point_keys] = points.times[last]
            return by_key.take(keys)
        at = points.locate(keys, np.full(keys.shape[0], END_OF_TIME, dtype=np.int64), "right") - 1
        found = at >= 0
        found[found] = points.keys[at[found]] == keys[found]
        return np.where(found, points.times[np.maximum(at, 0)], NO_TIME)

    def _updates_at_ticks(
        self,
        boundaries: Int64Array,
        tick_times: Int64Array,
        changes: tuple[Int64Array, Int64Array, Int64Array, Int64Array],
        pending: tuple[Int64Array, Int64Array],
        late: tuple[Int64Array, Int64Array, Int64Array, Int64Array],
    ) -> WindowResults | None:
        """Every tick's updates: for each key changed before the tick (and after the tick before), with a
        change that a close up to the tick would not release, its newest left window if still open then.

        ``changes``: the applied events' batch positions, keys and times, and their key's newest time once
        each was applied; ``pending``: the slots changed before the batch and their keys' newest times,
        which belong to the first tick; ``late``: the late points by key and time, with their batch
        positions and slots."""
        positions, keys, times, newest = changes
        ticks = np.searchsorted(boundaries, positions, side="right")  # the first tick after each event
        inside = ticks < boundaries.shape[0]
        ticks, keys, times, newest = ticks[inside], keys[inside], times[inside], newest[inside]
        pending_slots, pending_newest = pending
        if pending_slots.shape[0]:  # before the batch's events: a key's newest time comes from its last
            ticks = np.concatenate([np.zeros(pending_slots.shape[0], dtype=np.int64), ticks])
            keys = np.concatenate([self.table.key_ids[pending_slots], keys])
            times = np.concatenate([self.table.panes[pending_slots], times])
            newest = np.concatenate([pending_newest, newest])
        kept = self.release_point(times) > tick_times[ticks]
        if not kept.any():
            return None
        # per (tick, key) with a change kept, the key's newest time after its last change (in C)
        ticks, keys, ends = sliding_points.tick_groups(ticks, keys, newest, kept.view(np.uint8))
        open_ = self._close_of_end(ends) > tick_times[ticks]  # the window is still open
        ticks, keys, ends = ticks[open_], keys[open_], ends[open_]
        n = int(keys.shape[0])
        if n == 0:
            return None
        starts = ends - self.size
        points = self._points()
        lo, hi = points.locate(keys, starts, "left"), points.locate(keys, ends, "right")
        bounds = boundaries[ticks]
        late_lo, late_hi = sliding_points.late_held(late[0], late[1], keys, starts, ends)
        held = (late_lo, late_hi, bounds, late[1], late[2], late[3])
        plan = MergePlan(n, ends + 1, ranges=(points.slots, points.times, lo, hi), late=held)
        results = self._results(
            final=False,
            key_ids=keys,
            starts=starts,
            ends=ends,
            emitted_at=tick_times[ticks],
            merged=self._merge(plan),
        )
        return replace(results, ticks=2 * bounds + (1 if self.spec.update_interval else 0))

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
        stream time it arrived at. One pass (``_close_late``) then emits the windows
        that closed before one of their late points came, each holding only the
        late points that came before it closed: what closing before each event,
        one at a time, would have emitted. The late events then move into their
        points, and the segment's close gives every other window and leaves those
        out (``late_events``).
        """
        if segment.shape[0] == 0:
            return segment[:0], segment[:0]
        if not needs_close.any():
            return self._add(batch.rows(segment))
        late = segment[needs_close]
        slots = self._add_apart(batch, segment, needs_close)
        late_slots = slots[needs_close]
        keys, times, arrived = batch.key_ids[late], batch.ts[late], st_before[late]
        order = lex_order((times, keys))
        keys, times, arrived = keys[order], times[order], arrived[order]
        first = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
        uptos = np.maximum.reduceat(arrived, first)
        self._emit(emitted, self._close_late(keys[first], uptos, (keys, times, arrived, late_slots[order])))
        self._move_late(batch, segment, slots, needs_close, np.ones(late.shape[0], dtype=bool))
        return self.table.distinct(slots)

    def _add_apart(self, batch: EventBatch, positions: Int64Array, apart: np.ndarray) -> Int64Array:
        """Fold the events at batch ``positions`` into their points, or, where ``apart``, each into a late
        point of its own; return each event's slot."""
        count = int(np.count_nonzero(apart))
        times = batch.ts[positions]
        panes = times.copy()
        panes[apart] = _LATE_PANES + np.arange(count, dtype=np.int64)
        self.late_points += count
        touched, inverse = self.table.add(batch.rows(positions), panes, times + 1)
        created = self.table.last_created
        created = created[self.table.panes[created] >= _LATE_LIMIT]
        if created.shape[0]:
            self.panes_created(created)
        slots: Int64Array = touched[inverse]
        return slots

    def _close_late(
        self, keys: Int64Array, uptos: Int64Array, late: tuple[Int64Array, Int64Array, Int64Array, Int64Array]
    ) -> WindowResults | None:
        """Those windows of ``keys`` closing by their ``uptos`` that closed before one of the late points they
        contain came (``late``: their keys, times, arrivals and slots, sorted by key and time), each holding
        the late points that came before it closed. The next close, once the late points are points, gives
        the other windows and leaves these out (``late_events``)."""
        self.late_events = late[:3]
        if self.table.spilled is not None:
            self._load_for_close(int(uptos.max()), keys, late[1])
        points = self._points()
        w_keys, starts, ends, lo, hi, late_lo, late_hi, closes = sliding_points.closing_late(
            points.keys,
            points.times,
            *late[:3],
            keys,
            uptos,
            self.closed_upto,
            *self._expired_columns(),
            self.size,
            self.grace,
            True,
        )
        n = int(w_keys.shape[0])
        if n == 0:
            return None
        held = (late_lo, late_hi, closes, late[1], late[2], late[3])  # each holds those that came before it closed
        plan = MergePlan(n, ends + 1, ranges=(points.slots, points.times, lo, hi), late=held)
        return self._results(
            final=True,
            key_ids=w_keys,
            starts=starts,
            ends=ends,
            emitted_at=self._close_of_end(ends),
            merged=self._merge(plan),
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
        merged = self._merge(plan)
        emitted_at = self._close_of_end(windows.ends) if when is None else when
        return self._results(
            final=when is None,
            key_ids=windows.keys,
            starts=windows.starts,
            ends=windows.ends,
            emitted_at=emitted_at,
            merged=merged,
        )

    def close(self, upto: int) -> WindowResults | None:
        late, self.late_events = self.late_events, None
        if upto <= self.closed_upto:
            return None
        if self.table.spilled is not None:
            self._load_for_close(upto)
        results = self._emit_closing(None, np.asarray([upto], dtype=np.int64), late)
        points = self._points()
        right_close = self.release_point(points.times)
        if self.expired_left:
            self.expired_left = {(k, t) for k, t in self.expired_left if t + 1 + self.grace > upto}
        dead = right_close <= upto
        if dead.any():
            released = points.slots[dead]
            self.forget_pending(released)
            self.table.release(released)
            points.keep(~dead)
        self.closed_upto = upto
        return results

    def _emit_closing(
        self,
        keys: Int64Array | None,
        uptos: Int64Array,
        late: tuple[Int64Array, Int64Array, Int64Array] | None = None,
    ) -> WindowResults | None:
        """The windows of ``keys`` (sorted, distinct) that close after what their key has emitted and by its
        entry in ``uptos``; without ``keys``, those of every key closing by ``uptos[0]``; none that closed
        before one of the ``late`` events it contains came (keys, times, arrivals)."""
        points = self._points()
        if len(points) == 0:
            return None
        exp_keys, exp_times = self._expired_columns()
        windows = sliding_points.closing(
            points.keys,
            points.times,
            None if keys is None else np.ascontiguousarray(keys, dtype=np.int64),
            np.ascontiguousarray(uptos, dtype=np.int64),
            self.closed_upto,
            exp_keys,
            exp_times,
            self.size,
            self.grace,
            *(late or ()),
        )
        return self._emit_windows(points, _Windows(*windows))

    def _load_for_close(self, upto: int, keys: Int64Array | None = None, late_times: Int64Array | None = None) -> None:
        """Read back the evicted points the windows closing in ``(closed_upto, upto]`` need (of ``keys``
        only, when given).

        Those windows are anchored at points in two narrow ranges (left windows
        closing now, right windows closing now); they hold points of the
        anchors' keys within a window size of the anchors, all before
        ``upto - grace``. Late points (``late_times``: the times of those held
        apart, whose panes are not their times) anchor windows too: their own left
        and right windows, which hold points of their keys within a window size of
        them, and may hold evicted points only. Points of other keys stay in RocksDB.
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
        if late_times is not None and late_times.shape[0]:
            low, high = int(late_times.min()) - size - 1, int(late_times.max()) + size + 2
            loaded += table.load_range(low, high, keys).shape[0]
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
        changed_keys, first = first_of_each(self.table.key_ids[changed])
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
        self.table.release(points.slots)
        points.keep(np.zeros(len(points), dtype=bool))
        self.pending = set()
        return results
