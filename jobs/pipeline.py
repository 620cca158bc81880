"""The job pipeline shared by replay and streaming: decode, partition, window, decide, emit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from connectors.event_decoding import DecodedBatch, DecodeOptions, EventDecoder, LateRecord, Rejected
from connectors.event_lines import EventLines
from connectors.line_blocks import DecisionBlock, Lines
from connectors.trace_context import trace_halves
from jobs.decisions import RuleSet
from jobs.keys import KeyRegistry
from jobs.records import late_line, rejected_line, result_lines
from jobs.spec import JobSpec
from state.engine_state import prepare, restore
from state.partition_store import BLOCK_CACHE_BYTES, PreparedCommit, set_block_cache
from state.window_store import WindowStore
from windows.aggregation import Values
from windows.engine import PartitionEngine
from windows.events import EventBatch, Int64Array
from windows.pane_state import TRACE_HI, TRACE_LO, TRACE_ORIGIN
from windows.results import Emission
from windows.sort_order import stable_order
from windows.stream_time import NO_TIME, too_far_ahead


class OutputSink(Protocol):
    """Where a job's output goes (files in replay, topics in streaming)."""

    def results(
        self, partition: int, emitted_at: Int64Array, key_ids: Int64Array, lines: Lines, *, final: bool
    ) -> None:
        """Window results of one partition, in emission order (one JSON line each)."""

    def decisions(self, partition: int, decisions: DecisionBlock) -> None:
        """Decisions of one partition, in emission order."""

    def late(self, records: list[LateRecord]) -> None:
        """Events late for every window, in source order."""

    def rejected(self, partition: int | None, rejected: list[Rejected], lines: list[bytes]) -> None:
        """Events that could not be used, in source order (``partition`` None in replay)."""


@dataclass
class RunStats:
    """Counters of one run."""

    events: int = 0
    applied: int = 0
    rejected: int = 0
    late: int = 0
    results: int = 0
    updates: int = 0
    decisions: int = 0
    late_by_window: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    decisions_by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, action)
    results_by_window: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (window, final)
    state_bytes_written: int = 0
    panes_evicted: int = 0  # panes dropped from memory to RocksDB
    keys_forgotten: int = 0  # keys dropped from the registry once nothing in memory used them


