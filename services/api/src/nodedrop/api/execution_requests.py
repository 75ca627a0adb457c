"""Pure rules of ``POST /api/executions``: which trigger, which node, which input.

No I/O here: the route loads what these functions need (recorded outputs) and passes it in.
Every rejection is an :class:`UnprocessableError` whose ``loc`` names the body field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from nodedrop.api.errors import UnprocessableError, located, problem
from nodedrop.contracts.items import REF_KEY, Item, PortItems
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import Connection, Workflow, trigger_ids

DEFAULT_TRIGGER_INPUT: list[Item] = [{}]
#: Items of one input (a trigger's list, a node-mode port) when no limit is given.
DEFAULT_MAX_ITEMS = 10_000

_trigger_input = TypeAdapter(list[Item])
_node_input = TypeAdapter(dict[str, list[Item]])


def _names(ids: list[str]) -> str:
    return ", ".join(repr(i) for i in ids) or "none"


def choose_trigger(workflow: Workflow, registry: NodeTypeRegistry, requested: str | None) -> str:
    """The trigger to start from: the requested one, or the only one the workflow has."""
    triggers = trigger_ids(workflow, registry)
    if requested is None:
        if len(triggers) == 1:
            return triggers[0]
        raise UnprocessableError(
            [
                problem(
                    ["body", "trigger"],
                    f"the workflow has {len(triggers)} triggers, name one of: {_names(triggers)}",
                    "trigger_required",
                )
            ]
        )
    if requested not in triggers:
        known = any(node.id == requested for node in workflow.nodes)
        what = "is not a trigger node" if known else "is not a node of the workflow"
        raise UnprocessableError(
            [
                problem(
                    ["body", "trigger"],
                    f"{requested!r} {what}; triggers: {_names(triggers)}",
                    "unknown_trigger",
                )
            ]
        )
    return requested


def node_mode_trigger(
    workflow: Workflow, registry: NodeTypeRegistry, requested: str | None
) -> str | None:
    """In node mode the trigger is context only (``execution.trigger`` in expressions):
    the requested one if valid, else the only trigger, else none."""
    if requested is not None:
        return choose_trigger(workflow, registry, requested)
    triggers = trigger_ids(workflow, registry)
    return triggers[0] if len(triggers) == 1 else None


def check_node(workflow: Workflow, node: str | None) -> str:
    if node is None:
        raise UnprocessableError(
            [problem(["body", "node"], "required when mode is 'node'", "missing")]
        )
    if not any(n.id == node for n in workflow.nodes):
        raise UnprocessableError(
            [problem(["body", "node"], f"{node!r} is not a node of the workflow", "unknown_node")]
        )
    return node


def _too_many(loc: list[str | int], count: int, max_items: int) -> UnprocessableError:
    return UnprocessableError(
        [problem(loc, f"{count:,} items; an input has at most {max_items:,}", "too_long")]
    )


def trigger_input(raw: Any, max_items: int = DEFAULT_MAX_ITEMS) -> list[Item]:
    """Trigger mode: a list of JSON objects, ``[{}]`` when omitted."""
    if raw is None:
        return [dict(item) for item in DEFAULT_TRIGGER_INPUT]
    if isinstance(raw, list) and len(raw) > max_items:
        raise _too_many(["body", "input"], len(raw), max_items)
    try:
        items = _trigger_input.validate_python(raw)
    except ValidationError as error:
        raise UnprocessableError(
            located(
                ["body", "input"],
                [
                    problem(
                        e["loc"],
                        f"{e['msg']} (trigger mode takes a list of JSON objects)",
                        e["type"],
                    )
                    for e in error.errors(include_url=False)
                ],
            )
        ) from None
    refuse_references(items, ["body", "input"])
    return items


def refuse_references(items: list[Item], loc: list[str | int]) -> None:
    """Only a runner that stored data may reference it: users may not send the reserved key
    (it would let them read data stored for somebody else's execution)."""
    for index, item in enumerate(items):
        if REF_KEY in item:
            raise UnprocessableError(
                [problem([*loc, index, REF_KEY], f"the key {REF_KEY!r} is reserved", "reserved")]
            )


def node_input(raw: Any, max_items: int = DEFAULT_MAX_ITEMS) -> PortItems:
    """Node mode: ``{port: [items]}``."""
    if isinstance(raw, dict):
        for port, items in raw.items():
            if isinstance(items, list) and len(items) > max_items:
                raise _too_many(["body", "input", port], len(items), max_items)
    try:
        ports = _node_input.validate_python(raw)
    except ValidationError as error:
        raise UnprocessableError(
            located(
                ["body", "input"],
                [
                    problem(
                        e["loc"],
                        f"{e['msg']} (node mode takes {{port: [JSON objects]}})",
                        e["type"],
                    )
                    for e in error.errors(include_url=False)
                ],
            )
        ) from None
    for port, items in ports.items():
        refuse_references(items, ["body", "input", port])
    return ports


def incoming(workflow: Workflow, node: str) -> list[Connection]:
    return [c for c in workflow.connections if c.to == node]


def parents(workflow: Workflow, node: str) -> list[str]:
    """The nodes with a connection into ``node``, once each, in connection order."""
    return list(dict.fromkeys(c.from_ for c in incoming(workflow, node)))


def pinned_outputs(workflow: Workflow, nodes: list[str]) -> dict[str, PortItems]:
    pinned: dict[str, PortItems] = {}
    for node_id in nodes:
        node = workflow.node(node_id)
        if node.pinned_output is not None:
            pinned[node_id] = node.pinned_output
    return pinned


def assemble_node_input(
    workflow: Workflow, node: str, outputs: Mapping[str, Mapping[str, list[Item]]]
) -> PortItems:
    """The input ``node`` would get from its parents' ``outputs``: per input port, the items of
    every connection into it, concatenated in connection order (docs/nodes.md, "Data between
    nodes")."""
    connections = incoming(workflow, node)
    missing = [p for p in parents(workflow, node) if p not in outputs]
    if missing:
        raise UnprocessableError(
            [
                problem(
                    ["body", "input"],
                    f"parent node {p!r} of {node!r} has no recorded output (no finished "
                    f"execution of this workflow ran it and it has no pinned_output); "
                    f"run it first or pass input",
                    "missing_parent_output",
                )
                for p in missing
            ]
        )
    assembled: PortItems = {}
    for conn in connections:
        items = outputs[conn.from_].get(conn.output) or []
        assembled.setdefault(conn.input, []).extend(dict(item) for item in items)
    return assembled


def check_input_ports(
    workflow: Workflow, registry: NodeTypeRegistry, node: str, given: PortItems
) -> PortItems:
    """A given node-mode input may only use ports the node's type accepts."""
    spec = registry.get(workflow.node(node).type)
    accepted = spec.input_ports if spec is not None else None
    if not accepted:  # None: any port (merge); (): a trigger, whose output is its input
        return given
    wrong = [port for port in given if port not in accepted]
    if wrong:
        raise UnprocessableError(
            [
                problem(
                    ["body", "input", port],
                    f"node {node!r} has no input port {port!r} (ports: {_names(list(accepted))})",
                    "unknown_port",
                )
                for port in wrong
            ]
        )
    return given
