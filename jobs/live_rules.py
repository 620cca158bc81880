"""Live rules: a job's rule set kept in etcd, one key per rule, followed through a watch.

Rules live under ``/winnow/<tenant>/jobs/<job>/rules/<rule name>``, each value
a rule in the spec's form (YAML or JSON: ``window``, ``when``, ``action``). A
worker reads only its own tenant's and job's prefix. Every rule set in force
is stamped with the etcd revision of the snapshot it was read from; a change
is read as a whole new snapshot (so a transaction that changes several rules
is never seen half-done) and handed to the worker, which swaps it in between
two batches. A snapshot with an invalid rule is rejected, logged and counted,
and the rule set in force stays. When etcd cannot be reached, the worker keeps
deciding with the last good rule set, marks it stale after ``stale_after``
seconds, and catches up from its last revision when etcd returns.

``rule_history`` and ``rollback`` serve ``winnow rules history|rollback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aetcd

from connectors.etcd_streams import UNAVAILABLE, WatchQueue
from connectors.metrics import RULES_REJECTED, RULES_RELOADS
from jobs.spec import JobSpec, RuleSpec, parse_rule_document
from windows.errors import SpecError, WinnowError

log = logging.getLogger("winnow.rules")

_URL = re.compile(
    r"^etcd://(?P<host>[^:/]+):(?P<port>\d+)(?P<prefix>/winnow/(?P<tenant>[^/]+)/jobs/(?P<job>[^/]+)/rules/)$"
)


@dataclass(frozen=True)
class RulesLocation:
    """Where a job's live rules are: an etcd endpoint and the tenant's rule prefix for the job."""

    host: str
    port: int
    prefix: str
    tenant: str
    job: str

    @classmethod
    def parse(cls, url: str, job: str) -> RulesLocation:
        match = _URL.match(url)
        if match is None:
            raise SpecError(
                f"--rules-from {url!r} is not etcd://HOST:PORT/winnow/<tenant>/jobs/<job>/rules/ "
                "(with the trailing slash)."
            )
        if match["job"] != job:
            raise SpecError(f"--rules-from names job {match['job']!r} but the spec is job {job!r}.")
        return cls(match["host"], int(match["port"]), match["prefix"], match["tenant"], match["job"])

    def client(self) -> Any:
        return aetcd.Client(host=self.host, port=self.port, timeout=5)


@dataclass(frozen=True)
class LoadedRules:
    """A valid rule set and the etcd revision of the snapshot it was read from."""

    revision: int
    rules: tuple[RuleSpec, ...]


def build_rules(spec: JobSpec, prefix: str, entries: list[tuple[bytes, bytes]]) -> tuple[RuleSpec, ...]:
    """Parse ``(key, value)`` entries of a rule prefix; raise ``SpecError`` naming the first bad rule."""
    rules = []
    for key, value in sorted(entries):
        name = key.decode("utf-8", errors="replace")[len(prefix) :]
        if not name or "/" in name:
            raise SpecError(f"etcd key {key.decode(errors='replace')!r}: a rule key is <prefix><rule name>.")
        rules.append(parse_rule_document(value, spec.windows, f"etcd key {prefix}{name}", name=name))
    return tuple(rules)


async def read_rules(client: Any, spec: JobSpec, prefix: str) -> LoadedRules:
    """The rule set under ``prefix`` as of one consistent etcd snapshot."""
    snapshot = await client.get_prefix(prefix.encode())
    entries = [(bytes(kv.key), bytes(kv.value)) for kv in snapshot.kvs]
    return LoadedRules(int(snapshot.header.revision), build_rules(spec, prefix, entries))


class LiveRules:
    """Follows one job's rule set in etcd and offers each new valid set to the worker."""

    def __init__(
        self,
        location: RulesLocation,
        spec: JobSpec,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self.spec = spec
        self.stale_after = stale_after
        self.clock = clock
        self.current: LoadedRules | None = None
        self._pending: LoadedRules | None = None
        self.rejected = 0
        self.reloads = 0
        self.reconnects = 0
        self.last_contact = clock()
        self._stop = asyncio.Event()
        RULES_REJECTED.labels(spec.name)  # exported (as 0) from the start
        RULES_RELOADS.labels(spec.name)

    @property
    def stale(self) -> bool:
        return self.clock() - self.last_contact > self.stale_after

    async def load(self) -> LoadedRules:
        """Read the rule set once (at start: an invalid rule set or an unreachable etcd is an error)."""
        client = self.location.client()
        try:
            loaded = await read_rules(client, self.spec, self.location.prefix)
        except UNAVAILABLE as error:
            raise WinnowError(
                f"cannot read rules from etcd at {self.location.host}:{self.location.port}: {error}."
            ) from None
        finally:
            await client.close()
        self.current = loaded
        self.last_contact = self.clock()
        log.info(
            "rules of %s/%s at revision %d: %s",
            self.location.tenant,
            self.location.job,
            loaded.revision,
            ", ".join(r.name for r in loaded.rules) or "(none)",
        )
        return loaded

    def take_pending(self) -> LoadedRules | None:
        """The newest valid rule set not yet taken, if any."""
        pending, self._pending = self._pending, None
        return pending

    def stop(self) -> None:
        self._stop.set()

    async def follow(self) -> None:
        """Watch the prefix until stopped, reconnecting with backoff."""
        backoff = 0.2
        while not self._stop.is_set():
            client = self.location.client()
            try:
                await self._reload(client)  # catch up on whatever changed while away
                await self._watch(client)
                backoff = 0.2
            except aetcd.RevisionCompactedError:
                continue  # the next reload reads a fresh snapshot
            except UNAVAILABLE as error:
                self.reconnects += 1
                log.warning("rules: etcd unreachable (%s); keeping revision %s", error, self._revision())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

    def _revision(self) -> int:
        return self.current.revision if self.current is not None else 0

    async def _reload(self, client: Any) -> None:
        snapshot = await client.get_prefix(self.location.prefix.encode())
        self.last_contact = self.clock()
        revision = int(snapshot.header.revision)
        entries = [(bytes(kv.key), bytes(kv.value)) for kv in snapshot.kvs]
        latest_change = max((int(kv.mod_revision) for kv in snapshot.kvs), default=0)
        if (
            self.current is not None
            and latest_change <= self.current.revision
            and len(entries) == len(self.current.rules)
        ):
            return  # nothing under the prefix changed since the set in force
        try:
            rules = build_rules(self.spec, self.location.prefix, entries)
        except SpecError as error:
            self.rejected += 1
            RULES_REJECTED.labels(self.spec.name).inc()
            log.error(
                "rules at revision %d rejected, revision %s stays in force: %s", revision, self._revision(), error
            )
            return
        loaded = LoadedRules(revision, rules)
        self.current = self._pending = loaded
        self.reloads += 1
        RULES_RELOADS.labels(self.spec.name).inc()
        log.info("rules at revision %d: %s", revision, ", ".join(r.name for r in rules) or "(none)")

    async def _watch(self, client: Any) -> None:
        watch = await client.watch_prefix(self.location.prefix.encode(), start_revision=self._revision() + 1)
        async with WatchQueue(watch) as events:
            while not self._stop.is_set():
                try:
                    await events.get(1.0)
                except TimeoutError:
                    await client.status()  # an idle watch does not notice a dead server
                    self.last_contact = self.clock()
                    continue
                while not events.empty():  # a transaction arrives as several events: read once for all
                    await events.get(0)
                await self._reload(client)


async def rule_history(location: RulesLocation) -> tuple[list[tuple[int, dict[str, bytes]]], int]:
    """Every revision at which the rule set changed, with the rules after it; and the oldest revision kept."""
    client = location.client()
    try:
        now = int((await client.get_prefix(location.prefix.encode(), keys_only=True)).header.revision)
        start = 1
        while True:
            history: list[tuple[int, dict[str, bytes]]] = []
            state: dict[str, bytes] = {}
            watch = await client.watch_prefix(location.prefix.encode(), start_revision=start)
            async with WatchQueue(watch) as events:
                reached = False
                while True:
                    try:
                        # the events of one revision arrive together: once at `now`, a short pause means done
                        item = await events.get(0.3 if reached else 5.0)
                    except TimeoutError:
                        return history, start
                    except aetcd.RevisionCompactedError as error:
                        start = int(error.compacted_revision)
                        break
                    revision = int(item.kv.mod_revision)
                    name = bytes(item.kv.key).decode()[len(location.prefix) :]
                    if str(item.kind).endswith("PUT"):
                        state[name] = bytes(item.kv.value)
                    else:
                        state.pop(name, None)
                    if history and history[-1][0] == revision:
                        history[-1] = (revision, dict(state))
                    else:
                        history.append((revision, dict(state)))
                    reached = revision >= now
    finally:
        await client.close()


async def rollback(location: RulesLocation, spec: JobSpec, revision: int) -> int:
    """Write the rule set as of ``revision`` back as the current one, in one guarded transaction.

    The transaction compares every current rule key's mod revision (and that
    the keys to create do not exist), so a concurrent change makes it fail
    rather than be overwritten. Returns the revision of the write.
    """
    history, oldest = await rule_history(location)
    earlier = [entry for entry in history if entry[0] <= revision]
    if revision < oldest or not earlier:
        raise WinnowError(
            f"revision {revision} of {location.prefix} is not in etcd's history (it keeps revisions from {oldest})."
        )
    target = earlier[-1][1]
    build_rules(spec, location.prefix, [((location.prefix + n).encode(), v) for n, v in target.items()])
    client = location.client()
    try:
        current = await client.get_prefix(location.prefix.encode())
        ops = client.transactions
        existing = {bytes(kv.key).decode()[len(location.prefix) :]: int(kv.mod_revision) for kv in current.kvs}
        compare = [ops.mod((location.prefix + name).encode()) == mod for name, mod in existing.items()]
        compare += [ops.version((location.prefix + name).encode()) == 0 for name in target if name not in existing]
        success = [ops.delete((location.prefix + name).encode()) for name in existing if name not in target]
        success += [ops.put((location.prefix + name).encode(), value) for name, value in target.items()]
        ok, _ = await client.transaction(compare=compare, success=success, failure=[])
        if not ok:
            raise WinnowError(f"the rules under {location.prefix} changed during the rollback; nothing was written.")
        written = await client.get_prefix(location.prefix.encode(), keys_only=True)
        return int(written.header.revision)
    finally:
        await client.close()