class JobRunner:
    """Runs a job's windows and rules over batches of raw events."""

    def __init__(
        self,
        spec: JobSpec,
        sink: OutputSink,
        *,
        position_field: str = "line",
        store: WindowStore | None = None,
        registry: KeyRegistry | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.position_field = position_field
        self.store = store
        self.registry = registry if registry is not None else KeyRegistry(spec.source.partitions)
        self.decoder = EventDecoder(
            DecodeOptions(
                key_field=spec.source.key,
                timestamp_field=spec.source.timestamp,
                timestamp_format=spec.source.timestamp_format,
                numeric_fields=spec.numeric_fields,
                distinct_fields=spec.distinct_fields,
                max_event_bytes=spec.source.max_event_bytes,
            )
        )
        self.rules = RuleSet(spec.name, spec.rules)
        self.engines: dict[int, PartitionEngine] = {}
        self.positions: dict[int, int] = {}
        self.stats = RunStats()
        self._loaded_by_released = 0  # panes read back by engines since released
        self._put_bytes = 128.0  # what one changed pane costs a commit, until a commit has measured it
        self._delete_bytes = 32.0  # and one released pane (its key)
        self._block_cache = BLOCK_CACHE_BYTES  # RocksDB block cache size last set

    def engine(self, partition: int) -> PartitionEngine:
        """The engine of ``partition``, restored from the store on first use."""
        engine = self.engines.get(partition)
        if engine is None:
            engine = PartitionEngine(self.spec.windows, partition, key_order=self.registry.ranks, traced=self._fired_on)
            if self.store is not None:
                store = self.store.partition(partition)
                restore(store, engine, self.registry.ids_of, self.registry.key_bytes)
                position = store.meta("position")
                if position is not None:
                    self.positions[partition] = int(position)
            self.engines[partition] = engine
        return engine

    def _fired_on(self, window: str, values: Values, n: int) -> np.ndarray | None:
        """The results of ``window`` a rule may fire on, the only ones whose trace links are read: asked of
        the rules in force when the results are made, which are those that decide on them (``_emit``)."""
        return self.rules.may_fire(window, values, n)

    def process(
        self,
        raws: Sequence[bytes] | EventLines,
        seqs: Sequence[int] | Int64Array,
        partition: int | None = None,
        traceparents: Sequence[bytes | None] | None = None,
        origins: Sequence[int] | Int64Array | None = None,
    ) -> None:
        """Process raw events (bytes each, or spans of one buffer) found at source positions ``seqs``.

        With ``partition`` None (replay), each event's partition is computed from
        its key with Kafka's default partitioner; otherwise all events belong to
        it, and the partition's position moves past the last of ``seqs``.
        ``traceparents`` and ``origins`` (epoch ms) give each event's trace
        context when the source has one (Kafka headers and timestamps).
        """
        self.stats.events += len(raws)
        decoded, rejected = self.decoder.decode(raws, seqs, self.registry.table)
        if self.spec.traced and len(decoded):
            self._add_traces(decoded, seqs, traceparents, origins)
        key_ids = self.registry.ids(decoded.keys, decoded.key_ids)
        if partition is None:
            by_partition = self._by_partition(self.registry.partitions_of(key_ids))
        else:
            by_partition = [(partition, np.arange(key_ids.shape[0]))]
        late: list[LateRecord] = []
        for p, index in by_partition:
            engine = self.engine(p)
            ts = decoded.ts.take(index)  # ``take`` gathers faster than indexing with the positions
            ahead = too_far_ahead(ts, engine.stream_time, self.spec.source.max_ahead)
            if ahead.any():
                for i in index[ahead].tolist():
                    rejected.append(
                        Rejected(
                            int(decoded.seq[i]),
                            decoded.raws[i],
                            f"timestamp {int(decoded.ts[i])} is more than {self.spec.source.max_ahead} ms ahead "
                            f"of partition {p}'s stream time",
                            "future_timestamp",
                        )
                    )
                index, ts = index[~ahead], ts[~ahead]
            if index.shape[0] == 0:
                continue
            batch = EventBatch(
                ts=ts,
                key_ids=key_ids.take(index),
                seq=decoded.seq.take(index),
                numbers={name: column.take(index) for name, column in decoded.numbers.items()},
                hashes={name: column.take(index) for name, column in decoded.hashes.items()},
            )
            outcome = engine.process(batch)
            self.stats.applied += outcome.applied
            self.stats.late_by_window.update(outcome.late_by_window)
            for position, reason in zip(outcome.late.tolist(), outcome.late_reasons):
                event = int(index[position])
                seq = int(decoded.seq[event])
                line = late_line(self.spec.name, p, self.position_field, seq, reason, decoded.raws[event])
                late.append(LateRecord(p, seq, int(key_ids[event]), line))
            self._emit(p, outcome.emission)
            self.positions[p] = int(batch.seq.max()) + 1
        if partition is not None and len(seqs):
            self.positions[partition] = max(self.positions.get(partition, 0), int(seqs[-1]) + 1)
        if rejected:
            rejected.sort(key=lambda r: r.seq)
            self.stats.rejected += len(rejected)
            self.stats.rejected_by_reason.update(r.kind for r in rejected)
            self.sink.rejected(
                partition,
                rejected,
                [rejected_line(self.spec.name, self.position_field, r.seq, r.reason, r.raw) for r in rejected],
            )
        if late:
            late.sort(key=lambda record: record.seq)
            self.stats.late += len(late)
            self.sink.late(late)

    def _by_partition(self, parts: Int64Array) -> list[tuple[int, Int64Array]]:
        """Each partition among ``parts`` with the positions of its events, in order (one stable sort)."""
        counts = np.bincount(parts, minlength=self.spec.source.partitions)
        present = np.flatnonzero(counts).tolist()
        if len(present) == 1:
            return [(present[0], np.arange(parts.shape[0]))]
        order = stable_order(parts)
        bounds = np.cumsum(counts).tolist()
        return [(p, order[bounds[p] - int(counts[p]) : bounds[p]]) for p in present]

    @staticmethod
    def _add_traces(
        decoded: DecodedBatch,
        seqs: Sequence[int] | Int64Array,
        traceparents: Sequence[bytes | None] | None,
        origins: Sequence[int] | Int64Array | None,
    ) -> None:
        """Give each decoded event its trace id halves and origin time, as engine columns."""
        positions: list[int] | None = None
        if len(decoded) != len(seqs):
            where = {seq: i for i, seq in enumerate(np.asarray(seqs).tolist())}
            positions = [where[seq] for seq in decoded.seq.tolist()]
        if traceparents is not None and positions is not None:
            traceparents = [traceparents[i] for i in positions]
        high, low = trace_halves(traceparents, decoded.raws)
        decoded.hashes[TRACE_HI], decoded.hashes[TRACE_LO] = high, low
        if origins is None:
            decoded.hashes[TRACE_ORIGIN] = np.zeros(len(decoded), dtype=np.int64)
        else:
            origin = np.asarray(origins, dtype=np.int64)
            decoded.hashes[TRACE_ORIGIN] = origin if positions is None else origin[positions]

    def _emit(self, partition: int, emission: Emission) -> None:
        """Hand ``emission``'s results and the decisions they make to the sink, in emission order. Lines and
        decisions are made once per chunk (a window and kind), then handed over run by run."""
        if not emission.chunks:
            return
        registry, stats = self.registry, self.stats
        lines = [result_lines(chunk, self.spec.name, partition, registry.json) for chunk in emission.chunks]
        decided: dict[int, tuple[DecisionBlock, Int64Array]] = {}
        # a window's updates before its final result (``RuleSet.decide``); chunks of other windows do not meet
        for c in sorted(range(len(emission.chunks)), key=lambda c: emission.chunks[c].final):
            made = self.rules.decide(emission.chunks[c], partition, registry.utf8, registry.json)
            if made is not None:
                decisions, positions = made
                # per result position, the first of its decisions: run [a, b) has decisions [at[a], at[b])
                at = np.zeros(len(emission.chunks[c]) + 1, dtype=np.int64)
                np.cumsum(np.bincount(positions, minlength=len(emission.chunks[c])), out=at[1:])
                decided[c] = (decisions, at)
        for c, a, b in emission.runs:
            chunk = emission.chunks[c]
            self.sink.results(
                partition, chunk.emitted_at[a:b], chunk.key_ids[a:b], lines[c].rows(a, b), final=chunk.final
            )
            made_here = decided.get(c)
            if made_here is not None:
                decisions, at = made_here
                first, last = int(at[a]), int(at[b])
                if last > first:
                    self.sink.decisions(partition, decisions.rows(first, last))
        for chunk, block in zip(emission.chunks, lines):
            if chunk.final:
                stats.results += len(block)
            else:
                stats.updates += len(block)
            stats.results_by_window[(chunk.window, chunk.final)] += len(block)
        stats.decisions += sum(len(decisions) for decisions, _ in decided.values())

    def emitting_from(self) -> int:
        """The earliest emission time any source partition can still produce: the least of their stream
        times (a partition emits nothing before its stream time), NO_TIME while one has none yet."""
        engines = self.engines
        if any(p not in engines for p in range(self.spec.source.partitions)):
            return NO_TIME
        return min(engine.stream_time for engine in engines.values())

    def advance(self, partition: int, stream_time: int) -> int:
        """Move an idle partition's stream time to ``stream_time``; emit what closes; return results emitted."""
        engine = self.engines.get(partition)
        if engine is None:
            return 0
        outcome = engine.advance(stream_time)
        self._emit(partition, outcome.emission)
        return len(outcome.emission)

    def commit(self, partitions: Sequence[int] | None = None) -> None:
        """Write engines' changes and source positions to the store, atomically per partition."""
        self.write_commit(self.prepare_commit(partitions))

    def prepare_commit(self, partitions: Sequence[int] | None = None) -> list[PreparedCommit]:
        """Engines' changes and source positions as they are now, one write batch per partition, to be written
        by ``write_commit`` (the engines take them as written: nothing else is prepared or written before)."""
        if self.store is None:
            return []
        prepared = []
        for partition in self.engines if partitions is None else partitions:
            engine = self.engines.get(partition)
            if engine is None:
                continue
            meta = {"position": str(self.positions.get(partition, 0)).encode()}
            prepared.append(prepare(self.store.partition(partition), engine, self.registry.key_bytes, meta))
        return prepared

    def write_commit(self, prepared: Sequence[PreparedCommit]) -> None:
        """Write prepared batches, in order."""
        puts = deletes = put_bytes = delete_bytes = 0
        for batch in prepared:
            written = batch.store.write(batch)
            self.stats.state_bytes_written += written.bytes_written
            puts += written.panes_written
            put_bytes += written.bytes_written
            deletes += written.panes_deleted
            delete_bytes += written.key_bytes_deleted
        # enough panes to stand for the job's: learn what a pane put, and a pane deleted, costs a commit
        if puts >= 1000:
            self._put_bytes = put_bytes / puts
        if deletes >= 1000:
            self._delete_bytes = delete_bytes / deletes

    def commit_size(self) -> int:
        """About how many bytes a commit would write now: the panes changed and released since the last
        commit, at the sizes per pane put and per pane deleted that the last sizeable commits wrote."""
        size = 0.0
        for engine in self.engines.values():
            changed, released = engine.changes_pending()
            size += changed * self._put_bytes + released * self._delete_bytes
        return int(size)

    def shrink(self, pane_budget: int, *, flush: bool = False) -> tuple[int, int]:
        """Keep at most ``pane_budget`` panes in memory across partitions (the rest stay in RocksDB) and
        forget keys nothing in memory refers to; return (panes evicted, keys forgotten).

        Only right after ``commit``: evicted panes must be in the store as they are in memory. With
        ``flush``, RocksDB's memtables are written out too (each flush makes a file: not on every batch).
        """
        if self.store is None:
            return 0, 0
        if flush:
            self.store.flush()  # RocksDB's memtables to disk files
        cache = BLOCK_CACHE_BYTES // 8 if pane_budget == 0 else BLOCK_CACHE_BYTES
        if cache != self._block_cache:
            set_block_cache(cache)
            self._block_cache = cache
        engines = list(self.engines.values())
        resident = sum(engine.open_panes for engine in engines)
        evicted = 0
        if resident > pane_budget:
            for engine in engines:
                evicted += engine.evict(pane_budget * engine.open_panes // resident)
        forgotten = self._forget_unused_keys(engines)
        self.stats.panes_evicted += evicted
        self.stats.keys_forgotten += forgotten
        return evicted, forgotten

    def _forget_unused_keys(self, engines: list[PartitionEngine]) -> int:
        """Drop keys nothing in memory refers to and renumber the rest, when that frees enough to pay for
        the pass over memory; return how many were forgotten."""
        marks = self.rules.key_ids_in_use()
        bound = sum(engine.open_panes for engine in engines) + len(marks)  # keys in use are at most this many
        if len(self.registry) <= 2 * bound + 10_000:
            return 0
        in_use = np.unique(
            np.concatenate([engine.key_ids_in_use() for engine in engines] + [np.asarray(marks, dtype=np.int64)])
        )
        if len(self.registry) <= 2 * in_use.shape[0] + 10_000:
            return 0
        forgotten = len(self.registry) - int(in_use.shape[0])
        mapping = self.registry.compact(in_use)
        for engine in engines:
            engine.keys_renumbered(mapping)
        self.rules.keys_renumbered(mapping)
        return forgotten

    @property
    def panes_loaded(self) -> int:
        """Panes read back from RocksDB into memory so far."""
        return self._loaded_by_released + sum(engine.panes_loaded for engine in self.engines.values())

    def release(self, partition: int, *, commit: bool = True) -> None:
        """Commit a partition (unless told not to), then forget it: engine, rule marks, open store."""
        if commit:
            self.commit([partition])
        engine = self.engines.pop(partition, None)
        if engine is not None:
            self._loaded_by_released += engine.panes_loaded
        self.positions.pop(partition, None)
        self.rules.forget(partition)
        if self.store is not None:
            self.store.release(partition)

    def close_all(self) -> None:
        """End of input: close every open window and emit it."""
        for partition in sorted(self.engines):
            self._emit(partition, self.engines[partition].close_all().emission)
