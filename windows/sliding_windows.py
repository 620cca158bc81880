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
from windows.events import Int64Array
from windows.operator import WindowOperator
from windows.pane_state import MergePlan
from windows.results import WindowResults
from windows.stream_time import NO_TIME


@dataclass(frozen=True)
class _Points:
    """Live points sorted by (key, time), with positions that order them in one int64 axis."""

    slots: Int64Array
    keys: Int64Array
    times: Int64Array
    positions: Int64Array
    key_rank: Int64Array
    base: int
    span: int

    def locate(self, rank: Int64Array, t: Int64Array, side: str) -> Int64Array:
        return np.searchsorted(self.positions, rank * self.span + (t - self.base), side=side)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class _Windows:
    """Candidate windows: key rank, inclusive bounds and the point range they hold."""

    rank: Int64Array
    starts: Int64Array
    ends: Int64Array
    lo: Int64Array
    hi: Int64Array

    def select(self, mask: np.ndarray) -> _Windows:
        return _Windows(self.rank[mask], self.starts[mask], self.ends[mask], self.lo[mask], self.hi[mask])

    @staticmethod
    def join(a: _Windows, b: _Windows) -> _Windows:
        return _Windows(
            *(
                np.concatenate([x, y])
                for x, y in zip((a.rank, a.starts, a.ends, a.lo, a.hi), (b.rank, b.starts, b.ends, b.lo, b.hi))
            )
        )


class SlidingWindowOperator(WindowOperator):
    """Kafka Streams ``SlidingWindows`` semantics over one partition."""

    def __init__(self, spec: WindowSpec, index: int) -> None:
        definition = spec.definition
        assert isinstance(definition, SlidingWindows)
        super().__init__(spec, index, 1)
        self.size = definition.size
        self.grace = definition.grace

    # ---- geometry --------------------------------------------------------------------
    def pane_starts(self, ts: Int64Array) -> Int64Array:
        return ts

    def first_close(self, ts: Int64Array) -> Int64Array:
        return ts + 1 + self.grace

    def last_close(self, ts: Int64Array) -> Int64Array:
        return ts + self.size + 1 + self.grace

    def _close_of_end(self, ends: Int64Array) -> Int64Array:
        return ends + 1 + self.grace

    # ---- window derivation -------------------------------------------------------------
    def _points(self, slots: Int64Array) -> _Points:
        keys = self.table.key_ids[slots]
        times = self.table.panes[slots]
        order = np.lexsort((times, keys))
        slots, keys, times = slots[order], keys[order], times[order]
        if keys.shape[0]:
            rank = np.concatenate([[0], np.cumsum(keys[1:] != keys[:-1])]).astype(np.int64)
            base = int(times.min()) - self.size - 2
            span = int(times.max()) - base + self.size + 3
        else:
            rank, base, span = np.zeros(0, dtype=np.int64), 0, 1
        return _Points(slots, keys, times, rank * span + (times - base), rank, base, span)

    def _candidates(self, points: _Points, anchors: Int64Array) -> _Windows:
        """Left and (existing) right windows anchored at the given point indices."""
        rank, t = points.key_rank[anchors], points.times[anchors]
        left = _Windows(
            rank,
            t - self.size,
            t,
            points.locate(rank, t - self.size, "left"),
            points.locate(rank, t, "right"),
        )
        lo = points.locate(rank, t + 1, "left")
        within = points.locate(rank, t + self.size, "right")
        hi = points.locate(rank, t + 1 + self.size, "right")
        exists = (within > lo) & (hi == within)  # a later point in (t, t+size], none at t+1+size
        right = _Windows(rank, t + 1, t + 1 + self.size, lo, hi).select(exists)
        return _Windows.join(left, right)

    def _emit_windows(self, points: _Points, windows: _Windows, *, final: bool, now: int) -> WindowResults | None:
        n = int(windows.rank.shape[0])
        if n == 0:
            return None
        plan = MergePlan(
            n,
            windows.ends + 1,
            ranges=(points.slots, points.times + 1, windows.lo, windows.hi),
        )
        values = self.table.aggregation.values(plan)
        key_of_rank = points.keys[np.searchsorted(points.key_rank, windows.rank)]
        emitted_at = self._close_of_end(windows.ends) if final else np.full(n, now, dtype=np.int64)
        return self._results(
            final=final,
            key_ids=key_of_rank,
            starts=windows.starts,
            ends=windows.ends,
            emitted_at=emitted_at,
            values=values,
        )

    def close(self, upto: int) -> WindowResults | None:
        if upto <= self.closed_upto:
            return None
        live = self.table.live_slots()
        times = self.table.panes[live]
        low = self.closed_upto
        # Anchors whose left or right window closes in (closed_upto, upto]; only their
        # keys' points need sorting, which keeps frequent small closes cheap.
        left_close = times + 1 + self.grace
        right_close = times + self.size + 2 + self.grace
        near = ((left_close <= upto) & (left_close > low)) | ((right_close <= upto) & (right_close > low))
        results = None
        if near.any():
            keys = self.table.key_ids[live]
            involved = live[np.isin(keys, np.unique(keys[near]))]
            points = self._points(involved)
            p_times = points.times
            p_near = ((p_times + 1 + self.grace <= upto) & (p_times + 1 + self.grace > low)) | (
                (p_times + self.size + 2 + self.grace <= upto) & (p_times + self.size + 2 + self.grace > low)
            )
            windows = self._candidates(points, np.flatnonzero(p_near))
            closes = self._close_of_end(windows.ends)
            results = self._emit_windows(
                points, windows.select((closes <= upto) & (closes > low)), final=True, now=upto
            )
        dead = live[right_close <= upto]
        if dead.shape[0]:
            self.forget_pending(dead.tolist())
            self.table.release(dead.tolist())
        self.closed_upto = upto
        return results

    def updates(self, now: int) -> WindowResults | None:
        """For each key with new points, its newest left window ``[t_max - size, t_max]``.

        Kafka Streams would re-send every window a record falls into; with many
        records per window that multiplies output without adding information a
        consumer of "the last ``size`` as of now" needs. Every window is still
        emitted once, in full, when it closes.
        """
        if not self.pending:
            return None
        changed = np.fromiter(sorted(self.pending), dtype=np.int64)
        self.pending = set()
        live = self.table.live_slots()
        live = live[np.isin(self.table.key_ids[live], self.table.key_ids[changed])]
        points = self._points(live)
        if points.slots.shape[0] == 0:
            return None
        newest = np.flatnonzero(np.diff(points.key_rank, append=points.key_rank[-1] + 1))
        rank, t = points.key_rank[newest], points.times[newest]
        windows = _Windows(
            rank, t - self.size, t, points.locate(rank, t - self.size, "left"), points.locate(rank, t, "right")
        )
        return self._emit_windows(points, windows.select(self._close_of_end(windows.ends) > now), final=False, now=now)

    def close_everything(self) -> WindowResults | None:
        live = self.table.live_slots()
        points = self._points(live)
        windows = self._candidates(points, np.arange(points.slots.shape[0]))
        if self.closed_upto != NO_TIME:
            windows = windows.select(self._close_of_end(windows.ends) > self.closed_upto)
        results = self._emit_windows(points, windows, final=True, now=0)
        self.table.release(live.tolist())
        self.pending = set()
        return results
