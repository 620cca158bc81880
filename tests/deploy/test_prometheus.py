"""The Prometheus configuration and alert rules: promtool's checks, and every metric they use is exported."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import yaml

from connectors.local_prometheus import LocalPrometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(PROMETHEUS / "alerts.yml")], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in rules.stdout


def check_alert_metrics_are_exported(work: Path, targets: dict[str, list[str]]) -> None:
    """Scrape ``targets`` with a real Prometheus: every metric an alert or a dashboard panel uses has a
    series, every alert and panel expression evaluates, and every panel expression returns a series."""
    from tests.deploy.test_grafana import dashboard_expressions

    expressions = alert_expressions()
    panels = dashboard_expressions()
    every = [*expressions.values(), *panels]
    names = sorted({name for expr in every for name in re.findall(r"\b(winnow_\w+)", expr)})
    with LocalPrometheus(work, targets, [PROMETHEUS / "alerts.yml"]) as prometheus:
        missing = names
        for _ in range(120):  # up to a minute of 1 s scrapes
            missing = [name for name in names if not prometheus.query(name)]
            if not missing:
                break
            time.sleep(0.5)
        assert missing == [], f"alert rules use metrics nobody exports: {missing}"
        for expression in expressions.values():
            prometheus.query(expression)  # evaluates (raises on a bad expression)
        time.sleep(2.5)  # rate() over the panels' windows needs two scrapes of the counters
        empty = [expression for expression in panels if not prometheus.query(expression)]
        assert empty == [], f"dashboard panels with no data: {empty}"
        up = prometheus.query("up")
        assert up and all(sample["value"][1] == "1" for sample in up), up


def test_every_alert_says_what_happened_and_memory_alerts_follow_the_governor_level() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
    throttled, critical = alerts["WinnowMemoryThrottled"], alerts["WinnowMemoryCritical"]
    assert re.fullmatch(r"max by \(job\) \(winnow_memory_level\) >= 2", throttled["expr"].strip())
    assert re.fullmatch(r"max by \(job\) \(winnow_memory_level\) >= 3", critical["expr"].strip())
    assert (throttled["for"], critical["for"]) == ("5m", "1m")
