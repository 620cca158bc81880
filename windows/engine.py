"""All windows of a job over one partition: stream time, lateness and emission order.

``PartitionEngine`` is the pure core that replay and streaming share. It takes
columnar batches of one partition in arrival order and returns what they
emitted. Output is independent of how the input was cut into batches: results
come out ordered by ``(emitted_at, final before update, update tick, window,
start, end, key)``, keys ranked by ``key_order`` (a hash of the key text in jobs, so the
order does not depend on how key ids were handed out), and every emission
point is a function of the events alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from windows.aggregation import Values
from windows.definitions import SlidingWindows, WindowSpec
from windows.emission_runs import emission_runs
from windows.events import EventBatch, Int64Array
from windows.operator import WindowOperator
from windows.pane_store import PaneStore
from windows.pane_windows import PaneWindowOperator
from windows.results import BatchOutcome, Emission, WindowResults
from windows.sliding_windows import SlidingWindowOperator
from windows.sort_order import lex_order
from windows.stream_time import NO_TIME, stream_times

KeyOrder = Callable[[Int64Array], Int64Array]
#: Which windows of a window definition (by name) keep their trace links, given their values and their number: a
#: boolean mask, or None for none (``aggregation.TracedRows``).
TracedWindows = Callable[[str, Values, int], "np.ndarray | None"]


def by_id(key_ids: Int64Array) -> Int64Array:
    """The default key order: by key id."""
    return key_ids


def build_operator(spec: WindowSpec, index: int) -> WindowOperator:
    """The runtime operator for a window definition."""
    if isinstance(spec.definition, SlidingWindows):
        return SlidingWindowOperator(spec, index)
    return PaneWindowOperator(spec, index)


def emission_order(chunks: list[WindowResults], key_order: KeyOrder = by_id) -> list[WindowResults]:
    """Sort and interleave result chunks (each of one window and kind, in any order) into the engine's
    canonical emission order, one chunk per run of one window and kind."""
    return emission_plan(chunks, key_order).results()


def emission_plan(chunks: list[WindowResults], key_order: KeyOrder = by_id) -> Emission:
    """Sort result chunks (each of one window and kind, in any order; several may share them) into the
    engine's canonical emission order: one chunk per window and kind, and the runs that interleave them."""
    chunks = _by_window_and_kind([c for c in chunks if len(c)])
    if not chunks:
        return Emission()
    sizes = [len(c) for c in chunks]
    order = _emission_order(chunks, sizes, key_order)
    # each chunk's rows put in emission order once; its runs are then consecutive rows of it
    bounds = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    positions, runs = emission_runs(np.ascontiguousarray(order, dtype=np.int64), bounds)
    ends = bounds.tolist()
    ordered = [chunk.take(positions[ends[i] : ends[i + 1]]) for i, chunk in enumerate(chunks)]
    return Emission(ordered, runs)


def _emission_order(chunks: list[WindowResults], sizes: list[int], key_order: KeyOrder) -> Int64Array:
    """The rows of ``chunks`` (numbered across them in their order; one chunk per window and kind) in
    emission order: by ``(emitted_at, kind, tick, window, start, key)``, ties in row order.

    Final results usually close a fixed time after their start (``emitted_at - start`` is the same for
    every row of a final chunk, which has no ticks): then a final's start follows from its emission
    time and window, and the finals sort by ``(emitted_at, window, key)`` alone, which packs into one
    number where the full order takes two. The updates are sorted on their own, and the two merged by
    emission time, finals first (their kind comes before any tick)."""
    bounds = np.cumsum([0, *sizes])
    finals = [i for i, chunk in enumerate(chunks) if chunk.final]
    if not finals or not all(_fixed_delay(chunks[i]) for i in finals):
        return _full_order(chunks, key_order)
    final_chunks = [chunks[i] for i in finals]
    final_rows = np.concatenate([np.arange(bounds[i], bounds[i + 1], dtype=np.int64) for i in finals])
    final_times = np.concatenate([c.emitted_at for c in final_chunks])
    window = np.repeat(
        np.asarray([c.window_index for c in final_chunks], dtype=np.int64), [len(c) for c in final_chunks]
    )
    keys = key_order(np.concatenate([c.key_ids for c in final_chunks]))
    final_order = lex_order((keys, window, final_times))
    if len(finals) == len(chunks):
        return final_rows[final_order]
    updates = [i for i, chunk in enumerate(chunks) if not chunk.final]
    update_chunks = [chunks[i] for i in updates]
    update_rows = np.concatenate([np.arange(bounds[i], bounds[i + 1], dtype=np.int64) for i in updates])
    update_order = _full_order(update_chunks, key_order)
    final_times = final_times[final_order]
    update_times = np.concatenate([c.emitted_at for c in update_chunks])[update_order]
    # an update's place: its rank among the updates plus the finals emitted by its time; the finals fill
    # the other places in their order
    placed = np.arange(update_times.shape[0]) + np.searchsorted(final_times, update_times, "right")
    order = np.empty(final_rows.shape[0] + update_rows.shape[0], dtype=np.int64)
    order[placed] = update_rows[update_order]
    free = np.ones(order.shape[0], dtype=bool)
    free[placed] = False
    order[free] = final_rows[final_order]
    return order


