"""Rules applied to emitted window results, producing decisions with deterministic ids."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b

import numpy as np
import orjson

from jobs.spec import RuleSpec
from windows.aggregation import LINKS
from windows.pane_state import NO_SEQ
from windows.results import WindowResults


def _trace_fields(hits: WindowResults) -> tuple[list[str | None], list[str], list[int]]:
    """Per result: the trace id (32 hex digits) of the event that made it fire (None when unknown), the
    JSON list of its other distinct linked traces, and that event's origin time (epoch ms, 0: unknown)."""
    n = len(hits)
    links = hits.values.get(LINKS)
    if links is None or n == 0:
        return [None] * n, ["[]"] * n, [0] * n
    k = links.shape[1]
    present = links[:, :, 1] != NO_SEQ
    high, low = links[:, :, 3], links[:, :, 4]
    digits = np.frombuffer(links[:, :, 3:5].astype(">i8").tobytes().hex().encode(), dtype=np.uint8).reshape(n, k, 32)
    # a link is kept when present and unlike the newest trace and every earlier present link
    keep = present.copy()
    keep[:, 0] = False
    for j in range(1, k):
        keep[:, j] &= (high[:, j] != high[:, 0]) | (low[:, j] != low[:, 0])
        for earlier in range(1, j):
            keep[:, j] &= ~present[:, earlier] | (high[:, j] != high[:, earlier]) | (low[:, j] != low[:, earlier])
    links_json = np.full(n, "[]", dtype=object)
    pattern = keep.astype(np.int64) @ (1 << np.arange(k, dtype=np.int64))  # which links each row keeps
    for code in np.unique(pattern).tolist():
        if code:
            rows = np.flatnonzero(pattern == code)
            links_json[rows] = _json_strings(digits[rows][:, [j for j in range(k) if code >> j & 1]])
    newest: list[str | None] = digits[:, 0].copy().view("S32").reshape(n).astype("U32").tolist()
    for row in np.flatnonzero(~present[:, 0]).tolist():
        newest[row] = None
    origins = np.where(present[:, 0], links[:, 0, 2], 0).tolist()
    return newest, links_json.tolist(), origins


def _json_strings(digits: np.ndarray) -> list[str]:
    """Per row of ``digits`` (rows, strings, 32 ASCII hex digits), its strings as a JSON list."""
    rows, count, width = digits.shape
    line = np.full((rows, 2 + count * (width + 3) - 1), ord(","), dtype=np.uint8)
    line[:, 0], line[:, -1] = ord("["), ord("]")
    for i in range(count):
        at = 1 + i * (width + 3)
        line[:, at] = line[:, at + width + 1] = ord('"')
        line[:, at + 1 : at + width + 1] = digits[:, i]
    size = line.shape[1]
    return line.view(f"S{size}").reshape(rows).astype(f"U{size}").tolist()  # type: ignore[no-any-return]


