"""The Grafana dashboard and the Prometheus alert rules in infra/: they parse, and every metric
they name is one the services export (nodedrop.platform.metrics, plus prometheus-client's process
collector), so a renamed or removed metric cannot leave them silently empty."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the environment
from prometheus_client import REGISTRY

import nodedrop.platform.metrics  # noqa: F401  # defines the metrics in the default registry

INFRA = Path(__file__).resolve().parents[3] / "infra"
DASHBOARD = INFRA / "grafana" / "nodedrop-dashboard.json"
ALERTS = INFRA / "prometheus" / "nodedrop-alerts.yaml"

#: A metric name in an expression: ours, or the process collector's.
_METRIC = re.compile(r"\b(?:nodedrop|process)_[a-z0-9_]+\b")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def exported() -> set[str]:
    """Every sample name the default registry can produce."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard_expressions()


def test_the_alert_rules_have_the_fields_prometheus_needs() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "NodedropConsumerLagGrowing",
        "NodedropExecutionsStuck",
        "NodedropDeadLetters",
        "NodedropRunnersSaturated",
    }
    for rule in rules:
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize(
    ("where", "expressions"),
    [
        ("dashboard", dashboard_expressions),
        ("alert rules", lambda: [rule["expr"] for rule in alert_rules()]),
    ],
)
def test_every_metric_named_is_exported(where: str, expressions: Any) -> None:
    known = exported()
    named = {name for expr in expressions() for name in _METRIC.findall(expr)}
    assert named, f"the {where} name no metric"
    assert named - known == set(), f"the {where} name metrics nobody exports"


def test_every_nodedrop_metric_is_on_the_dashboard() -> None:
    """The other way round: a metric added to the services gets a panel."""
    on_dashboard = {name for expr in dashboard_expressions() for name in _METRIC.findall(expr)}
    ours = {f.name for f in REGISTRY.collect() if f.name.startswith("nodedrop_")}
    shown = {name for name in ours if any(n.startswith(name) for n in on_dashboard)}
    assert ours - shown == set()
