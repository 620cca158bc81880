"""The job spec: a YAML file naming a source, its windows and its rules, validated once.

Every error names the file, the line and the field, and is raised before any
output is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from connectors.event_decoding import TimeFormat
from jobs.conditions import Condition, parse_condition
from jobs.yaml_lines import load_with_lines
from windows.aggregates import NUMERIC_KINDS, AggregateKind, parse_aggregate
from windows.definitions import EmitMode, HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec
from windows.durations import parse_duration_ms
from windows.errors import SpecError

#: Traces kept per window result (the newest events'); decisions carry them.
DEFAULT_TRACE_LINKS = 4


@dataclass(frozen=True)
class SourceSpec:
    """Where events come from and how to read their key and time."""

    topic: str
    key: str
    timestamp: str
    timestamp_format: TimeFormat = TimeFormat.EPOCH_MS
    partitions: int = 1
    max_event_bytes: int = 1_048_576
    max_ahead: int = 86_400_000
    idle_timeout: int | None = None  # ms without records before wall clock moves an idle partition's stream time


@dataclass(frozen=True)
class RuleSpec:
    """A rule: when ``condition`` holds for a result of ``window``, decide ``action``."""

    name: str
    window: str
    condition: Condition
    action: str


@dataclass(frozen=True)
class JobSpec:
    """A validated job."""

    name: str
    source: SourceSpec
    windows: tuple[WindowSpec, ...]
    rules: tuple[RuleSpec, ...]
    kafka: tuple[tuple[str, Any], ...] = ()  # the spec's kafka: settings, as (name, value) pairs

    @property
    def traced(self) -> bool:
        """Whether windows keep event traces (then every event needs a trace id)."""
        return any(w.trace_links > 0 for w in self.windows)

    @property
    def numeric_fields(self) -> tuple[str, ...]:
        """Fields that must hold numbers (read by sum, min, max, mean, first, last, pNN, decay)."""
        fields = {a.field for w in self.windows for a in w.aggregates if a.kind in NUMERIC_KINDS and a.field}
        return tuple(sorted(f for f in fields if f is not None))

    @property
    def distinct_fields(self) -> tuple[str, ...]:
        """Fields counted by ``distinct`` (any JSON scalar)."""
        fields = {a.field for w in self.windows for a in w.aggregates if a.kind is AggregateKind.DISTINCT}
        return tuple(sorted(f for f in fields if f is not None))

    @property
    def state_fingerprint(self) -> str:
        """Hash of everything that shapes window state; stored state from another shape is refused."""
        shape = [
            [
                w.name,
                type(w.definition).__name__,
                sorted(vars(w.definition).items()),
                [[a.name, a.kind.value, a.field, a.quantile, a.half_life] for a in w.aggregates],
                w.trace_links,
            ]
            for w in self.windows
        ]
        payload = orjson.dumps([self.name, self.source.partitions, self.source.key, shape])
        return hashlib.blake2b(payload, digest_size=12).hexdigest()

    def window(self, name: str) -> WindowSpec:
        """The window called ``name``."""
        for spec in self.windows:
            if spec.name == name:
                return spec
        raise KeyError(name)


class _Reader:
    """Reads plain YAML data with errors that name the file, line and field."""

    def __init__(self, source: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: tuple[Any, ...], message: str) -> SpecError:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        where = f"{self.source} line {line}" if line else self.source
        field = ".".join(str(p) for p in path) or "(top level)"
        return SpecError(f"{where}: {field}: {message}")

    def mapping(self, value: Any, path: tuple[Any, ...], allowed: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}.")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail((*path, unknown[0]), f"unknown field; allowed fields are {', '.join(sorted(allowed))}.")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(path, f"missing required field {missing[0]!r}.")
        return value

    def text(self, value: Any, path: tuple[Any, ...]) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {value!r}.")
        return value

    def positive_int(self, value: Any, path: tuple[Any, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(path, f"expected a positive whole number, got {value!r}.")
        return value

    def duration(self, value: Any, path: tuple[Any, ...]) -> int:
        try:
            return parse_duration_ms(value, field="duration")
        except SpecError as error:
            raise self.fail(path, str(error).removeprefix("duration: ")) from None


def parse_job_spec(text: str, source: str = "<spec>") -> JobSpec:
    """Validate a job spec given as YAML text."""
    data, lines = load_with_lines(text, source)
    r = _Reader(source, lines)
    top = r.mapping(
        data, (), {"name", "source", "windows", "rules", "kafka", "trace_links"}, {"name", "source", "windows"}
    )
    name = r.text(top["name"], ("name",))

    src = r.mapping(
        top["source"],
        ("source",),
        {"topic", "key", "timestamp", "timestamp_format", "partitions", "max_event_bytes", "max_ahead", "idle_timeout"},
        {"key", "timestamp"},
    )
    try:
        ts_format = TimeFormat(src.get("timestamp_format", "epoch_ms"))
    except ValueError:
        raise r.fail(("source", "timestamp_format"), "expected one of epoch_ms, epoch_s, rfc3339.") from None
    source_spec = SourceSpec(
        topic=r.text(src.get("topic", name), ("source", "topic")),
        key=r.text(src["key"], ("source", "key")),
        timestamp=r.text(src["timestamp"], ("source", "timestamp")),
        timestamp_format=ts_format,
        partitions=r.positive_int(src.get("partitions", 1), ("source", "partitions")),
        max_event_bytes=r.positive_int(src.get("max_event_bytes", 1_048_576), ("source", "max_event_bytes")),
        max_ahead=r.duration(src.get("max_ahead", "1d"), ("source", "max_ahead")),
        idle_timeout=r.duration(src["idle_timeout"], ("source", "idle_timeout")) if "idle_timeout" in src else None,
    )
    kafka = _kafka(r, top.get("kafka"))

    raw_windows = top["windows"]
    if not isinstance(raw_windows, dict) or not raw_windows:
        raise r.fail(("windows",), "expected a mapping of window names to window definitions.")
    windows = tuple(_window(r, str(wname), wdata) for wname, wdata in raw_windows.items())
    if len(windows) > 255:
        raise r.fail(("windows",), "at most 255 windows per job.")
    links = top.get("trace_links", DEFAULT_TRACE_LINKS)
    if isinstance(links, bool) or not isinstance(links, int) or not 0 <= links <= 16:
        raise r.fail(("trace_links",), f"expected a whole number from 0 to 16, got {links!r}.")
    windows = tuple(replace(w, trace_links=links) for w in windows)

    raw_rules = top.get("rules") or []
    if not isinstance(raw_rules, list):
        raise r.fail(("rules",), "expected a list of rules.")
    rules = tuple(_rule(r, i, rule, windows) for i, rule in enumerate(raw_rules))
    rule_names = [rule.name for rule in rules]
    for i, rule_name in enumerate(rule_names):
        if rule_names.index(rule_name) != i:
            raise r.fail(("rules", i, "name"), f"rule name {rule_name!r} is used twice.")
    return JobSpec(name=name, source=source_spec, windows=windows, rules=rules, kafka=kafka)


_KAFKA_TEXT = (
    "bootstrap_servers",
    "client_id",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
)


def _kafka(r: _Reader, data: Any) -> tuple[tuple[str, Any], ...]:
    """The spec's broker settings; secrets (sasl_password) belong in WINNOW_KAFKA_SASL_PASSWORD."""
    if data is None:
        return ()
    if isinstance(data, dict) and "sasl_password" in data:
        raise r.fail(
            ("kafka", "sasl_password"), "secrets do not belong in a spec; set WINNOW_KAFKA_SASL_PASSWORD instead."
        )
    section = r.mapping(data, ("kafka",), {*_KAFKA_TEXT, "replication_factor"}, set())
    values: list[tuple[str, Any]] = []
    for name, value in section.items():
        if name == "replication_factor":
            values.append((name, r.positive_int(value, ("kafka", name))))
        else:
            values.append((name, r.text(value, ("kafka", name))))
    return tuple(values)


