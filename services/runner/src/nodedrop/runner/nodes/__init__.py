"""Node implementations: the API custom nodes are written against, the built-ins, the registry."""

from nodedrop.runner.nodes.api import Credential, NodeContext, NodeError, NodeImplementation
from nodedrop.runner.nodes.registry import NodeRegistry, load_registry

__all__ = [
    "Credential",
    "NodeContext",
    "NodeError",
    "NodeImplementation",
    "NodeRegistry",
    "load_registry",
]
