"""An n8n workflow (its JSON export) converted to a nodedrop definition, with a report. Pure:
the command reads the file and saves the result (nodedrop.cli.workflows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nodedrop.cli.n8n.expressions import Names
from nodedrop.cli.n8n.nodes import MAIN, MAPPERS, Context, Mapped, unmapped

#: nodedrop node ids: a letter, then at most 63 letters, digits, ``_`` or ``-``.
_ID_LENGTH = 64
_DROPPED_TYPES = {"n8n-nodes-base.stickyNote"}
_WEBHOOK = "n8n-nodes-base.webhook"


@dataclass(frozen=True)
class NodeReport:
    name: str
    n8n_type: str
    node_id: str
    nodedrop_type: str
    lost: list[str]
    approximate: list[str]


@dataclass
class Conversion:
    name: str
    definition: dict[str, Any]
    nodes: list[NodeReport] = field(default_factory=list)
    #: Workflow-level things that did not map (connections, settings, dropped nodes).
    lost: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.lost and not any(node.lost for node in self.nodes)

    def report(self) -> str:
        lines = [
            f"n8n workflow {self.name!r}: {len(self.definition['nodes'])} nodes, "
            f"{len(self.definition['connections'])} connections"
            + ("" if self.complete else " (not everything mapped: see below)")
        ]
        for node in self.nodes:
            lines.append(
                f"  {node.name!r} ({node.n8n_type}) -> {node.node_id} ({node.nodedrop_type})"
            )
            lines += [f"      NOT MAPPED: {what}" for what in node.lost]
            lines += [f"      differs: {what}" for what in node.approximate]
        lines += [f"  NOT MAPPED: {what}" for what in self.lost]
        return "\n".join(lines)


def node_id(name: str, taken: set[str]) -> str:
    """A nodedrop id for an n8n node name: ``HTTP Request 2`` -> ``http_request_2``."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-").lower() or "node"
    if not base[0].isalpha():
        base = f"n_{base}"
    candidate, suffix = base[:_ID_LENGTH], 2
    while candidate in taken:
        tail = f"_{suffix}"
        candidate = base[: _ID_LENGTH - len(tail)] + tail
        suffix += 1
    taken.add(candidate)
    return candidate


def _common_settings(node: dict[str, Any], mapped: Mapped, out: dict[str, Any]) -> None:
    """n8n's per-node settings: retries, error handling, disabled."""
    if node.get("retryOnFail"):
        out["retry"] = {
            "max_attempts": int(node.get("maxTries", 3)),
            "initial_interval_ms": int(node.get("waitBetweenTries", 1000)),
            "backoff_coefficient": 1.0,
        }
    on_error = node.get("onError") or (
        "continueRegularOutput" if node.get("continueOnFail") else None
    )
    if on_error == "continueErrorOutput":
        out["on_error"] = "error_output"
        mapped.outputs = [*mapped.outputs, "error"]
    elif on_error == "continueRegularOutput":
        out["on_error"] = "continue"
        mapped.approximate.append(
            "on error it goes on without this node's output (n8n: passes the error on as an item)"
        )
    if node.get("alwaysOutputData"):
        mapped.lost.append("alwaysOutputData: a node without items is skipped here")
    if node.get("executeOnce"):
        mapped.lost.append("executeOnce: the node runs for every item here")


