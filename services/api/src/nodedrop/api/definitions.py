"""Workflow definitions as the API receives, documents and stores them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import WithJsonSchema

from nodedrop.api.db import EncodedJson
from nodedrop.api.errors import Loc, UnprocessableError, located
from nodedrop.api.offload import run_off_loop_if
from nodedrop.api.settings import ApiSettings
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


def workflow_limits(config: ApiSettings) -> WorkflowLimits:
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
    """A stored definition, checked again before it runs: it may be a draft saved with
    problems, and node types come and go with plugins. (Not against the size limits, which may
    have been lowered since: what was saved stays runnable.)"""
    try:
        return validate_workflow(definition, registry)
    except WorkflowInvalid as invalid:
        raise UnprocessableError(
            located(
                loc,
                [
                    {**p, "msg": f"the saved workflow cannot run: {p['msg']}"}
                    for p in invalid.problems
                ],
            )
        ) from None


#: A definition with more nodes and connections than this is checked in a worker thread, so
#: that the event loop goes on serving other requests meanwhile (a 2,000-node definition takes
#: about 0.1 s to check); a smaller one is checked faster than it is handed over.
OFF_LOOP_ABOVE = 200


@dataclass(frozen=True)
class CheckedDefinition:
    """A valid definition, as a :class:`Workflow` and as the JSON that is stored and recorded
    (``Workflow.to_json``): both made in the same worker thread for a big one, since dumping
    the model back to JSON costs about a tenth of checking it."""

    workflow: Workflow
    as_json: dict[str, Any]


def is_large(data: Any) -> bool:
    """Whether a definition is large enough to be handled in a worker thread."""
    if not isinstance(data, dict):
        return False
    nodes, connections = data.get("nodes"), data.get("connections")
    size = (len(nodes) if isinstance(nodes, list) else 0) + (
        len(connections) if isinstance(connections, list) else 0
    )
    return size > OFF_LOOP_ABOVE


def _checked(workflow: Workflow) -> CheckedDefinition:
    return CheckedDefinition(workflow, workflow.to_json())


def _parse_checked(
    data: Any, registry: NodeTypeRegistry, loc: Loc, limits: WorkflowLimits
) -> CheckedDefinition:
    return _checked(parse_definition(data, registry, loc, limits))


def _revalidate_checked(
    definition: dict[str, Any], registry: NodeTypeRegistry, loc: Loc
) -> CheckedDefinition:
    return _checked(revalidate(definition, registry, loc))


async def parse_definition_off_loop(
    data: Any, registry: NodeTypeRegistry, loc: Loc, limits: WorkflowLimits = DEFAULT_LIMITS
) -> CheckedDefinition:
    """:func:`parse_definition`, in a worker thread when the definition is large."""
    return await run_off_loop_if(is_large(data), _parse_checked, data, registry, loc, limits)


async def revalidate_off_loop(
    definition: dict[str, Any], registry: NodeTypeRegistry, loc: Loc
) -> CheckedDefinition:
    """:func:`revalidate`, in a worker thread when the definition is large."""
    return await run_off_loop_if(
        is_large(definition), _revalidate_checked, definition, registry, loc
    )


def stored_definition(definition: Workflow | CheckedDefinition) -> EncodedJson:
    """What is stored and answered: the definition as a user would write it, with the
    top-level keys always present."""
    if isinstance(definition, Workflow):
        definition = _checked(definition)
    return EncodedJson(
        {"name": definition.workflow.name, "connections": [], "settings": {}, **definition.as_json}
    )


async def stored_definition_off_loop(definition: CheckedDefinition) -> EncodedJson:
    """:func:`stored_definition`, in a worker thread when the definition is large."""
    return await run_off_loop_if(is_large(definition.as_json), stored_definition, definition)