def _fixed_delay(chunk: WindowResults) -> bool:
    """Whether every row of ``chunk`` has the same tick and is emitted the same time after its start."""
    if chunk.ticks is not None:
        return False
    delay = chunk.emitted_at - chunk.starts
    return bool(delay.min() == delay.max())


def _full_order(chunks: list[WindowResults], key_order: KeyOrder) -> Int64Array:
    """The rows of ``chunks`` (numbered across them in their order) sorted by
    ``(emitted_at, kind, tick, window, start, key)``, ties in row order."""
    sizes = [len(c) for c in chunks]
    emitted_at = np.concatenate([c.emitted_at for c in chunks])
    ticks = np.concatenate([c.ticks if c.ticks is not None else np.zeros(len(c), dtype=np.int64) for c in chunks])
    starts = np.concatenate([c.starts for c in chunks])
    keys = key_order(np.concatenate([c.key_ids for c in chunks]))
    # (kind: final first, tick, window) as one number; a window's end follows from its start, so the
    # order of (emitted_at, kind, tick, window, start, end, key) is that of (emitted_at, minor, start, key)
    ticks = ticks - int(ticks.min())
    tick_span = int(ticks.max()) + 1
    windows = [c.window_index for c in chunks]
    window_span = max(windows) - min(windows) + 1
    kind = np.repeat([0 if c.final else 1 for c in chunks], sizes)
    window = np.repeat(np.asarray(windows, dtype=np.int64) - min(windows), sizes)
    minor = (kind * tick_span + ticks) * window_span + window
    minor_span = 2 * tick_span * window_span
    first = int(emitted_at.min())
    if (int(emitted_at.max()) - first + 1).bit_length() + minor_span.bit_length() <= 62:
        return lex_order((keys, starts, (emitted_at - first) * minor_span + minor))
    return lex_order((keys, starts, minor, emitted_at))


def _by_window_and_kind(chunks: list[WindowResults]) -> list[WindowResults]:
    """One chunk per window and kind: chunks that share them joined."""
    groups: dict[tuple[int, bool], list[WindowResults]] = {}
    for chunk in chunks:
        groups.setdefault((chunk.window_index, chunk.final), []).append(chunk)
    if len(groups) == len(chunks):
        return chunks
    return [group[0] if len(group) == 1 else WindowResults.concat(group) for group in groups.values()]


