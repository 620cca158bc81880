"""The life of one window definition within one partition: apply, close, emit.

``WindowOperator`` holds what is common to every window type: lateness per
event, the split of a batch into segments, and the tick of each update (the
engine sorts what all windows emitted, ``engine.emission_plan``). Within
a batch the engine applies events in bulk, which is exact because the batch
is cut wherever per-event processing would have observed something in
between: at every update tick of an ``emit: update`` window. Within a
segment, an event on time for all its windows can be applied before any
close (every window holding it closes after it arrives), so all such events
go in together. An event late for some (but not all) of its windows needs the
windows that closed before it arrived emitted without it (a subclass may
prove that none could hold it, see ``close_needed``). Keys are independent, so
those closes are per key. Tumbling and hopping windows do them in *rounds*
(``PaneWindowOperator._apply``): each round closes, for a set of keys, their
windows up to the stream time at which their next such event arrived
(``close_keys``), then applies those events. A segment takes as many
rounds as its busiest key has distinct arrival times of partly-late events,
not one pass per event. The close at the segment's end skips what the rounds
emitted. (Sliding windows need no rounds: they hold such events apart, each
with the stream time it arrived at, for one close of their keys; see
``SlidingWindowOperator._apply``.)

An update tick needs no cut when the events after it, up to the next cut,
have no key in common with the events applied since the last update emission:
the windows the tick updates are then the same at the next cut, so the tick's
updates are computed there, together with those of the other ticks that
waited, each stamped with its own tick time. A stream whose events touch different keys
(one change per key, as from an etcd watch) then costs one cut per fetched
batch instead of one per tick. Subclasses supply the window geometry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from itertools import chain

import numpy as np

from windows.aggregation import Aggregation, Merged, TracedRows
from windows.definitions import EmitMode, WindowSpec
from windows.events import EventBatch, Int64Array
from windows.pane_state import MergePlan
from windows.pane_store import PaneStore
from windows.pane_table import PaneTable
from windows.results import WindowResults
from windows.sort_order import stable_order
from windows.stream_time import NO_TIME

_NO_KEYS = np.zeros(0, dtype=np.int64)
_NO_KEYS.flags.writeable = False


class WindowOperator(ABC):
    """Runtime state and logic of one window definition over one partition's keys."""

    #: True when a pane feeds several windows, so a partly-late event may need its key's windows closed first.
    shares_panes: bool = True

    def __init__(self, spec: WindowSpec, index: int, pane_size: int) -> None:
        self.spec = spec
        self.index = index
        self.table = PaneTable(Aggregation(spec.aggregates, spec.trace_links), pane_size)
        self.closed_upto = NO_TIME  # windows closing at or before this were emitted
        self.pending: set[int] = set()  # slots changed since the last update emission
        self.traced_rows: TracedRows | None = None  # the windows that keep their trace links (None: every one)

    # ---- geometry supplied by subclasses ---------------------------------------------
    @abstractmethod
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        """Start of the pane holding each timestamp."""

    @abstractmethod
    def first_close(self, ts: Int64Array) -> Int64Array:
        """Close point of the earliest-closing window that can contain each timestamp."""

    @abstractmethod
    def last_close(self, ts: Int64Array) -> Int64Array:
        """Close point of the latest-closing window that can contain each timestamp."""

    def release_point(self, panes: Int64Array) -> Int64Array:
        """The stream time at which a close releases each pane (every window that can hold it has closed)."""
        return self.last_close(panes)

    @abstractmethod
    def released_below(self) -> int:
        """A pane start such that every pane starting before it has been released (``close`` up to
        ``closed_upto`` released it), and no such pane can be made again: an event in one is late for every
        window. ``NO_TIME`` before the first close. A store deletes the panes below it as one range."""

    def close_needed(self, batch: EventBatch, partly_late: np.ndarray) -> np.ndarray:
        """Which partly-late events need their keys' windows closed up to their arrival before they are
        applied (conservative: all)."""
        return partly_late

    def panes_created(self, slots: Int64Array) -> None:
        """Hook: ``slots`` were just created (subclasses that index panes override it)."""
        return None

    @abstractmethod
    def close(self, upto: int) -> WindowResults | None:
        """Emit windows closing in ``(closed_upto, upto]`` (that a segment's earlier closes of some keys did
        not emit), release dead panes."""

    @abstractmethod
    def _updates(self, changed: Int64Array, when: Int64Array) -> WindowResults | None:
        """Emit, for each slot in ``changed`` (sorted), the windows containing it that are still open at
        its update tick ``when``, stamped with that tick."""

    def updates(self, now: int, boundary: int = 0) -> WindowResults | None:
        """Emit open windows containing panes changed since the last update, for the tick at stream time
        ``now`` found at position ``boundary`` of the batch (see ``_tick_order``)."""
        pending, self.pending = self.pending, set()
        return self._tick_updates([(pending, now, boundary)])

    def _tick_order(self, boundary: int) -> int:
        """Where a tick at ``boundary`` (before the batch's event there) goes among the batch's updates of
        equal stream time: an every-event tick (interval 0) belongs to the event before the boundary, so it
        comes before a timed tick found at the same boundary, as when events are processed one by one."""
        return 2 * boundary + (1 if self.spec.update_interval else 0)

    def _segments(self, batch: EventBatch, cuts: list[int], ticks: np.ndarray) -> list[tuple[int, list[int]]]:
        """The batch's segments: each one's end, and the update ticks within it whose emission waits for
        that end (events after such a tick, up to the next cut, share no key with those applied since the
        last update emission). A tick at 0 is the one the batch opens with, for updates still pending.
        ``ticks`` are the ticks that may wait: not those where a partly-late event needs windows closed."""
        n = len(batch)
        if not ticks[:n].any():
            return [(end, []) for end in cuts]
        keys = batch.key_ids.tolist()
        seen = self._keys_of(self.pending)
        segments: list[tuple[int, list[int]]] = []
        waiting: list[int] = []
        if ticks[0]:  # the tick the batch opens with, for what the previous batch left pending
            if seen.isdisjoint(keys[: cuts[0]]):
                waiting.append(0)
            else:
                seen = set()  # emitted before the batch
        start = 0
        for i, end in enumerate(cuts):
            seen.update(keys[start:end])
            tick = bool(ticks[end])
            if tick and (end == n or seen.isdisjoint(keys[end : cuts[i + 1]])):
                waiting.append(end)  # at the batch's end: emitted with the others, at the close of the segment
                if end == n:
                    segments.append((end, waiting))
            else:
                segments.append((end, waiting))
                waiting = []
                if tick:
                    seen = set()
            start = end
        return segments

    def _split_pending(
        self, touched: Int64Array, inverse: Int64Array, segment: Int64Array, ticks: list[int]
    ) -> list[tuple[set[int], int]]:
        """Add the ``touched`` slots (``inverse``: each event's among them, ``segment``: the events' batch
        positions) to the pending updates. With waiting ``ticks`` in the segment, take out each tick's
        share (the slots touched before it) and return the shares with their ticks."""
        if not ticks:
            self.pending.update(touched.tolist())
            return []
        tick_of_slot = np.empty(touched.shape[0], dtype=np.int64)
        tick_of_slot[inverse] = np.searchsorted(np.asarray(ticks, dtype=np.int64), segment, "right")
        shares: list[tuple[set[int], int]] = []
        for i, boundary in enumerate(ticks):
            share = set(touched[tick_of_slot == i].tolist())
            if i == 0:
                share |= self.pending
            shares.append((share, boundary))
        self.pending = set(touched[tick_of_slot == len(ticks)].tolist())
        return shares

    def _tick_updates(self, ticks: list[tuple[set[int], int, int]]) -> WindowResults | None:
        """The updates of one or more ticks at once: ``(slots changed before the tick, its stream time, its
        boundary in the batch)`` each, the slots of different ticks belonging to different keys."""
        sizes = [len(slots) for slots, _, _ in ticks]
        if not sum(sizes):
            return None
        changed = np.fromiter(chain.from_iterable(slots for slots, _, _ in ticks), dtype=np.int64, count=sum(sizes))
        when = np.repeat(np.asarray([now for _, now, _ in ticks], dtype=np.int64), sizes)
        orders = [self._tick_order(boundary) for _, _, boundary in ticks]
        tick_orders = np.repeat(np.asarray(orders, dtype=np.int64), sizes)
        # A slot a close up to the tick's stream time releases is no update of that tick: one event at a
        # time, that close comes first. A tick waiting for its segment's end meets such slots unreleased.
        kept = self.release_point(self.table.panes[changed]) > when
        if not kept.all():
            changed, when, tick_orders = changed[kept], when[kept], tick_orders[kept]
        order = stable_order(changed)
        results = self._updates(changed[order], when[order]) if changed.shape[0] else None
        if results is None:
            return None
        if len(ticks) == 1:
            return replace(results, ticks=np.full(len(results), orders[0], dtype=np.int64))
        # each result's tick, through its key (a key changed before one of these ticks only)
        tick_of_key = dict(zip(self.table.key_ids[changed].tolist(), tick_orders.tolist()))
        rows = np.fromiter(map(tick_of_key.__getitem__, results.key_ids.tolist()), dtype=np.int64, count=len(results))
        return replace(results, ticks=rows)

    def _keys_of(self, slots: set[int]) -> set[int]:
        if not slots:
            return set()
        at = np.fromiter(slots, dtype=np.int64, count=len(slots))
        return set(self.table.key_ids[at].tolist())

    @abstractmethod
    def close_everything(self) -> WindowResults | None:
        """Emit every window that holds data and release all panes (end of input)."""

    # ---- shared processing -----------------------------------------------------------
    @property
    def emits_updates(self) -> bool:
        """Whether this window emits intermediate updates."""
        return self.spec.emit is EmitMode.UPDATE

    def process(
        self,
        batch: EventBatch,
        st_before: Int64Array,
        st_after: Int64Array,
        st_start: int,
    ) -> tuple[list[WindowResults], np.ndarray, np.ndarray]:
        """Apply a batch; return what it emitted, and per event: late for all / for some windows."""
        n = len(batch)
        late_all = st_before >= self.last_close(batch.ts)
        late_some = st_before >= self.first_close(batch.ts)
        needs_close = np.zeros(n, dtype=bool)  # partly late: windows closed before it must be emitted first
        if self.shares_panes:
            partly_late = late_some & ~late_all
            if partly_late.any():
                needs_close = self.close_needed(batch, partly_late)
        ticks = self._ticks(st_after, st_start)
        cuts = ticks.copy()
        cuts[0] = False
        cuts[n] = True
        waiting = ticks.copy()  # ticks that may wait: not one before an event that needs windows closed
        waiting[:n] &= ~needs_close
        emitted: list[WindowResults] = []
        segments = self._segments(batch, np.flatnonzero(cuts).tolist(), waiting)
        if n and ticks[0] and segments[0][1][:1] != [0]:
            self._emit(emitted, self.updates(st_start, 0))
        keep = ~late_all
        start = 0
        for end, deferred in segments:
            segment = np.arange(start, end)[keep[start:end]]
            touched, inverse = self._apply(batch, segment, needs_close[segment], st_before, emitted)
            if self.emits_updates:
                shares = self._split_pending(touched, inverse, segment, deferred)
                if shares:
                    ticked = [(slots, int(st_after[b - 1]) if b else st_start, b) for slots, b in shares]
                    self._emit(emitted, self._tick_updates(ticked))
            now = int(st_after[end - 1])
            self._emit(emitted, self.close(now))
            self._segment_closed()
            if ticks[end] and deferred[-1:] != [end]:
                self._emit(emitted, self.updates(now, end))
            start = end
        return self._finals_together(emitted), late_all, late_some

    def _ticks(self, st_after: Int64Array, st_start: int) -> np.ndarray:
        """Where a batch's update ticks fall: ``ticks[i]``, updates are due before event ``i`` (``i = n``:
        after the batch); none for a window that emits final results only."""
        n = st_after.shape[0]
        ticks = np.zeros(n + 1, dtype=bool)
        if self.emits_updates:
            interval = self.spec.update_interval
            if interval == 0:  # a tick after every event
                ticks[0] = bool(self.pending)
                ticks[1:] = True
            else:
                tick = np.floor_divide(st_after, interval)
                previous = np.empty_like(tick)
                previous[0] = st_start // interval if st_start != NO_TIME else tick[0]
                previous[1:] = tick[:-1]
                ticks[:n] = tick != previous
        return ticks

    def _finals_together(self, emitted: list[WindowResults]) -> list[WindowResults]:
        """The batch's final results as one chunk (the engine then interleaves fewer, longer chunks),
        followed by its update chunks."""
        finals = [chunk for chunk in emitted if chunk.final]
        if len(finals) <= 1:
            return emitted
        return [WindowResults.concat(finals), *(chunk for chunk in emitted if not chunk.final)]

    def _add(self, events: EventBatch) -> tuple[Int64Array, Int64Array]:
        touched, inverse = self.table.add(events, self.pane_starts(events.ts))
        if self.table.last_created.shape[0]:
            self.panes_created(self.table.last_created)
        return touched, inverse

    @abstractmethod
    def _apply(
        self,
        batch: EventBatch,
        segment: Int64Array,
        needs_close: np.ndarray,
        st_before: Int64Array,
        emitted: list[WindowResults],
    ) -> tuple[Int64Array, Int64Array]:
        """Fold a segment's events (positions ``segment``) into the panes, emitting into ``emitted`` the
        windows that must close before the events of ``needs_close`` (partly late) are applied. Return the
        distinct slots touched, and each event's among them."""

    def _segment_closed(self) -> None:
        """Hook: a segment's last close is done (a subclass drops what it kept for that segment)."""
        return None

    def advance(self, st_start: int, now: int) -> list[WindowResults]:
        """Stream time moved from ``st_start`` to ``now`` without an event: emit what that ticks and closes."""
        emitted: list[WindowResults] = []
        if self.emits_updates and st_start != NO_TIME:
            interval = self.spec.update_interval
            if interval == 0 or now // interval != st_start // interval:
                self._emit(emitted, self.updates(st_start))
        self._emit(emitted, self.close(now))
        return emitted

    @staticmethod
    def _emit(emitted: list[WindowResults], results: WindowResults | None) -> None:
        if results is not None and len(results):
            emitted.append(results)

    def _merge(self, plan: MergePlan) -> Merged:
        """The values of the windows ``plan`` makes, with the trace links of those ``traced_rows`` picks."""
        return self.table.aggregation.values(plan, self.traced_rows)

    def _results(
        self,
        *,
        final: bool,
        key_ids: Int64Array,
        starts: Int64Array,
        ends: Int64Array,
        emitted_at: Int64Array,
        merged: Merged,
    ) -> WindowResults:
        # in no particular order: the engine sorts every batch's results once (``emission_plan``)
        return WindowResults(
            self.spec.name,
            self.index,
            final,
            key_ids,
            starts,
            ends,
            emitted_at,
            merged.values,
            trace_rows=merged.trace_rows,
            traces=merged.traces,
        )

    # ---- memory: evicting panes to the store and reading them back -------------------
    def attach(self, store: PaneStore) -> None:
        """Let this window's panes be evicted to ``store`` and read back from it."""
        self.table.attach(store, self.index)

    def evict(self, budget: int) -> int:
        """Keep at most ``budget`` panes in memory, dropping the least recently touched of those the store
        holds as they are (panes changed since the last commit, or awaiting an update emission, stay).
        Return how many were dropped."""
        table = self.table
        excess = len(table) - budget
        if excess <= 0 or table.store is None:
            return 0
        live = table.live_slots()
        kept = table.changed[live]  # not yet in the store
        if self.pending:  # or awaiting an update emission
            kept |= np.isin(live, np.fromiter(self.pending, dtype=np.int64, count=len(self.pending)))
        live = live[~kept]
        victims = live[stable_order(table.touched[live])[:excess]]
        table.evict(victims)
        if len(table) * 2 < table.capacity:
            self.slots_moved(table.repack())
        else:
            self.slots_moved(None)
        return int(victims.shape[0])

    def slots_moved(self, mapping: Int64Array | None) -> None:
        """Slots were evicted and, with a ``mapping`` (old slot -> new), renumbered."""
        if mapping is not None and self.pending:
            self.pending = {int(mapping[slot]) for slot in self.pending}

    def keys_renumbered(self, mapping: Int64Array) -> None:
        """Key ids changed (old id -> new id, for every key of a pane in memory)."""
        table = self.table
        live = table.live_slots()
        table.key_ids[live] = mapping[table.key_ids[live]]
        table.reindex()

    def key_ids_in_use(self) -> Int64Array:
        """Key ids of the panes in memory."""
        return self.table.key_ids[self.table.live_slots()]

    def forget_pending(self, slots: Int64Array) -> None:
        """Drop released slots from the update set."""
        if not self.pending:
            return
        if 8 * len(self.pending) >= slots.shape[0]:
            self.pending.difference_update(slots.tolist())
            return
        # a few pending slots among many released (the usual close): look each pending one up instead
        pending = np.fromiter(self.pending, dtype=np.int64, count=len(self.pending))
        released = np.zeros(self.table.capacity, dtype=bool)
        released[slots] = True
        self.pending.difference_update(pending[released[pending]].tolist())
