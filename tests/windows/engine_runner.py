"""Helpers that drive a PartitionEngine the way the job pipeline does, for tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tests.windows.reference_model import Event
from windows.definitions import WindowSpec
from windows.engine import PartitionEngine, TracedWindows
from windows.events import EventBatch
from windows.pane_state import TRACE_HI, TRACE_LO, TRACE_ORIGIN
from windows.results import WindowResults


def to_batch(events: Sequence[Event], fields: Sequence[str]) -> EventBatch:
    """Columns of ``events``; missing values become NaN, distinct hashes use the value itself."""
    numbers = {
        f: np.array([e.values.get(f, math.nan) if e.values.get(f) is not None else math.nan for e in events])
        for f in fields
    }
    hashes = {
        f: np.array(
            [0 if e.values.get(f) is None else int(e.values[f] * 4) + 1_000_003 for e in events], dtype=np.int64
        )
        for f in fields
    }
    return EventBatch(
        ts=np.array([e.ts for e in events], dtype=np.int64),
        key_ids=np.array([e.key for e in events], dtype=np.int64),
        seq=np.array([e.seq for e in events], dtype=np.int64),
        numbers=numbers,
        hashes=hashes,
    )


def run_engine(
    specs: Sequence[WindowSpec],
    events: Sequence[Event],
    batch_sizes: Sequence[int] = (10**9,),
    fields: Sequence[str] = ("v",),
    close_all: bool = True,
) -> tuple[list[WindowResults], list[int]]:
    """Feed ``events`` in batches cycling through ``batch_sizes``; return emitted chunks and late seqs."""
    engine = PartitionEngine(specs)
    chunks: list[WindowResults] = []
    late: list[int] = []
    position, turn = 0, 0
    while position < len(events):
        size = max(1, batch_sizes[turn % len(batch_sizes)])
        part = list(events[position : position + size])
        batch = to_batch(part, fields)
        outcome = engine.process(batch)
        chunks.extend(outcome.results)
        late.extend(batch.seq[outcome.late].tolist())
        position += size
        turn += 1
    if close_all:
        chunks.extend(engine.close_all().results)
    return chunks, late


def flatten(chunks: Sequence[WindowResults], *, final: bool | None = True) -> list[tuple[object, ...]]:
    """``(window, key, start, end, emitted_at, values)`` rows in emission order."""
    rows: list[tuple[object, ...]] = []
    for chunk in chunks:
        if final is not None and chunk.final != final:
            continue
        for i in range(len(chunk)):
            values = {}
            for name, column in chunk.values.items():
                if name.startswith("__"):
                    continue
                value = float(column[i])
                values[name] = None if math.isnan(value) else value
            rows.append(
                (
                    chunk.window,
                    int(chunk.key_ids[i]),
                    int(chunk.starts[i]),
                    int(chunk.ends[i]),
                    int(chunk.emitted_at[i]),
                    values,
                )
            )
    return rows


def traced(events: list[Event]) -> EventBatch:
    batch = to_batch(events, ("v",))
    seq = batch.seq
    hashes = {**batch.hashes, TRACE_HI: seq * 7919 + 3, TRACE_LO: -seq - 11, TRACE_ORIGIN: seq * 10}
    return EventBatch(batch.ts, batch.key_ids, batch.seq, batch.numbers, hashes)


def run_traced(
    specs: list[WindowSpec], events: list[Event], sizes: list[int], picked: TracedWindows | None = None
) -> list[WindowResults]:
    """Feed ``events`` with traces (``traced``) in batches cycling through ``sizes``; with ``picked``, only the
    windows it picks keep their trace links."""
    engine = PartitionEngine(specs, traced=picked)
    chunks: list[WindowResults] = []
    position, turn = 0, 0
    while position < len(events):
        size = sizes[turn % len(sizes)]
        chunks.extend(engine.process(traced(events[position : position + size])).results)
        position, turn = position + size, turn + 1
    chunks.extend(engine.close_all().results)
    return chunks
