"""Secrets a workflow definition holds in node parameters (a webhook trigger's ``secret``).

The saved workflow keeps them, as the api needs them to check an incoming webhook. Everywhere
else a definition travels (recorded events, the schedules' bucket, API answers, exports) they
are masked as credentials are: ``****`` and at most the last 4 characters. A save that sends a
masked value back keeps the stored secret, so a client can round-trip what it read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nodedrop.contracts.credential_types import MASK, mask

#: Node type -> the parameters that are secrets.
SECRET_PARAMETERS: Mapping[str, frozenset[str]] = {"webhook_trigger": frozenset({"secret"})}


def _secret_spots(definition: Mapping[str, Any]) -> Iterator[tuple[int, str, Any]]:
    """(node index, parameter, value) of every secret the definition holds."""
    nodes = definition.get("nodes")
    if not isinstance(nodes, list):
        return
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            continue
        names = SECRET_PARAMETERS.get(str(node.get("type")), frozenset())
        parameters = node.get("parameters")
        if not names or not isinstance(parameters, Mapping):
            continue
        for name in sorted(names):
            value = parameters.get(name)
            if isinstance(value, str) and value:
                yield index, name, value


def _with_values(
    definition: Mapping[str, Any], values: Mapping[tuple[int, str], str]
) -> dict[str, Any]:
    """A copy of ``definition`` with the given parameters replaced; only the nodes touched are
    copied (definitions can be large)."""
    nodes = list(definition["nodes"])
    for (index, name), value in values.items():
        node = dict(nodes[index])
        node["parameters"] = {**node["parameters"], name: value}
        nodes[index] = node
    return {**definition, "nodes": nodes}


def masked(definition: Mapping[str, Any]) -> dict[str, Any]:
    """``definition`` with every secret masked (the same object's contents if it has none)."""
    values = {
        (index, name): mask(value)
        for index, name, value in _secret_spots(definition)
        if not is_masked(value)  # masked already (a rerun of a recorded request)
    }
    return _with_values(definition, values) if values else dict(definition)


def is_masked(value: str) -> bool:
    return value.startswith(MASK)


def keep_stored(
    definition: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, list[tuple[int, str]]]:
    """``definition`` with each masked secret replaced by the stored one it masks (same node
    id, same parameter), or None if it sent none back masked; and the (node index, parameter)
    of masked values that mask nothing stored, which a save must refuse."""
    kept: dict[str, str] = {}
    if stored is not None:
        stored_nodes = stored.get("nodes") or []
        for index, name, value in _secret_spots(stored):
            node_id = stored_nodes[index].get("id")
            kept[f"{node_id}\0{name}"] = value
    nodes = definition.get("nodes") or []
    values: dict[tuple[int, str], str] = {}
    unknown: list[tuple[int, str]] = []
    for index, name, value in _secret_spots(definition):
        if not is_masked(value):
            continue
        original = kept.get(f"{nodes[index].get('id')}\0{name}")
        if original is not None and mask(original) == value:
            values[(index, name)] = original
        else:
            unknown.append((index, name))
    return (_with_values(definition, values) if values else None), unknown
