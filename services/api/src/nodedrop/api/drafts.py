"""Drafts: a saved workflow may have problems; only running it needs a valid definition.

A save with ``?draft=true`` stores any definition of the *storable shape* (below) and answers
the problems that every other check finds, with locations relative to the definition
(``["nodes", 1, "parameters", "url"]``). The same checks refuse a run of it (422), so nothing
invalid ever reaches the event log, the schedules' bucket or a runner.

The storable shape is what the api's own code walks in a stored definition (nodes by index,
parameters by name) and what an editor can show: an object whose ``name`` is text, ``nodes``
a list of objects with text ``id`` and ``type`` and an object of ``parameters``,
``connections`` a list of objects and ``settings`` an object. Anything else is a 422 even for a
draft.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.called_workflows import called_workflow_problems
from nodedrop.api.db import EncodedJson
from nodedrop.api.definitions import (
    CheckedDefinition,
    is_large,
    revalidate_off_loop,
    stored_definition,
)
from nodedrop.api.errors import Loc, Problem, UnprocessableError, located, problem
from nodedrop.api.offload import run_off_loop_if
from nodedrop.api.used_credentials import credential_problems
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import (
    DEFAULT_LIMITS,
    Workflow,
    WorkflowInvalid,
    WorkflowLimits,
    validate_workflow,
)
from nodedrop.platform.schedules import SCHEDULE_TRIGGER_TYPE

#: The name a draft without one is stored under (the model's default).
UNTITLED = "Untitled"
_MAX_NAME = 200
_TEXT_FIELDS = ("id", "type")


def shape_problems(data: Mapping[str, Any], limits: WorkflowLimits) -> list[Problem]:
    """Why ``data`` cannot even be stored as a draft (relative locations); empty if it can."""
    problems: list[Problem] = []
    name = data.get("name", UNTITLED)
    if not isinstance(name, str) or len(name) > _MAX_NAME:
        message = f"must be text of at most {_MAX_NAME} characters"
        problems.append(problem(["name"], message, "type"))
    for key, kind in (("settings", dict), ("nodes", list), ("connections", list)):
        if key in data and not isinstance(data[key], kind):
            problems.append(problem([key], f"must be {_KIND_NAMES[kind]}", "type"))
    nodes = data.get("nodes")
    if isinstance(nodes, list):
        if len(nodes) > limits.max_nodes:
            problems.append(
                problem(
                    ["nodes"],
                    f"{len(nodes):,} nodes; a workflow has at most {limits.max_nodes:,}",
                    "too_long",
                )
            )
            return problems
        for index, node in enumerate(nodes):
            problems.extend(_node_shape_problems(index, node))
    connections = data.get("connections")
    if isinstance(connections, list):
        problems.extend(
            problem(["connections", index], "must be an object", "type")
            for index, connection in enumerate(connections)
            if not isinstance(connection, dict)
        )
    return problems


_KIND_NAMES: dict[type, str] = {dict: "an object", list: "a list"}


def _node_shape_problems(index: int, node: object) -> list[Problem]:
    if not isinstance(node, dict):
        return [problem(["nodes", index], "must be an object", "type")]
    problems = [
        problem(["nodes", index, field], "must be text", "type")
        for field in _TEXT_FIELDS
        if field in node and not isinstance(node[field], str)
    ]
    if "parameters" in node and not isinstance(node["parameters"], dict):
        problems.append(problem(["nodes", index, "parameters"], "must be an object", "type"))
    return problems


@dataclass(frozen=True)
class SavedForm:
    """What a save stores: the JSON, the workflow when it is valid, and its problems."""

    stored: EncodedJson
    workflow: Workflow | None
    problems: list[Problem]

    @property
    def name(self) -> str:
        name = self.stored.get("name")
        return name if isinstance(name, str) else UNTITLED


def _validated(
    data: Any, registry: NodeTypeRegistry, limits: WorkflowLimits
) -> tuple[Workflow | None, list[Problem]]:
    try:
        return validate_workflow(data, registry, limits), []
    except WorkflowInvalid as invalid:
        return None, list(invalid.problems)


def _saved_form(
    data: dict[str, Any], registry: NodeTypeRegistry, limits: WorkflowLimits
) -> SavedForm:
    workflow, problems = _validated(data, registry, limits)
    if workflow is not None:
        return SavedForm(stored_definition(workflow), workflow, [])
    # Stored as sent, with the top-level keys a valid one always has.
    draft = {"name": UNTITLED, "nodes": [], "connections": [], "settings": {}, **data}
    return SavedForm(EncodedJson(draft), None, problems)


async def saved_form(
    data: dict[str, Any],
    registry: NodeTypeRegistry,
    limits: WorkflowLimits,
    *,
    draft: bool,
) -> SavedForm:
    """The definition a save stores. Not a draft: any problem is a 422 at ``body`` as it always
    was. A draft: only a definition not of the storable shape is."""
    if draft:
        shape = shape_problems(data, limits)
        if shape:
            raise UnprocessableError(located(["body"], shape))
    form = await run_off_loop_if(is_large(data), _saved_form, data, registry, limits)
    if form.problems and not draft:
        raise UnprocessableError(located(["body"], form.problems))
    return form


async def reference_problems(
    session: AsyncSession,
    workflow: Workflow,
    owner: str,
    registry: NodeTypeRegistry,
    loc: Loc,
    *,
    itself: str | None = None,
) -> list[Problem]:
    """The workflows it calls and the credentials its nodes use that are not the owner's."""
    return [
        *await called_workflow_problems(session, workflow, owner, loc, itself=itself),
        *await credential_problems(session, workflow, owner, registry, loc),
    ]


async def stored_problems(
    session: AsyncSession,
    definition: dict[str, Any],
    owner: str,
    registry: NodeTypeRegistry,
    *,
    itself: str,
) -> list[Problem]:
    """Every problem of a stored definition, as a run would find them (relative locations).
    Not against the size limits, which may have been lowered since it was saved."""
    workflow, problems = await run_off_loop_if(
        is_large(definition), _validated, definition, registry, DEFAULT_LIMITS
    )
    if workflow is None:
        return problems
    return await reference_problems(session, workflow, owner, registry, [], itself=itself)


def schedulable(definition: Mapping[str, Any], registry: NodeTypeRegistry) -> bool:
    """Whether a stored definition may have a schedule entry: a draft with problems may not
    (the scheduler would fire a run that cannot run). Only definitions holding a
    ``schedule_trigger`` node are validated for this."""
    nodes = definition.get("nodes")
    if not isinstance(nodes, list) or not any(
        isinstance(node, dict) and node.get("type") == SCHEDULE_TRIGGER_TYPE for node in nodes
    ):
        return False
    return _validated(definition, registry, DEFAULT_LIMITS)[0] is not None


async def runnable(
    session: AsyncSession,
    definition: dict[str, Any],
    owner: str,
    registry: NodeTypeRegistry,
    loc: Loc,
    *,
    itself: str,
) -> CheckedDefinition:
    """A saved workflow's definition, checked as a save without ``draft`` checks it: a 422
    under ``loc`` naming every problem, or the definition to run."""
    checked = await revalidate_off_loop(definition, registry, loc)
    problems = await reference_problems(
        session, checked.workflow, owner, registry, loc, itself=itself
    )
    if problems:
        raise UnprocessableError(problems)
    return checked
