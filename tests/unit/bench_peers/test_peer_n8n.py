"""n8n beside nodedrop in ``make bench``: the parts that need no n8n (the Node.js check that skips
it, the workflows it is given, its cells in the side-by-side table)."""

from __future__ import annotations

import pytest
from tests.bench import n8n_workflows, side_by_side
from tests.bench.peer_n8n import N8nResult, parse_node_version, skip_reason
from tests.bench.peer_rates import RateStep
from tests.bench.stats import Outcome, Row


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v20.20.2\n", (20, 20, 2)),
        ("v24.9.0", (24, 9, 0)),
        ("v22.1.0-nightly2024", (22, 1, 0)),
        ("20.19.0", (20, 19, 0)),
        ("", None),
        ("node: command not found", None),
        ("v20", None),
    ],
)
def test_the_node_version_is_read_from_node_version(
    text: str, version: tuple[int, ...] | None
) -> None:
    assert parse_node_version(text) == version


def test_n8n_is_skipped_with_a_line_saying_why_without_node_20() -> None:
    assert skip_reason(None, None, None) == (
        "skipped: no Node.js found (n8n needs Node.js >= 20 and npm)"
    )
    assert skip_reason("/usr/bin/node", "v18.19.1", "/usr/bin/npm") == (
        "skipped: Node.js 18.19.1 found, n8n needs Node.js >= 20"
    )
    assert skip_reason("/usr/bin/node", "garbage", "/usr/bin/npm") == (
        "skipped: cannot read the Node.js version ('garbage')"
    )
    assert skip_reason("/usr/bin/node", "v20.20.2", None) == (
        "skipped: Node.js found but not npm (n8n is installed with npm)"
    )


@pytest.mark.parametrize("version", ["v20.0.0", "v22.3.1", "v24.9.0"])
def test_n8n_runs_with_node_20_or_later_and_npm(version: str) -> None:
    assert skip_reason("/usr/bin/node", version, "/usr/bin/npm") is None


def test_the_chain_is_a_webhook_answering_after_its_last_of_40_steps() -> None:
    workflow = n8n_workflows.chain(40)
    nodes = workflow["nodes"]
    assert len(nodes) == 41
    webhook = nodes[0]
    assert webhook["type"] == "n8n-nodes-base.webhook"
    assert webhook["parameters"]["responseMode"] == "lastNode"
    assert webhook["parameters"]["path"] == n8n_workflows.CHAIN
    # One path from the trigger through every step, each node once.
    order = [webhook["name"]]
    while (after := workflow["connections"].get(order[-1])) is not None:
        [[edge]] = after["main"]
        order.append(edge["node"])
    assert order == [node["name"] for node in nodes]
    assert len({node["id"] for node in nodes}) == 41


def test_the_fan_out_splits_the_items_and_joins_them_in_one() -> None:
    kinds = [node["type"].removeprefix("n8n-nodes-base.") for node in n8n_workflows.fan()["nodes"]]
    assert kinds == ["webhook", "splitOut", "noOp", "aggregate"]


def test_the_submit_and_wait_step_answers_the_runs_id_as_the_load_generator_reads_it() -> None:
    webhook, step = n8n_workflows.one()["nodes"]
    assert webhook["parameters"]["responseMode"] == "lastNode"
    assert step["type"] == "n8n-nodes-base.set"
    [field] = step["parameters"]["assignments"]["assignments"]
    assert (field["name"], field["value"]) == ("id", "={{ $execution.id }}")


def test_the_workflows_have_distinct_ids_and_webhook_paths() -> None:
    workflows = n8n_workflows.all_workflows(40)
    assert len({w["id"] for w in workflows}) == 3
    assert {w["nodes"][0]["parameters"]["path"] for w in workflows} == {"chain", "fan", "one"}


def _outcomes() -> dict[str, Outcome]:
    return {
        "S1": Outcome(metrics={"p50_ms": 4.0, "e2e_ms": 200.0}),
        "S4": Outcome(metrics={"e2e_ms": 2000.0}),
        "S9": Outcome(
            rows=[Row("S9", "submit-and-wait", "", "100/s, p99 80.0 ms, 12.0 ms CPU")],
            metrics={"rate": 100.0, "p99_ms": 80.0, "cpu_ms": 12.0, "cpu_rate": 100.0},
        ),
    }


def _row(lines: list[str], start: str) -> list[str]:
    [line] = [line for line in lines if line.startswith(f"| {start}")]
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_n8n_has_columns_of_its_own_with_its_durability_and_no_ratio_for_the_fan_out() -> None:
    n8n = N8nResult(
        version="2.41.1",
        chain_whole_ms=[40.0, 50.0, 60.0],
        fan_whole_ms=[70.0],
        submit_steps=[RateStep(10, 100, 100, 10, 20.0, 60.0, 90.0)],
    )
    lines = side_by_side.table(_outcomes(), None, None, n8n)
    header = _row(lines, "work")
    assert header[-2:] == ["n8n", "n8n ÷ nodedrop"]
    chain = _row(lines, "40 trivial")
    assert chain[-2].startswith("50.0 ms (1.25 ms per step, kept in memory)")
    assert chain[-1] == "0.2x"  # n8n is ahead: nodedrop takes 4x its time
    fan = _row(lines, "1,000-way")
    assert "no parallel branches" in fan[-2]
    assert fan[-1] == "-"
    assert _row(lines, "1-step")[-1] == "10.0x"  # nodedrop sustains 100/s, n8n 10/s
    assert _row(lines, "durability")[-2] == side_by_side.DURABILITY["n8n"]


def test_n8n_skipped_says_why_in_every_cell_and_in_the_details() -> None:
    n8n = N8nResult(error="skipped: no Node.js found (n8n needs Node.js >= 20 and npm)")
    lines = side_by_side.table(_outcomes(), None, None, n8n)
    assert _row(lines, "40 trivial")[-2] == f"not measured: {n8n.error}"
    assert side_by_side.n8n_details(n8n)[0] == f"**n8n**: not measured: {n8n.error}"
