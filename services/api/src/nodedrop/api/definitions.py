"""Workflow definitions as the API receives, documents and stores them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import WithJsonSchema

from nodedrop.api.errors import Loc, UnprocessableError, located
from nodedrop.contracts.config import Config
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import (
    DEFAULT_LIMITS,
    Workflow,
    WorkflowInvalid,
    WorkflowLimits,
    validate_workflow,
)

_SCHEMA_REFS = "#/components/schemas/{model}"

#: A definition arrives as plain JSON and goes through ``validate_workflow`` (which only accepts
#: the JSON names, e.g. ``from``); the OpenAPI document still shows the Workflow schema.
WorkflowJson = Annotated[
    dict[str, Any], WithJsonSchema({"$ref": _SCHEMA_REFS.format(model="Workflow")})
]


def openapi_schemas() -> dict[str, Any]:
    """Workflow and the models it uses, for the OpenAPI document's components."""
    schema = Workflow.model_json_schema(by_alias=True, ref_template=_SCHEMA_REFS)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {**definitions, "Workflow": schema}


def workflow_limits(config: Config) -> WorkflowLimits:
    return WorkflowLimits(
        max_nodes=config.max_workflow_nodes,
        max_expression_length=config.max_expression_length,
        max_items=config.max_input_items,
    )


def parse_definition(
    data: Any, registry: NodeTypeRegistry, loc: Loc, limits: WorkflowLimits = DEFAULT_LIMITS
) -> Workflow:
    """``validate_workflow``, its problems located under ``loc`` (e.g. ``["body"]``)."""
    try:
        return validate_workflow(data, registry, limits)
    except WorkflowInvalid as invalid:
        raise UnprocessableError(located(loc, invalid.problems)) from None


def revalidate(definition: dict[str, Any], registry: NodeTypeRegistry, loc: Loc) -> Workflow:
    """A stored definition, checked again: node types come and go with plugins. (Not against
    the size limits, which may have been lowered since: what was saved stays runnable.)"""
    try:
        return validate_workflow(definition, registry)
    except WorkflowInvalid as invalid:
        raise UnprocessableError(
            located(
                loc,
                [
                    {**p, "msg": f"the saved workflow is no longer valid: {p['msg']}"}
                    for p in invalid.problems
                ],
            )
        ) from None


#: A definition with more nodes and connections than this is validated in a worker thread, so
#: that the event loop goes on serving other requests meanwhile (a 2,000-node definition takes
#: 0.1 to 0.4 s to check); a smaller one is checked faster than it is handed over.
OFF_LOOP_ABOVE = 200


def _off_loop(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    nodes, connections = data.get("nodes"), data.get("connections")
    size = (len(nodes) if isinstance(nodes, list) else 0) + (
        len(connections) if isinstance(connections, list) else 0
    )
    return size > OFF_LOOP_ABOVE


async def parse_definition_off_loop(
    data: Any, registry: NodeTypeRegistry, loc: Loc, limits: WorkflowLimits = DEFAULT_LIMITS
) -> Workflow:
    """:func:`parse_definition`, in a worker thread when the definition is large."""
    if _off_loop(data):
        return await asyncio.to_thread(parse_definition, data, registry, loc, limits)
    return parse_definition(data, registry, loc, limits)


async def revalidate_off_loop(
    definition: dict[str, Any], registry: NodeTypeRegistry, loc: Loc
) -> Workflow:
    """:func:`revalidate`, in a worker thread when the definition is large."""
    if _off_loop(definition):
        return await asyncio.to_thread(revalidate, definition, registry, loc)
    return revalidate(definition, registry, loc)


def stored_definition(workflow: Workflow) -> dict[str, Any]:
    """What is stored and answered: the definition as a user would write it, with the
    top-level keys always present."""
    return {"name": workflow.name, "connections": [], "settings": {}, **workflow.to_json()}
