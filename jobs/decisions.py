"""Rules applied to emitted window results, producing decisions with deterministic ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import orjson

from connectors.line_blocks import DecisionBlock, PendingLines
from jobs import line_encoding
from jobs.fired_marks import FiredMarks
from jobs.records import value_columns
from jobs.spec import RuleSpec
from windows.aggregation import Values
from windows.events import Int64Array
from windows.results import WindowResults
from windows.sort_order import lex_order


class RuleSet:
    """The rules of a job, grouped by the window they read."""

    def __init__(self, job: str, rules: Sequence[RuleSpec], revision: int | None = None) -> None:
        self.job = job
        self.rules = tuple(rules)
        self.revision = revision  # the etcd revision the rules came from (None: from the spec)
        self.stale = False  # the rule source has been unreachable for too long
        self.fired: Counter[tuple[str, str]] = Counter()  # decisions made by (rule, action), cumulative
        self.by_window: dict[str, list[RuleSpec]] = {}
        for rule in self.rules:
            self.by_window.setdefault(rule.window, []).append(rule)
        # Per (partition, rule): windows that already fired on an update and are still open.
        self._fired: dict[tuple[int, str], FiredMarks] = {}

    def succeeded_by(self, successor: RuleSet) -> RuleSet:
        """Hand the fired marks of rules that keep their name and meaning to ``successor``; return it."""
        kept = {rule.name for rule in successor.rules if rule in self.rules}
        for (partition, name), marks in self._fired.items():
            if name in kept:
                successor._fired[(partition, name)] = marks
        successor.stale = self.stale
        successor.fired.update(self.fired)  # counts stay cumulative across rule-set changes
        return successor

    def forget(self, partition: int) -> None:
        """Drop the fired marks of a partition this process no longer owns."""
        for owner in [owner for owner in self._fired if owner[0] == partition]:
            del self._fired[owner]

    def key_ids_in_use(self) -> Int64Array:
        """Key ids the fired marks refer to (with repeats)."""
        return np.concatenate([marks.columns()[0] for marks in self._fired.values()] + [np.zeros(0, np.int64)])

    def keys_renumbered(self, mapping: np.ndarray) -> None:
        """Key ids changed: ``mapping[old id]`` is the new id of every key in use."""
        for owner, marks in self._fired.items():
            keys, starts, ends = marks.columns()
            renumbered = FiredMarks()
            renumbered.mark(np.ascontiguousarray(mapping[keys], dtype=np.int64), starts, ends)
            self._fired[owner] = renumbered

    def _marks(self, partition: int, rule: str) -> FiredMarks:
        marks = self._fired.get((partition, rule))
        if marks is None:
            marks = self._fired[(partition, rule)] = FiredMarks()
        return marks

    def may_fire(self, window: str, values: Values, n: int) -> np.ndarray | None:
        """Which of ``n`` results of ``window`` (their ``values``) meet a rule's condition, so that a decision
        may fire on them; None when no rule reads the window."""
        rules = self.by_window.get(window)
        if not rules:
            return None
        met = rules[0].condition.evaluate(values, n)
        for rule in rules[1:]:
            met = met | rule.condition.evaluate(values, n)
        return met

    def decide(
        self, chunk: WindowResults, partition: int, key_text: list[bytes], key_json: list[bytes]
    ) -> tuple[DecisionBlock, Int64Array] | None:
        """The new decisions on ``chunk``: its results that satisfy a rule, in result order, then rule order,
        and the position in ``chunk`` of each one's result (None: no decision). ``key_text[k]`` and
        ``key_json[k]`` are the UTF-8 and JSON text of key id k.

        A window's updates must be decided before its final result, in emission order: a decision fires
        once per rule and window, at its first emission that meets the condition.

        A decision's id is BLAKE2b-128 of its job, rule, window, key and bounds (``line_encoding``), its
        traceparent's parent id the id's first 16 hex digits.
        """
        rules = self.by_window.get(chunk.window)
        if not rules or not len(chunk):
            return None
        made: list[tuple[Int64Array, DecisionBlock]] = []  # per rule that fired: result positions, decisions
        job_json = orjson.dumps(self.job)
        window_json = orjson.dumps(chunk.window)
        final = b"true" if chunk.final else b"false"
        for rule in rules:
            fired = rule.condition.evaluate(chunk.values, len(chunk)).nonzero()[0]
            # A decision fires once per (rule, key, window): at the first emission where
            # its condition holds. Copies after a restart carry the same id.
            marks = self._fired.get((partition, rule.name))  # made when an update first fires
            if fired.shape[0]:
                windows = (chunk.key_ids[fired], chunk.starts[fired], chunk.ends[fired])
                if not chunk.final:
                    fired = fired[self._marks(partition, rule.name).mark(*windows)]
                elif marks is not None:
                    fired = fired[marks.unmarked(*windows)]
            if chunk.final and marks is not None:
                # Finals of one window come in close order, and close grows with end, so every
                # marked window ending before this chunk's last end has now been emitted (others
                # ending with it may follow in the next chunk).
                marks.expire(int(chunk.ends.max()))
            if not fired.shape[0]:
                continue
            hits = chunk.take(fired)
            self.fired[(rule.name, rule.action)] += int(fired.shape[0])
            head = (
                b'{"job":%s,"rule":%s,"action":%s,"rules_revision":%s,"stale_rules":%s,"window":%s,"partition":%d,'
                b'"final":%s,'
                % (
                    job_json,
                    orjson.dumps(rule.name),
                    orjson.dumps(rule.action),
                    b"null" if self.revision is None else b"%d" % self.revision,
                    b"true" if self.stale else b"false",
                    window_json,
                    partition,
                    final,
                )
            )
            id_prefix = f"{self.job}\x1f{rule.name}\x1f{chunk.window}\x1f".encode()
            names, columns = value_columns(hits)
            rows = line_encoding.DecisionRows(
                head,
                id_prefix,
                key_text,
                key_json,
                hits.key_ids,
                hits.starts,
                hits.ends,
                hits.emitted_at,
                names,
                columns,
                hits.trace_rows,
                hits.traces,
            )
            made.append((fired, DecisionBlock(PendingLines(rows), hits.emitted_at, hits.key_ids, rows.origins)))
        if not made:
            return None
        if len(made) == 1:
            positions, decided = made[0]
            return decided, positions
        joined = DecisionBlock.concat([block for _, block in made])
        # result order first, then rule order (``made`` is in rule order): independent of how results were chunked
        positions = np.concatenate([fired for fired, _ in made])
        rule_rank = np.repeat(np.arange(len(made)), [len(fired) for fired, _ in made])
        order = lex_order((rule_rank, positions))
        return joined.take(order), positions[order]