class PartitionEngine:
    """Window state and stream time of one source partition."""

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        partition: int = 0,
        key_order: KeyOrder = by_id,
        traced: TracedWindows | None = None,
    ) -> None:
        self.specs = tuple(specs)
        self.partition = partition
        self.key_order = key_order  # sort rank of each key id (ties in time, window and bounds go by it)
        self.operators = [build_operator(spec, i) for i, spec in enumerate(self.specs)]
        self._fields = [operator.table.aggregation.batch_fields() for operator in self.operators]
        if traced is not None:  # else every window keeps its trace links
            for operator in self.operators:
                operator.traced_rows = partial(traced, operator.spec.name)
        self.stream_time = NO_TIME

    def process(self, batch: EventBatch) -> BatchOutcome:
        """Apply a batch of this partition's events, in arrival order."""
        outcome = BatchOutcome()
        n = len(batch)
        if n == 0:
            return outcome
        st_before, st_after = stream_times(batch.ts, self.stream_time)
        late_everywhere = np.ones(n, dtype=bool)
        chunks: list[WindowResults] = []
        for operator, (numbers, hashes) in zip(self.operators, self._fields):
            # each operator sees only the columns its aggregates read: it takes no copy of the others
            emitted, late_all, late_some = operator.process(
                batch.only(numbers, hashes), st_before, st_after, self.stream_time
            )
            chunks.extend(emitted)
            late_everywhere &= late_all
            late_count = int(late_some.sum())
            if late_count:
                outcome.late_by_window[operator.spec.name] = late_count
        self.stream_time = int(st_after[-1])
        outcome.emission = emission_plan(chunks, self.key_order)
        late = np.flatnonzero(late_everywhere)
        outcome.late = late.astype(np.int64)
        outcome.applied = n - int(late.shape[0])
        if late.shape[0]:
            closes = np.max([op.last_close(batch.ts[late]) for op in self.operators], axis=0)
            outcome.late_reasons = [
                f"late for every window: stream time {st} had reached {close}, "
                f"the close point of the last window containing {ts}"
                for st, close, ts in zip(st_before[late].tolist(), closes.tolist(), batch.ts[late].tolist())
            ]
        return outcome

    def advance(self, stream_time: int) -> BatchOutcome:
        """Move stream time forward with no event (an idle partition's clock): emit what closes."""
        if stream_time <= self.stream_time or self.stream_time == NO_TIME:
            return BatchOutcome()
        chunks: list[WindowResults] = []
        for operator in self.operators:
            chunks.extend(operator.advance(self.stream_time, stream_time))
        self.stream_time = stream_time
        return BatchOutcome(emission=emission_plan(chunks, self.key_order))

    def close_all(self) -> BatchOutcome:
        """Close and emit every window still open, as if stream time jumped past them all."""
        chunks = [r for op in self.operators if (r := op.close_everything()) is not None and len(r)]
        return BatchOutcome(emission=emission_plan(chunks, self.key_order))

    def attach(self, store: PaneStore) -> None:
        """Let panes be evicted to ``store`` (where they are persisted) and read back from it when needed."""
        for operator in self.operators:
            operator.attach(store)

    def evict(self, budget: int) -> int:
        """Keep about ``budget`` panes in memory, shared among windows by their size; return panes dropped.

        Only right after the store has taken every change (panes changed since are refused)."""
        total = self.open_panes
        if total <= budget:
            return 0
        return sum(operator.evict(budget * len(operator.table) // total) for operator in self.operators)

    def key_ids_in_use(self) -> Int64Array:
        """Every key id this engine's in-memory state refers to."""
        return np.unique(np.concatenate([op.key_ids_in_use() for op in self.operators] or [np.zeros(0, np.int64)]))

    def keys_renumbered(self, mapping: Int64Array) -> None:
        """Key ids changed: ``mapping[old id]`` is the new id of every key in use."""
        for operator in self.operators:
            operator.keys_renumbered(mapping)

    @property
    def panes_evicted(self) -> int:
        """Panes dropped from memory so far."""
        return sum(op.table.evicted_total for op in self.operators)

    @property
    def panes_loaded(self) -> int:
        """Panes read back from the store so far."""
        return sum(op.table.loaded_total for op in self.operators)

    def changes_pending(self) -> tuple[int, int]:
        """Panes changed, and panes released, since the store last took the changes (what a commit would
        write and delete)."""
        pending = [op.table.changes_pending() for op in self.operators]
        return sum(changed for changed, _ in pending), sum(released for _, released in pending)

    @property
    def open_panes(self) -> int:
        """Number of panes (slices of window state) held in memory across all windows."""
        return sum(len(op.table) for op in self.operators)
