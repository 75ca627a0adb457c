"""The S1, S4 and S9 workloads as n8n workflows (n8n's JSON export format), each behind a webhook
trigger that answers once its last node has run (``responseMode: lastNode``), so that a request
is timed from outside as nodedrop's and DBOS's are.

- S1 ``POST /webhook/chain``: the trigger, then ``nodes`` No Operation nodes in a chain.
- S4 ``POST /webhook/fan`` with ``{"items": [...]}``: n8n has no parallel branches (a node runs
  once over all its input items, one node at a time), so the nearest it comes to a fan-out and
  join is ``Split Out`` (one item per element), a No Operation node over all the items, and
  ``Aggregate`` (the join, one item).
- S9 ``POST /webhook/one``: the trigger and one Edit Fields (Set) node answering
  ``{"id": the execution's id}``.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

CHAIN = "chain"
FAN = "fan"
ONE = "one"


def _node(name: str, kind: str, version: float, x: int, **parameters: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nodedrop-bench/{name}")),
        "name": name,
        "type": f"n8n-nodes-base.{kind}",
        "typeVersion": version,
        "position": [x * 220, 0],
        "parameters": parameters,
    }


def _webhook(path: str) -> dict[str, Any]:
    node = _node("Webhook", "webhook", 2, 0, httpMethod="POST", path=path, responseMode="lastNode")
    node["parameters"]["options"] = {}
    node["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"nodedrop-bench/webhook/{path}"))
    return node


def _workflow(name: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """``nodes`` connected one after the other."""
    connections = {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(nodes)
    }
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nodedrop-bench/workflow/{name}")).replace(
            "-", ""
        )[:16],
        "name": f"nodedrop bench {name}",
        "active": True,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
    }


def chain(nodes: int) -> dict[str, Any]:
    steps = [_node(f"Step {i}", "noOp", 1, i) for i in range(1, nodes + 1)]
    return _workflow(CHAIN, [_webhook(CHAIN), *steps])


def fan() -> dict[str, Any]:
    return _workflow(
        FAN,
        [
            _webhook(FAN),
            _node("Split Out", "splitOut", 1, 1, fieldToSplitOut="body.items", options={}),
            _node("Each", "noOp", 1, 2),
            _node("Join", "aggregate", 1, 3, aggregate="aggregateAllItemData", options={}),
        ],
    )


def one() -> dict[str, Any]:
    # Its one step answers the run's id, as nodedrop's and DBOS's submit-and-wait do (the load
    # generator reads it from each answer); a No Operation node would echo the request.
    step = _node("Step", "set", 3.4, 1, options={})
    step["parameters"]["assignments"] = {
        "assignments": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "nodedrop-bench/one/id")),
                "name": "id",
                "value": "={{ $execution.id }}",
                "type": "string",
            }
        ]
    }
    return _workflow(ONE, [_webhook(ONE), step])


def all_workflows(chain_nodes: int) -> list[dict[str, Any]]:
    return [chain(chain_nodes), fan(), one()]
