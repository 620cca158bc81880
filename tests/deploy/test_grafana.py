"""The provisioned Grafana dashboards: every panel has a datasource, a query and a unit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of every dashboard panel."""
    return [
        target["expr"]
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
    ]


def test_there_are_dashboards_for_each_concern() -> None:
    assert {path.stem for path in DASHBOARDS} >= {
        "winnow-overview",
        "winnow-state",
        "winnow-etcd-rules",
        "winnow-backpressure",
    }


def test_governor_level_panels_name_the_levels() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "winnow-backpressure.json").read_text())
    level_panels = [
        panel
        for panel in dashboard["panels"]
        if any(re.search(r"\bwinnow_memory_level\b", target["expr"]) for target in panel["targets"])
    ]
    assert len(level_panels) >= 1
    for panel in level_panels:
        names = {
            value: option["text"]
            for mapping in panel["fieldConfig"]["defaults"]["mappings"]
            if mapping["type"] == "value"
            for value, option in mapping["options"].items()
        }
        assert names == {"0": "normal", "1": "pressure", "2": "throttle", "3": "critical"}, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_every_panel_has_a_datasource_a_query_and_a_unit(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == path.stem and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dashboard["panels"]:
        where = f"{path.name} panel {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["expr"].strip() and "winnow_" in target["expr"], where
            assert target["datasource"]["uid"] == "prometheus" and target["legendFormat"], where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where


def test_provisioning_points_at_the_datasource_and_the_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [d["uid"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "winnow.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
