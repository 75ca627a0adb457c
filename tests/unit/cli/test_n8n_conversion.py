"""n8n workflow exports converted to nodedrop definitions: types, ports, settings, the report.

The exports are in tests/fixtures/n8n (see its README for where they come from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodedrop.cli.n8n import convert_n8n
from nodedrop.cli.n8n.workflow import node_id
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import validate_workflow

EXPORTS = Path(__file__).resolve().parents[2] / "fixtures" / "n8n"


def export(name: str) -> dict[str, Any]:
    document = json.loads((EXPORTS / name).read_text())
    workflow: dict[str, Any] = document[0] if isinstance(document, list) else document
    return workflow


def nodes_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in definition["nodes"]}


@pytest.mark.parametrize("name", sorted(p.name for p in EXPORTS.glob("*.json")))
def test_every_export_converts_to_a_valid_workflow(name: str) -> None:
    conversion = convert_n8n(export(name))
    validate_workflow(conversion.definition, NodeTypeRegistry())


def test_types_ports_and_settings_of_the_orders_workflow() -> None:
    conversion = convert_n8n(export("orders.json"))
    nodes = nodes_by_name(conversion.definition)
    assert {name: node["type"] for name, node in nodes.items()} == {
        "When clicking 'Test workflow'": "manual_trigger",
        "Compute total": "set",
        "Big order?": "if",
        "Notify sales": "http_request",
        "By country": "switch",
        "Cool down": "wait",
        "Merge": "merge",
        "Done": "noop",
        "Log failure": "noop",
    }
    assert nodes["Compute total"]["parameters"]["values"] == {
        "total": "{{ item.price * item.quantity }}",
        "source": "shop",
        "priority": 2,  # a "number" field's literal is a number, as n8n makes it
    }
    assert nodes["Big order?"]["parameters"] == {"condition": "{{ item.total > 100 }}"}
    assert nodes["By country"]["parameters"] == {
        "cases": [
            {"output": "europe", "condition": '{{ item.country == "DE" }}'},
            {"output": "us", "condition": '{{ item.country == "US" }}'},
        ],
        "default_output": "fallback",
    }
    assert nodes["Cool down"]["parameters"] == {"ms": 1000}
    sales = nodes["Notify sales"]
    assert sales["parameters"]["json"] == {
        "order": "{{ item.id }}",
        "total": "{{ item.total }}",
        "note": 'order {{ item.id }} from {{ nodes["compute_total"]["main"][0].source }}',
    }
    assert sales["parameters"]["headers"] == {"X-Source": "{{ item.source }}"}
    assert (sales["timeout_ms"], sales["on_error"]) == (5000, "error_output")
    assert sales["retry"] == {
        "max_attempts": 4,
        "initial_interval_ms": 2000,
        "backoff_coefficient": 1.0,
    }
    assert sorted(
        (c["from"], c.get("output", "main"), c["to"], c.get("input", "main"))
        for c in conversion.definition["connections"]
    ) == [
        ("big_order", "false", "by_country", "main"),
        ("big_order", "true", "notify_sales", "main"),
        ("by_country", "europe", "cool_down", "main"),
        ("by_country", "fallback", "done", "main"),
        ("by_country", "us", "merge", "input_2"),
        ("compute_total", "main", "big_order", "main"),
        ("cool_down", "main", "merge", "input_1"),
        ("merge", "main", "done", "main"),
        ("notify_sales", "error", "log_failure", "main"),
        ("when_clicking_test_workflow", "main", "compute_total", "main"),
    ]


def test_merge_inputs_are_listed_in_n8n_input_order() -> None:
    """nodedrop concatenates a merge's inputs in the order the connections are listed; n8n
    by input index (its export lists "By country" -> input 2 before "Cool down" -> input 1)."""
    connections = convert_n8n(export("orders.json")).definition["connections"]
    assert [c["input"] for c in connections if c["to"] == "merge"] == ["input_1", "input_2"]


def test_the_report_names_what_did_not_map_and_what_differs() -> None:
    report = convert_n8n(export("triggers.json")).report()
    for expected in [
        "'Webhook' (n8n-nodes-base.webhook) -> webhook (webhook_trigger)",
        "NOT MAPPED: authentication 'headerAuth'",
        "NOT MAPPED: responseMode 'lastNode'",
        "NOT MAPPED: url: \"https://crm.example.org/leads?since={{ $now.minus(1, 'day')",
        "NOT MAPPED: resume 'webhook': no equivalent; replaced by a noop",
        "NOT MAPPED: mode 'combine'",
        "differs: cron in UTC (n8n: Europe/Berlin)",
    ]:
        assert expected in report, report
    assert "(not everything mapped: see below)" in report


def test_schedules_become_cron_and_v1_conditions_translate() -> None:
    conversion = convert_n8n(export("triggers.json"))
    nodes = nodes_by_name(conversion.definition)
    assert nodes["Every weekday morning"]["parameters"] == {"cron": "30 6 * * 1-5"}
    assert nodes["Every 4 hours"]["parameters"] == {"cron": "15 */4 * * *"}
    assert nodes["Internal?"]["parameters"] == {
        "condition": '{{ item.lead.endswith("@example.org") }}'
    }
    assert nodes["Set lead"]["parameters"]["values"] == {
        "lead": "{{ item.email.lower() }}",  # after a webhook, n8n's body is the item
        "fresh": True,
    }
    assert conversion.definition["settings"] == {"timeout_ms": 300_000}


def test_an_unknown_node_type_stands_in_as_a_noop_or_a_manual_trigger() -> None:
    workflow = {
        "name": "odd",
        "nodes": [
            {"name": "Gmail Trigger", "type": "n8n-nodes-base.gmailTrigger", "parameters": {}},
            {"name": "Slack", "type": "n8n-nodes-base.slack", "parameters": {}},
        ],
        "connections": {"Gmail Trigger": {"main": [[{"node": "Slack", "index": 0}]]}},
    }
    conversion = convert_n8n(workflow)
    assert [n["type"] for n in conversion.definition["nodes"]] == ["manual_trigger", "noop"]
    assert not conversion.complete
    validate_workflow(conversion.definition, NodeTypeRegistry())


def test_node_ids_are_valid_and_unique() -> None:
    taken: set[str] = set()
    ids = [node_id(name, taken) for name in ["HTTP Request", "HTTP Request", "1st", "", "é" * 99]]
    assert ids == ["http_request", "http_request_2", "n_1st", "node", "node_2"]


def test_what_is_not_a_workflow_is_refused() -> None:
    with pytest.raises(ValueError, match="not an n8n workflow"):
        convert_n8n({"name": "no nodes"})
