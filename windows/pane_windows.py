"""Tumbling and hopping windows over panes of ``gcd(size, step)`` milliseconds."""

from __future__ import annotations

import numpy as np

from windows import pane_spans
from windows.definitions import HoppingWindows, TumblingWindows, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.operator import WindowOperator
from windows.pane_state import MergePlan
from windows.pane_table import unique_pairs
from windows.results import WindowResults
from windows.sort_order import lex_order, stable_order
from windows.stream_time import END_OF_TIME, NO_TIME


class PaneWindowOperator(WindowOperator):
    """Epoch-aligned ``[start, start + size)`` windows starting every ``step`` ms."""

    def __init__(self, spec: WindowSpec, index: int) -> None:
        definition = spec.definition
        assert isinstance(definition, (TumblingWindows, HoppingWindows))
        super().__init__(spec, index, definition.pane)
        self.size = definition.size
        self.step = definition.step
        self.grace = definition.grace
        self.shares_panes = self.size != self.step
        # within a segment: per key id, the close point up to which its windows were emitted (NO_TIME: only
        # up to ``closed_upto``), and the key ids given one
        self._closed_of_key = np.full(0, NO_TIME, dtype=np.int64)
        self._keys_closed: list[Int64Array] = []
        # the same for key ids the array does not reach (see record_closed): sorted ids, and their close points
        self._far_keys = self._far_uptos = np.zeros(0, dtype=np.int64)

    # ---- geometry --------------------------------------------------------------------
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        return ts - np.mod(ts, self.table.pane_size)

    def _first_start(self, ts: Int64Array) -> Int64Array:
        return (np.floor_divide(ts - self.size, self.step) + 1) * self.step

    def _last_start(self, ts: Int64Array) -> Int64Array:
        return ts - np.mod(ts, self.step)

    def first_close(self, ts: Int64Array) -> Int64Array:
        return self._first_start(ts) + self.size + self.grace

    def last_close(self, ts: Int64Array) -> Int64Array:
        return self._last_start(ts) + self.size + self.grace

    def released_below(self) -> int:
        # a pane goes when its last window closes: at last_close(p) <= closed_upto, that is, when its
        # window start p - p mod step is at most closed_upto - size - grace
        if self.closed_upto == NO_TIME:
            return NO_TIME
        return ((self.closed_upto - self.size - self.grace) // self.step + 1) * self.step

    # ---- emission ----------------------------------------------------------------------
    def _windows_of(self, slots: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Every (slot, window start) pair for the windows containing each slot's pane, as the position in
        ``slots`` of the pair's slot, and the window's start."""
        panes = self.table.panes.take(slots)
        if not self.shares_panes:  # tumbling: a pane is its one window
            return np.arange(slots.shape[0], dtype=np.int64), panes
        first = self._first_start(panes)
        count = (self._last_start(panes) - first) // self.step + 1
        owners = np.repeat(np.arange(slots.shape[0], dtype=np.int64), count)
        offsets = np.arange(owners.shape[0]) - np.repeat(np.cumsum(count) - count, count)
        return owners, np.repeat(first, count) + offsets * self.step

    def _emit_windows(
        self, pair_slots: Int64Array, pair_starts: Int64Array, when: Int64Array | None = None
    ) -> WindowResults | None:
        """Windows merged from (slot, window start) pairs: final results, or updates at the tick ``when``
        of each pair."""
        if pair_slots.shape[0] == 0:
            return None
        keys = self.table.key_ids.take(pair_slots)
        panes = self.table.panes.take(pair_slots)
        # by window (key, start), its panes in time order; starts are whole steps and a pane's place in
        # its window whole panes (windows are epoch-aligned), so the columns sort in fewer bits as counts
        pane_size = self.table.pane_size
        order = lex_order(((panes - pair_starts) // pane_size, pair_starts // self.step, keys))
        pair_slots, pair_starts, keys, panes = (
            pair_slots.take(order),
            pair_starts.take(order),
            keys.take(order),
            panes.take(order),
        )
        first = np.ones(keys.shape[0], dtype=bool)  # the first pair of each window, in sorted order
        first[1:] = (keys[1:] != keys[:-1]) | (pair_starts[1:] != pair_starts[:-1])
        window_keys, window_starts = keys[first], pair_starts[first]
        groups = np.cumsum(first) - 1
        plan = MergePlan(
            int(window_keys.shape[0]),
            window_starts + self.size,
            groups=groups,
            slots=pair_slots,
            pane_ends=panes + pane_size,
        )
        merged = self._merge(plan)
        ends = window_starts + self.size
        if when is None:
            emitted_at = ends + self.grace
        else:
            emitted_at = np.empty(window_keys.shape[0], dtype=np.int64)
            emitted_at[groups] = when[order]
        return self._results(
            final=when is None,
            key_ids=window_keys,
            starts=window_starts,
            ends=ends,
            emitted_at=emitted_at,
            merged=merged,
        )

    def close(self, upto: int) -> WindowResults | None:
        if upto <= self.closed_upto:
            return None
        # the next window to close starts where the released panes end
        if self.closed_upto != NO_TIME and self.released_below() + self.size + self.grace > upto:
            self.closed_upto = upto
            return None
        loaded = self.table.load_range(NO_TIME, upto - self.grace)  # evicted panes of the windows closing now
        # no key has emitted less than ``closed_upto``: only panes with a window closing since are visited;
        # a pane whose last window has closed is released
        table = self.table
        near, dead = pane_spans.closing_panes(
            table.alive.view(np.uint8),
            table.panes,
            table.high_water,
            upto,
            self.closed_upto,
            self.size,
            self.step,
            self.grace,
        )
        results = self._emit_closing(near, np.asarray([upto], dtype=np.int64))
        self.forget_pending(dead)
        self.table.release(dead)
        self.closed_upto = upto
        if loaded.shape[0] and len(self.table) * 2 < self.table.capacity:
            # panes were read back only to close their windows: give their room back now, before the next
            # window or partition reads back its own (memory is short whenever panes were evicted)
            self.slots_moved(self.table.repack())
        return results

    # ---- partly-late events: per-key rounds ---------------------------------------------
    def _apply(
        self,
        batch: EventBatch,
        segment: Int64Array,
        needs_close: np.ndarray,
        st_before: Int64Array,
        emitted: list[WindowResults],
    ) -> tuple[Int64Array, Int64Array]:
        """Fold a segment's events (positions ``segment``) into the panes: first those that need no
        close, then, round by round, the others after closing their keys' windows up to the stream time
        they arrived at (see ``windows.operator``). Return the distinct slots touched, and each event's
        among them."""
        if segment.shape[0] == 0:
            return segment[:0], segment[:0]
        if not needs_close.any():
            return self._add(batch.rows(segment))
        on_time, late = segment[~needs_close], segment[needs_close]
        slots = np.empty(segment.shape[0], dtype=np.int64)  # each event's slot
        if on_time.shape[0]:
            touched, inverse = self._add(batch.rows(on_time))
            slots[~needs_close] = touched[inverse]
        keys, arrived = batch.key_ids[late], st_before[late]
        rounds = _rounds(keys, arrived)
        late_slots = np.empty(late.shape[0], dtype=np.int64)
        for r in range(int(rounds.max()) + 1):
            now = np.flatnonzero(rounds == r)
            round_keys, first = np.unique(keys[now], return_index=True)
            self._emit(emitted, self.close_keys(round_keys, arrived[now][first]))
            touched, inverse = self._add(batch.take(late[now]))
            late_slots[now] = touched[inverse]
        slots[needs_close] = late_slots
        return self.table.distinct(slots)

    def _panes_of(self, keys: Int64Array, below: int) -> Int64Array:
        """Slots of the panes in memory of ``keys`` (sorted, distinct), at least those starting before ``below``.

        Panes below ``released_below`` are gone, so those of a few keys are found by looking up each pane
        start in ``[released_below, below)`` (a few per key) instead of going through every pane in memory."""
        table = self.table
        low = self.released_below()
        if low != NO_TIME:
            pane_size = table.pane_size
            low -= low % pane_size
            count = max(0, -(-(below - low) // pane_size))
            if count * keys.shape[0] < len(table):
                starts = low + np.arange(count, dtype=np.int64) * pane_size
                # ``load_range`` read back what the store held of these keys' panes: the index has them all
                slots = table.index.lookup(np.repeat(keys, count), np.tile(starts, keys.shape[0]))
                return slots[slots >= 0]
        live = table.live_slots()
        return live[np.isin(table.key_ids.take(live), keys)]

    def _segment_closed(self) -> None:
        for keys in self._keys_closed:
            self._closed_of_key[keys] = NO_TIME
        self._keys_closed = []
        self._far_keys = self._far_uptos = np.zeros(0, dtype=np.int64)
        if self._closed_of_key.shape[0] > self._dense_reach():  # the table shrank: so does the array
            self._closed_of_key = np.full(0, NO_TIME, dtype=np.int64)

    def _dense_reach(self) -> int:
        """How far the per-key array may reach: its memory stays a small share of the table's."""
        return max(1 << 16, 4 * len(self.table))

    def record_closed(self, keys: Int64Array, uptos: Int64Array) -> None:
        """Within the segment, the windows of ``keys`` (distinct) closing by their ``uptos`` have been emitted.
        Kept by key id in an array where the ids are dense enough (they are the ids of a job's keys), else
        as sorted columns."""
        if keys.shape[0] == 0:
            return
        needed = int(keys.max()) + 1
        if int(keys.min()) < 0 or needed > self._dense_reach():
            # a key's later record is a later stream time: the largest of its records is its last
            all_keys = np.concatenate([self._far_keys, keys])
            all_uptos = np.concatenate([self._far_uptos, uptos])
            order = np.lexsort((all_uptos, all_keys))
            all_keys, all_uptos = all_keys[order], all_uptos[order]
            last = np.append(all_keys[1:] != all_keys[:-1], True)
            self._far_keys, self._far_uptos = all_keys[last], all_uptos[last]
            return
        if needed > self._closed_of_key.shape[0]:
            grown = np.full(max(needed, 2 * self._closed_of_key.shape[0], 1024), NO_TIME, dtype=np.int64)
            grown[: self._closed_of_key.shape[0]] = self._closed_of_key
            self._closed_of_key = grown
        self._closed_of_key[keys] = uptos
        self._keys_closed.append(keys)

    def close_keys(self, keys: Int64Array, uptos: Int64Array) -> WindowResults | None:
        """Emit the windows of each of ``keys`` (sorted, distinct) that close by its ``uptos`` and were not
        emitted yet, and record that (``record_closed``); release nothing (``close`` does)."""
        table = self.table
        below = int(uptos.max()) - self.grace  # every window closing by then ends by it: its panes start before
        table.load_range(NO_TIME, below, keys)  # evicted panes of the windows closing now
        slots = self._panes_of(keys, below)
        results = self._emit_closing(slots, uptos[np.searchsorted(keys, table.key_ids[slots])])
        self.record_closed(keys, uptos)
        return results

    def _emit_closing(self, slots: Int64Array, upto: Int64Array) -> WindowResults | None:
        """The windows containing the panes of ``slots`` that close after what their key has emitted and by
        the slot's ``upto`` (one entry: the same for all)."""
        return self._emit_windows(*self._closing_windows_of(slots, upto))

    def _closing_windows_of(self, slots: Int64Array, upto: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Like ``_windows_of``, only the pairs whose window closes after what the slot's key has emitted and
        by the slot's ``upto``, as the pair's slot and window start: a window starting at ``s`` closes at
        ``s + size + grace``, so each pane's closing windows are one run of its window starts, found in C
        without listing the others (most of a pane's windows are not closing at any one close)."""
        return pane_spans.closing_pairs(
            np.ascontiguousarray(slots, dtype=np.int64),
            self.table.panes,
            self.table.key_ids,
            np.ascontiguousarray(upto, dtype=np.int64),
            self.closed_upto,
            self._closed_of_key if self._keys_closed else self._closed_of_key[:0],
            self._far_keys,
            self._far_uptos,
            self.size,
            self.step,
            self.grace,
        )

    def _updates(self, changed: Int64Array, when: Int64Array) -> WindowResults | None:
        owners, changed_starts = self._windows_of(changed)
        pair_when = when[owners]
        open_ = changed_starts + self.size + self.grace > pair_when
        targets_keys, targets_starts, inverse = unique_pairs(
            self.table.key_ids[changed[owners[open_]]], changed_starts[open_]
        )
        if targets_keys.shape[0] == 0:
            return None
        targets_when = np.empty(targets_keys.shape[0], dtype=np.int64)
        targets_when[inverse] = pair_when[open_]  # one tick per window: its key changed before one tick only
        # The panes of each target window, found through the pane index (not by scanning all state).
        pane_size = self.table.pane_size
        per_window = self.size // pane_size
        starts = np.repeat(targets_starts, per_window)
        panes = starts + np.tile(np.arange(per_window, dtype=np.int64) * pane_size, targets_keys.shape[0])
        slots = self.table.find(np.repeat(targets_keys, per_window), panes)
        found = slots >= 0
        return self._emit_windows(slots[found], starts[found], np.repeat(targets_when, per_window)[found])

    def close_everything(self) -> WindowResults | None:
        self.table.load_range(NO_TIME, END_OF_TIME)
        live = self.table.live_slots()
        results = self._emit_closing(live, np.asarray([END_OF_TIME], dtype=np.int64))
        self.table.release(live)
        self.pending = set()
        return results


def _rounds(keys: Int64Array, arrived: Int64Array) -> Int64Array:
    """Per event (in arrival order), how many distinct arrival stream times its key had before it among
    these events: the round in which it is applied."""
    order = stable_order(keys)
    k, t = keys[order], arrived[order]
    first_of_key = np.ones(k.shape[0], dtype=bool)
    first_of_key[1:] = k[1:] != k[:-1]
    new_time = first_of_key.copy()
    new_time[1:] |= t[1:] != t[:-1]
    count = np.cumsum(new_time)
    rounds = np.empty(k.shape[0], dtype=np.int64)
    rounds[order] = count - count[first_of_key][np.cumsum(first_of_key) - 1]
    return rounds
