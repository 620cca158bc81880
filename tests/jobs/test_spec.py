"""Job spec validation: errors name the file, line and field, before anything runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from jobs.conditions import parse_condition
from jobs.spec import load_job_spec, parse_job_spec
from windows.definitions import EmitMode, HoppingWindows, SlidingWindows, TumblingWindows
from windows.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
HEAD = "name: j\nsource: {key: k, timestamp: ts}\n"


def test_the_example_spec_loads() -> None:
    spec = load_job_spec(ROOT / "jobs" / "examples" / "api-abuse.yaml")
    assert spec.name == "api-abuse" and spec.source.partitions == 4
    per_minute, rolling, last = spec.windows
    assert per_minute.definition == TumblingWindows(60_000, 5_000)
    assert rolling.definition == HoppingWindows(300_000, 30_000, 10_000)
    assert last.definition == SlidingWindows(10_000, 2_000) and last.emit is EmitMode.UPDATE
    assert spec.numeric_fields == ("bytes", "latency_ms")
    assert [r.name for r in spec.rules] == ["burst", "slow_and_busy"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "windows:\n  a: {type: tumbling, size: 10q, aggregate: {n: count}}\n",
            r"line 4: windows\.a\.size: expected a duration",
        ),
        (
            "windows:\n  a: {type: rolling, size: 10s, aggregate: {n: count}}\n",
            r"line 4: windows\.a\.type: expected tumbling",
        ),
        ("windows:\n  a: {type: hopping, size: 10s, step: 20s, aggregate: {n: count}}\n", r"line 4: windows\.a: step"),
        (
            "windows:\n  a: {type: tumbling, size: 10s, aggregate: {n: median(x)}}\n",
            r"line 4: windows\.a\.aggregate\.n: .*unknown function 'median'",
        ),
        (
            "windows:\n  a: {type: tumbling, size: 10s, aggregate: {n: count}, colour: red}\n",
            r"windows\.a\.colour: unknown field",
        ),
        (
            "windows:\n  a: {type: tumbling, size: 10s, aggregate: {n: count}}\n"
            "rules:\n  - {name: r, window: b, when: 'n > 1', action: x}\n",
            r"line 6: rules\.0\.window: no window named 'b'",
        ),
        (
            "windows:\n  a: {type: tumbling, size: 10s, aggregate: {n: count}}\n"
            "rules:\n  - {name: r, window: a, when: 'n >', action: x}\n",
            r"line 6: rules\.0\.when: .* at column 4",
        ),
        ("windows: [1, 2]\n", r"windows: expected a mapping"),
        (
            "windows:\n  a: {type: tumbling, size: 10s, emit: update, update_interval: -1s, aggregate: {n: count}}\n",
            r"line 4: windows\.a\.update_interval: expected a duration",
        ),
    ],
)
def test_spec_errors_name_line_and_field(body: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_job_spec(HEAD + body, "job.yaml")


def test_an_update_interval_of_zero_means_an_update_after_every_event() -> None:
    body = "windows:\n  a: {type: tumbling, size: 10s, emit: update, update_interval: 0ms, aggregate: {n: count}}\n"
    (window,) = parse_job_spec(HEAD + body, "job.yaml").windows
    assert window.emit is EmitMode.UPDATE and window.update_interval == 0


def test_missing_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read job spec"):
        load_job_spec(tmp_path / "nope.yaml")


def test_conditions_evaluate_over_columns_and_missing_values_are_false() -> None:
    condition = parse_condition(
        "requests > 10 and (p99 >= 250 or not bytes / requests < 100)", known={"requests", "p99", "bytes"}
    )
    values = {
        "requests": np.array([5, 20, 20, 20]),
        "p99": np.array([300.0, 300.0, np.nan, 10.0]),
        "bytes": np.array([0.0, 0.0, 5000.0, 100.0]),
    }
    assert condition.evaluate(values, 4).tolist() == [False, True, True, False]


def test_conditions_with_and_without_arithmetic_warn_about_nothing() -> None:
    values = {"a": np.array([0, 1, 2, 3]), "b": np.array([0.0, np.nan, 4.0, np.inf])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (division by zero, NaN compared) would fail the test
        plain = parse_condition("b > 1 or a >= 3", known={"a", "b"})
        assert not plain.arithmetic
        assert plain.evaluate(values, 4).tolist() == [False, False, True, True]
        divided = parse_condition("a / b > 0.25 and b - b < 1", known={"a", "b"})
        assert divided.arithmetic
        assert divided.evaluate(values, 4).tolist() == [False, False, True, False]
        constant = parse_condition("2 > 1", known=set())
        assert constant.evaluate(values, 4).tolist() == [True] * 4


@pytest.mark.parametrize(("text", "column"), [("a >", 4), ("a > 1 and", 10), ("a $ 1", 3), ("(a > 1", 7), ("a b", 3)])
def test_bad_conditions_report_the_column(text: str, column: int) -> None:
    with pytest.raises(SpecError, match=f"column {column}"):
        parse_condition(text, known={"a", "b"})


def test_conditions_are_never_evaluated_as_python() -> None:
    with pytest.raises(SpecError):
        parse_condition("__import__('os').system('true') > 0", known={"a"})


def test_broker_settings_and_idle_timeout_are_read_from_the_spec() -> None:
    text = (
        "name: j\nsource: {key: k, timestamp: ts, idle_timeout: 30s}\n"
        "kafka:\n  bootstrap_servers: 'k1:9092,k2:9092'\n  replication_factor: 3\n"
        "windows:\n  a: {type: tumbling, size: 10s, aggregate: {n: count}}\n"
    )
    spec = parse_job_spec(text, "j.yaml")
    assert spec.source.idle_timeout == 30_000
    assert dict(spec.kafka) == {"bootstrap_servers": "k1:9092,k2:9092", "replication_factor": 3}
    secret = r"j.yaml line 5: kafka\.sasl_password: secrets do not belong in a spec; set WINNOW_KAFKA_SASL_PASSWORD"
    with pytest.raises(SpecError, match=secret):
        parse_job_spec(text.replace("  replication_factor: 3", "  sasl_password: hunter2"), "j.yaml")
