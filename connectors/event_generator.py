"""A seeded generator of realistic request events, for samples, tests and benchmarks.

Keys follow a Zipf distribution (a few hot clients, a long tail); events
arrive mostly in time order, some out of order within a few seconds, and a
small share far behind (late). Optionally some lines are broken on purpose
to exercise rejection.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_PATHS = [
    f"/api/v1/{name}"
    for name in (
        "orders",
        "users",
        "search",
        "cart",
        "checkout",
        "items",
        "login",
        "logout",
        "profile",
        "payments",
        "reviews",
        "stock",
        "shipping",
        "returns",
        "coupons",
        "wishlist",
        "history",
        "alerts",
        "export",
        "import",
    )
]


@dataclass(frozen=True)
class GeneratorOptions:
    """Shape of a generated event log."""

    events: int = 1_000_000
    keys: int = 10_000
    zipf: float = 1.1
    rate: float = 2_000.0  # events per second of event time
    disorder: float = 0.05  # share arriving up to 3 s behind
    late: float = 0.005  # share arriving 15 s to 10 min behind
    bad: float = 0.0  # share of deliberately broken lines
    seed: int = 7


def _zipf_ranks(rng: np.random.Generator, n: int, keys: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, keys + 1) ** s
    return rng.choice(keys, size=n, p=weights / weights.sum())


def generate_lines(options: GeneratorOptions) -> Iterator[bytes]:
    """Yield the log's lines (without newlines) in arrival order."""
    rng = np.random.default_rng(options.seed)
    n = options.events
    gaps = rng.exponential(1000.0 / options.rate, size=n)
    event_ms = START_MS + np.floor(np.cumsum(gaps)).astype(np.int64)
    delay = np.zeros(n)
    roll = rng.random(n)
    disordered = roll < options.disorder
    delay[disordered] = rng.uniform(0, 3_000, disordered.sum())
    late = (roll >= options.disorder) & (roll < options.disorder + options.late)
    delay[late] = rng.uniform(15_000, 600_000, late.sum())
    arrival = np.argsort(event_ms + delay, kind="stable")
    ranks = _zipf_ranks(rng, n, options.keys, options.zipf)
    sizes = np.rint(rng.lognormal(7.0, 1.2, n)).astype(np.int64)
    latency = np.round(rng.lognormal(3.5, 0.8, n), 1)
    paths = rng.integers(0, len(_PATHS), n)
    broken = rng.random(n) < options.bad
    kinds = rng.integers(0, 6, n)
    for i in arrival.tolist():
        event = {
            "client_id": f"client-{int(ranks[i]):05d}",
            "ts": int(event_ms[i]),
            "path": _PATHS[int(paths[i])],
            "bytes": int(sizes[i]),
            "latency_ms": float(latency[i]),
        }
        if broken[i]:
            yield _break(event, int(kinds[i]))
        else:
            yield orjson.dumps(event)


def _break(event: dict[str, object], kind: int) -> bytes:
    """One of several kinds of bad input."""
    if kind == 0:
        return orjson.dumps(event)[:-7]  # truncated JSON
    if kind == 1:
        event.pop("client_id")
        return orjson.dumps(event)
    if kind == 2:
        event["latency_ms"] = "slow"
        return orjson.dumps(event)
    if kind == 3:
        event["ts"] = 12_345  # 1970: implausible
        return orjson.dumps(event)
    if kind == 4:
        return orjson.dumps(event).replace(b"/api", b"/\xff\xfeapi")  # not UTF-8
    return orjson.dumps(event).replace(str(event["bytes"]).encode(), b"NaN", 1)  # not JSON


def write_log(path: Path, options: GeneratorOptions) -> int:
    """Write a generated log to ``path`` (gzip when it ends in .gz); return the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "wb") as handle:  # type: ignore[operator]
        buffer: list[bytes] = []
        for line in generate_lines(options):
            buffer.append(line)
            if len(buffer) >= 50_000:
                handle.write(b"\n".join(buffer) + b"\n")
                count += len(buffer)
                buffer = []
        if buffer:
            handle.write(b"\n".join(buffer) + b"\n")
            count += len(buffer)
    return count
