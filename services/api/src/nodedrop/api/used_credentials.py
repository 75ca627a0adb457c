"""Save-time check of the credentials a workflow's nodes name (``http_request``'s
``credential``, and any parameter a node type declares as one): each must be a credential of
the workflow's owner. Caught where the user is editing; the runner checks again when a node
runs, since a credential may be deleted in between."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api import credential_store
from nodedrop.api.errors import Loc, Problem, problem
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import Workflow


async def credential_problems(
    session: AsyncSession, workflow: Workflow, owner: str, registry: NodeTypeRegistry, loc: Loc
) -> list[Problem]:
    """A 422 problem naming each credential parameter whose id is no credential of ``owner``
    (another user's reads the same as a missing one: its existence is not theirs to learn)."""
    owned: dict[str, bool] = {}
    problems: list[Problem] = []
    for index, node in enumerate(workflow.nodes):
        spec = registry.get(node.type)
        for name in spec.credential_parameters if spec is not None else ():
            credential_id = node.parameters.get(name)
            if not isinstance(credential_id, str) or not credential_id:
                continue
            if credential_id not in owned:
                row = await credential_store.get(session, credential_id)
                owned[credential_id] = row is not None and row.owner == owner
            if not owned[credential_id]:
                problems.append(
                    problem(
                        [*loc, "nodes", index, "parameters", name],
                        f"no credential {credential_id} of this workflow's owner",
                        "value_error",
                    )
                )
    return problems