def _window(r: _Reader, name: str, data: Any) -> WindowSpec:
    path: tuple[Any, ...] = ("windows", name)
    w = r.mapping(
        data,
        path,
        {"type", "size", "step", "grace", "emit", "aggregate", "update_interval"},
        {"type", "size", "aggregate"},
    )
    kind = w["type"]
    size = r.duration(w["size"], (*path, "size"))
    grace = r.duration(w.get("grace", 0), (*path, "grace"))
    try:
        if kind == "tumbling":
            if "step" in w:
                raise r.fail((*path, "step"), "tumbling windows take no step; use type: hopping.")
            definition: TumblingWindows | HoppingWindows | SlidingWindows = TumblingWindows(size, grace)
        elif kind == "hopping":
            if "step" not in w:
                raise r.fail(path, "missing required field 'step' for a hopping window.")
            definition = HoppingWindows(size, r.duration(w["step"], (*path, "step")), grace)
        elif kind == "sliding":
            if "step" in w:
                raise r.fail((*path, "step"), "sliding windows take no step.")
            definition = SlidingWindows(size, grace)
        else:
            raise r.fail((*path, "type"), f"expected tumbling, hopping or sliding, got {kind!r}.")
    except SpecError as error:
        if str(error).startswith(r.source):
            raise
        raise r.fail(path, str(error)) from None
    try:
        emit = EmitMode(w.get("emit", "final"))
    except ValueError:
        raise r.fail((*path, "emit"), f"expected final or update, got {w.get('emit')!r}.") from None
    aggregate = w["aggregate"]
    if not isinstance(aggregate, dict) or not aggregate:
        raise r.fail(
            (*path, "aggregate"), "expected a mapping of output names to aggregations, e.g. {requests: count}."
        )
    specs = []
    for out_name, expression in aggregate.items():
        try:
            specs.append(parse_aggregate(str(out_name), expression))
        except SpecError as error:
            raise r.fail((*path, "aggregate", out_name), str(error)) from None
    update_interval = r.duration(w.get("update_interval", "1s"), (*path, "update_interval"))
    if update_interval < 0:
        raise r.fail((*path, "update_interval"), "must be zero (an update after every event) or positive.")
    return WindowSpec(name, definition, tuple(specs), emit, update_interval)