def convert_n8n(workflow: Any) -> Conversion:
    """The nodedrop definition of one n8n workflow and what did not map."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise ValueError("not an n8n workflow: expected an object with a list of nodes")
    name = str(workflow.get("name") or "imported from n8n")
    conversion = Conversion(name, {"name": name, "nodes": [], "connections": []})
    taken: set[str] = set()
    sources = [n for n in workflow["nodes"] if isinstance(n, dict)]
    dropped = [n for n in sources if n.get("type") in _DROPPED_TYPES]
    if dropped:
        conversion.lost.append(f"{len(dropped)} sticky notes dropped")
    sources = [n for n in sources if n.get("type") not in _DROPPED_TYPES]
    ids = {str(n.get("name")): node_id(str(n.get("name", "node")), taken) for n in sources}
    timezone = (workflow.get("settings") or {}).get("timezone")
    zone = timezone if isinstance(timezone, str) else None
    webhooks = frozenset(str(n.get("name")) for n in sources if n.get("type") == _WEBHOOK)
    parents = _main_parents(workflow.get("connections") or {})
    mapped_by_name: dict[str, Mapped] = {}
    pinned = workflow.get("pinData") or {}
    for source in sources:
        node_name, n8n_type = str(source.get("name")), str(source.get("type", "?"))
        mapper = MAPPERS.get(n8n_type)
        # $json is a webhook's request only in a node whose every parent is a webhook.
        fed = bool(parents.get(node_name)) and parents[node_name] <= webhooks
        context = Context(Names(ids, webhooks, fed), zone)
        mapped = mapper(source.get("parameters") or {}, context) if mapper else unmapped(n8n_type)
        node: dict[str, Any] = {"id": ids[node_name], "type": mapped.type, "name": node_name}
        if source.get("disabled"):
            mapped.lost.append("disabled in n8n: enabled here")
        if mapped.parameters:
            node["parameters"] = mapped.parameters
        node.update(mapped.node_settings)
        _common_settings(source, mapped, node)
        position = source.get("position")
        if isinstance(position, list) and len(position) == 2:
            node["position"] = {"x": position[0], "y": position[1]}
        if node_name in pinned:
            node["pinned_output"] = {MAIN: [i.get("json", i) for i in pinned[node_name]]}
        conversion.definition["nodes"].append(node)
        mapped_by_name[node_name] = mapped
        conversion.nodes.append(
            NodeReport(
                node_name, n8n_type, node["id"], mapped.type, mapped.lost, mapped.approximate
            )
        )
    conversion.definition["connections"] = _connections(
        workflow.get("connections") or {}, ids, mapped_by_name, conversion.lost
    )
    timeout_s = (workflow.get("settings") or {}).get("executionTimeout")
    if isinstance(timeout_s, int) and timeout_s > 0:
        conversion.definition["settings"] = {"timeout_ms": timeout_s * 1000}
    return conversion


def _main_parents(connections: dict[str, Any]) -> dict[str, set[str]]:
    """n8n node name -> the names of the nodes with a main connection into it."""
    parents: dict[str, set[str]] = {}
    for source, kinds in connections.items():
        for targets in (kinds or {}).get("main") or []:
            for target in targets or []:
                parents.setdefault(str(target.get("node")), set()).add(source)
    return parents


def _connections(
    connections: dict[str, Any],
    ids: dict[str, str],
    mapped: dict[str, Mapped],
    lost: list[str],
) -> list[dict[str, str]]:
    """n8n's ``{source: {"main": [[{"node", "index"}], ...]}}`` as nodedrop connections, the
    output index turned into the source's port and the input index into the target's."""
    result: list[tuple[int, dict[str, str]]] = []
    for source, kinds in connections.items():
        if source not in ids:
            lost.append(f"connections from {source!r}, which is not in the workflow")
            continue
        for kind, outputs in (kinds or {}).items():
            if kind != "main":
                lost.append(f"{source!r}: {kind} connections (n8n AI nodes) have no equivalent")
                continue
            for index, targets in enumerate(outputs or []):
                ports = mapped[source].outputs
                if index >= len(ports):
                    if targets:
                        lost.append(f"{source!r}: output {index} has no nodedrop port")
                    continue
                for target in targets or []:
                    to = target.get("node")
                    if to not in ids:
                        lost.append(f"{source!r} -> {to!r}: no such node")
                        continue
                    connection = {"from": ids[source], "to": ids[to]}
                    if ports[index] != MAIN:
                        connection["output"] = ports[index]
                    inputs = mapped[to].inputs
                    if inputs is not None:
                        connection["input"] = inputs(int(target.get("index", 0)))
                    result.append((int(target.get("index", 0)), connection))
    # nodedrop's merge concatenates its inputs in the order their connections are listed, n8n's
    # in the order of its input indexes: list connections into a lower index first.
    result.sort(key=lambda indexed: indexed[0])
    return [connection for _, connection in result]