def decision_id(job: str, rule: str, window: str, key: str, start: int, end: int) -> str:
    """The id every copy of one decision shares, so consumers can drop duplicates."""
    text = f"{job}\x1f{rule}\x1f{window}\x1f{key}\x1f{start}\x1f{end}".encode()
    return blake2b(text, digest_size=16).hexdigest()


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
        # Per (partition, rule): windows that already fired on an update and are still
        # open, as a set of (key id, start, end) and a heap of their ends for expiry.
        self._fired: dict[tuple[int, str], tuple[set[tuple[int, int, int]], list[tuple[int, int, int]]]] = {}

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

    def key_ids_in_use(self) -> list[int]:
        """Key ids the fired marks refer to."""
        return [key for marked, _ in self._fired.values() for key, _, _ in marked]

    def keys_renumbered(self, mapping: np.ndarray) -> None:
        """Key ids changed: ``mapping[old id]`` is the new id of every key in use."""
        for owner, (marked, heap) in self._fired.items():
            renumbered = [(e, int(mapping[k]), s) for e, k, s in heap]
            heapq.heapify(renumbered)  # equal ends may now order differently
            self._fired[owner] = ({(int(mapping[k]), s, e) for k, s, e in marked}, renumbered)

    def _marks(self, partition: int, rule: str) -> tuple[set[tuple[int, int, int]], list[tuple[int, int, int]]]:
        marks = self._fired.get((partition, rule))
        if marks is None:
            marks = self._fired[(partition, rule)] = (set(), [])
        return marks

    def decide(
        self, chunk: WindowResults, partition: int, keys: list[str], key_json: list[str], values: list[str]
    ) -> list[tuple[int, int, str, int]]:
        """``(emitted_at, key id, line, origin_at)`` of each new decision: results of ``chunk`` that satisfy a rule.
        ``values`` is ``values_json(chunk)``, written once for the result lines and the decisions.

        ``origin_at`` is the origin time (epoch ms) of the event that made the rule fire, 0 when unknown.
        """
        rules = self.by_window.get(chunk.window)
        if not rules or not len(chunk):
            return []
        lines: list[tuple[int, int, int, int, str, int]] = []
        job_json = orjson.dumps(self.job).decode()
        window_json = orjson.dumps(chunk.window).decode()
        final = "true" if chunk.final else "false"
        for rule_index, rule in enumerate(rules):
            fired = rule.condition.evaluate(chunk.values, len(chunk)).nonzero()[0]
            # A decision fires once per (rule, key, window): at the first emission where
            # its condition holds. Copies after a restart carry the same id.
            marked, ends_heap = self._marks(partition, rule.name)
            rows = zip(
                fired.tolist(), chunk.key_ids[fired].tolist(), chunk.starts[fired].tolist(), chunk.ends[fired].tolist()
            )
            keep = []
            if chunk.final:
                for position, key, start, end in rows:
                    if (key, start, end) not in marked:
                        keep.append(position)
                # Finals of one window come in close order, and close grows with end, so every
                # marked window ending before this chunk's last end has now been emitted (others
                # ending with it may follow in the next chunk).
                horizon = int(chunk.ends.max())
                while ends_heap and ends_heap[0][0] < horizon:
                    end, key, start = heapq.heappop(ends_heap)
                    marked.discard((key, start, end))
            else:
                for position, key, start, end in rows:
                    if (key, start, end) not in marked:
                        marked.add((key, start, end))
                        heapq.heappush(ends_heap, (end, key, start))
                        keep.append(position)
            if not keep:
                continue
            fired = np.asarray(keep, dtype=np.int64)
            hits = chunk.take(fired)
            self.fired[(rule.name, rule.action)] += len(keep)
            head = (
                '{"job":%s,"rule":%s,"action":%s,"rules_revision":%s,"stale_rules":%s,"window":%s,"partition":%d,"final":%s,'
                % (
                    job_json,
                    orjson.dumps(rule.name).decode(),
                    orjson.dumps(rule.action).decode(),
                    "null" if self.revision is None else str(self.revision),
                    "true" if self.stale else "false",
                    window_json,
                    partition,
                    final,
                )
            )
            newest, links_json, origins = _trace_fields(hits)
            for position, k, s, e, t, v, trace, linked, origin in zip(
                fired.tolist(),
                hits.key_ids.tolist(),
                hits.starts.tolist(),
                hits.ends.tolist(),
                hits.emitted_at.tolist(),
                [values[position] for position in keep],
                newest,
                links_json,
                origins,
            ):
                ident = decision_id(self.job, rule.name, chunk.window, keys[k], s, e)
                if trace is None:
                    trace_json = '"trace_id":null,"traceparent":null,"trace_links":[],"origin_at":null,'
                else:
                    trace_json = (
                        f'"trace_id":"{trace}","traceparent":"00-{trace}-{ident[:16]}-01",'
                        f'"trace_links":{linked},"origin_at":{origin or "null"},'
                    )
                lines.append(
                    (
                        position,
                        rule_index,
                        t,
                        k,
                        (
                            f'{head}"id":"{ident}","key":{key_json[k]},"start":{s},"end":{e},'
                            f'"emitted_at":{t},{trace_json}"values":{v}}}\n'
                        ),
                        origin,
                    )
                )
        # Result order first, then rule order: independent of how results were chunked.
        lines.sort(key=lambda item: (item[0], item[1]))
        return [(t, k, line, origin) for _, _, t, k, line, origin in lines]