def _rule(r: _Reader, index: int, data: Any, windows: tuple[WindowSpec, ...]) -> RuleSpec:
    path: tuple[Any, ...] = ("rules", index)
    rule = r.mapping(data, path, {"name", "window", "when", "action"}, {"name", "window", "when", "action"})
    window_name = r.text(rule["window"], (*path, "window"))
    window = next((w for w in windows if w.name == window_name), None)
    if window is None:
        raise r.fail(
            (*path, "window"), f"no window named {window_name!r}; windows are {', '.join(w.name for w in windows)}."
        )
    try:
        condition = parse_condition(rule["when"], known={a.name for a in window.aggregates})
    except SpecError as error:
        raise r.fail((*path, "when"), str(error)) from None
    return RuleSpec(
        name=r.text(rule["name"], (*path, "name")),
        window=window_name,
        condition=condition,
        action=r.text(rule["action"], (*path, "action")),
    )


def parse_rule_document(
    text: str | bytes, windows: tuple[WindowSpec, ...], source: str, name: str | None = None
) -> RuleSpec:
    """One rule written on its own (YAML or JSON), as live rules are stored in etcd.

    ``name`` (the key's last segment) is used when the document has no name; when it has one, they must agree.
    """
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    data, lines = load_with_lines(raw, source)
    r = _Reader(source, {("rules", 0, *path): line for path, line in lines.items()})
    if isinstance(data, dict) and name is not None:
        if "name" in data and data["name"] != name:
            raise r.fail(
                ("rules", 0, "name"), f"the rule is stored under the name {name!r} but calls itself {data['name']!r}."
            )
        data = {**data, "name": name}
    return _rule(r, 0, data, windows)


def load_job_spec(path: str | Path) -> JobSpec:
    """Read and validate the job spec at ``path``."""
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read job spec {spec_path}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise SpecError(f"job spec {spec_path} is not UTF-8 text.") from None
    return parse_job_spec(text, str(spec_path))
