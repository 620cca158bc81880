"""What the engine emits: window results in columns, and the late-event report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from windows.events import Float64Array, Int64Array

Values = dict[str, "Int64Array | Float64Array"]
#: Trace entries of result rows, shape (rows, links, 5), whole or in parts (see ``WindowResults``).
TraceEntries = Int64Array | tuple[Int64Array, ...]


@dataclass(frozen=True)
class WindowResults:
    """Results of one window definition and kind (final or update), in emission order once the engine has
    sorted them (``engine.emission_plan``; an operator's chunks are in no particular order).

    ``ends`` are as reported to users: exclusive for tumbling and hopping
    windows, inclusive for sliding windows. ``emitted_at`` is the partition's
    stream time at emission: a window's close point for final results, the
    stream time of the update tick for updates. NaN in ``values`` means the
    window had no value for that output (e.g. ``max`` of a field no event had).
    ``ticks`` orders updates that share an ``emitted_at`` but not a tick (with
    ``update_interval: 0`` every event has its own): each update's tick in
    processing order within the batch (None: all the same tick).

    A window with trace links (``WindowSpec.trace_links``) keeps them only for
    the rows its operator was asked to trace (``TracedRows``): ``traces`` holds
    those rows' newest trace entries, shape (kept, links, 5) (the layout of
    ``pane_state.TraceColumn``), and ``trace_rows`` each row's index into
    ``traces``, -1 for a row that kept none. Taking rows takes ``trace_rows``
    and leaves ``traces`` as it is, so reordering results never copies their
    trace entries; joining chunks (``concat``) keeps their ``traces`` as parts
    (a tuple of such arrays, whose entries ``trace_rows`` numbers one after
    another), so joining copies none either. Both are None for a window
    without trace links.
    """

    window: str
    window_index: int
    final: bool
    key_ids: Int64Array
    starts: Int64Array
    ends: Int64Array
    emitted_at: Int64Array
    values: Values
    ticks: Int64Array | None = None
    trace_rows: Int64Array | None = None
    traces: TraceEntries | None = None

    def __len__(self) -> int:
        return int(self.key_ids.shape[0])

    def take(self, index: Int64Array) -> WindowResults:
        """The results at positions ``index`` (``take`` of each column: it gathers faster than indexing)."""
        return WindowResults(
            window=self.window,
            window_index=self.window_index,
            final=self.final,
            key_ids=self.key_ids.take(index),
            starts=self.starts.take(index),
            ends=self.ends.take(index),
            emitted_at=self.emitted_at.take(index),
            values={name: column.take(index) for name, column in self.values.items()},
            ticks=self.ticks.take(index) if self.ticks is not None else None,
            trace_rows=self.trace_rows.take(index) if self.trace_rows is not None else None,
            traces=self.traces,
        )

    def rows(self, start: int, stop: int) -> WindowResults:
        """The results at positions ``[start, stop)``, as views of these columns."""
        return WindowResults(
            window=self.window,
            window_index=self.window_index,
            final=self.final,
            key_ids=self.key_ids[start:stop],
            starts=self.starts[start:stop],
            ends=self.ends[start:stop],
            emitted_at=self.emitted_at[start:stop],
            values={name: column[start:stop] for name, column in self.values.items()},
            ticks=self.ticks[start:stop] if self.ticks is not None else None,
            trace_rows=self.trace_rows[start:stop] if self.trace_rows is not None else None,
            traces=self.traces,
        )

    @staticmethod
    def concat(chunks: list[WindowResults]) -> WindowResults:
        """The results of several chunks of one window and kind, in their order (a chunk without ticks counts
        as tick 0 beside chunks with them)."""
        first = chunks[0]
        trace_rows, traces = _joined_traces(chunks)
        ticks = None
        if any(c.ticks is not None for c in chunks):
            ticks = np.concatenate([c.ticks if c.ticks is not None else np.zeros(len(c), np.int64) for c in chunks])
        return WindowResults(
            window=first.window,
            window_index=first.window_index,
            final=first.final,
            key_ids=np.concatenate([c.key_ids for c in chunks]),
            starts=np.concatenate([c.starts for c in chunks]),
            ends=np.concatenate([c.ends for c in chunks]),
            emitted_at=np.concatenate([c.emitted_at for c in chunks]),
            values={name: np.concatenate([c.values[name] for c in chunks]) for name in first.values},
            ticks=ticks,
            trace_rows=trace_rows,
            traces=traces,
        )

    def trace_entries(self) -> Int64Array | None:
        """Each row's trace entries, shape (rows, links, 5), a row that kept none all empty entries (seq
        ``NO_SEQ``); None without trace links."""
        if self.trace_rows is None or self.traces is None:
            return None
        traces = np.concatenate(self.traces) if isinstance(self.traces, tuple) else self.traces
        entries = np.full((len(self), *traces.shape[1:]), np.iinfo(np.int64).min, dtype=np.int64)
        kept = self.trace_rows >= 0
        entries[kept] = traces[self.trace_rows[kept]]
        return entries


def _joined_traces(chunks: list[WindowResults]) -> tuple[Int64Array | None, TraceEntries | None]:
    """The ``trace_rows`` and ``traces`` of several chunks joined: the parts of each distinct ``traces`` once
    (chunks cut from one chunk share it), after the previous ones, each chunk's row indexes moved along with
    it; no entry is copied."""
    if any(c.trace_rows is None or c.traces is None for c in chunks):
        return None, None
    rows: list[Int64Array] = []
    parts: list[Int64Array] = []
    offsets: dict[int, int] = {}  # id of each distinct traces -> where its entries start
    at = 0
    for chunk in chunks:
        assert chunk.trace_rows is not None and chunk.traces is not None
        offset = offsets.get(id(chunk.traces))
        if offset is None:
            offset = offsets[id(chunk.traces)] = at
            own = chunk.traces if isinstance(chunk.traces, tuple) else (chunk.traces,)
            parts.extend(own)
            at += sum(int(part.shape[0]) for part in own)
        rows.append(np.where(chunk.trace_rows >= 0, chunk.trace_rows + offset, -1))
    return np.concatenate(rows), tuple(parts)


@dataclass(frozen=True)
class Emission:
    """Results in emission order, as one chunk per window and kind (``chunks``, each one's rows in emission
    order) and the runs that interleave them: ``runs[i] = (chunk, start, stop)`` says that the next results
    in emission order are rows ``[start, stop)`` of ``chunks[chunk]``.

    Whoever turns results into lines and decisions does it once per chunk, not once per run: a batch's
    results alternate between windows and kinds hundreds of times.
    """

    chunks: list[WindowResults] = field(default_factory=list)
    runs: list[tuple[int, int, int]] = field(default_factory=list)

    def results(self) -> list[WindowResults]:
        """The runs as chunks of their own, in emission order (views of ``chunks``' columns)."""
        return [self.chunks[chunk].rows(start, stop) for chunk, start, stop in self.runs]

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


@dataclass
class BatchOutcome:
    """Everything one engine step produced for a partition.

    ``emission`` holds the results in emission order (``results`` as one chunk per run). ``late`` holds the
    positions (in the processed batch) of events that were late for every window; ``late_reasons`` says
    why, one string per late event. ``late_by_window`` counts, per window name, events late for at least one
    window of that definition.
    """

    emission: Emission = field(default_factory=Emission)
    late: Int64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    late_reasons: list[str] = field(default_factory=list)
    late_by_window: dict[str, int] = field(default_factory=dict)
    applied: int = 0

    @property
    def results(self) -> list[WindowResults]:
        """The results in emission order, one chunk per run of one window and kind."""
        return self.emission.results()
