from __future__ import annotations

from fastapi import APIRouter

from nodedrop.api.deps import RegistryDep
from nodedrop.api.schemas import NodeTypeList, NodeTypeOut

router = APIRouter(prefix="/node-types", tags=["node types"])


@router.get("")
async def list_node_types(registry: RegistryDep) -> NodeTypeList:
    """Every node type this deployment knows, built-ins and plugins."""
    return NodeTypeList(
        items=[
            NodeTypeOut(
                type=spec.type,
                display_name=spec.display_name,
                category=spec.category,
                description=spec.description,
                parameters_schema=spec.parameters_schema(),
                outputs=spec.static_outputs(),
            )
            for spec in registry.specs.values()
        ]
    )
