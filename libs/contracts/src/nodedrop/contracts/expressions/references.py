"""Which earlier nodes' outputs a node's parameters read (``nodes["id"]``).

The scheduler sends a runner only the upstream outputs a node's expressions can reach, not the
whole execution's data: ``nodes["fetch"]`` and ``nodes.fetch`` name their node; any other use of
``nodes`` (``nodes[item.key]``, ``nodes`` alone) may reach any of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from nodedrop.contracts.expressions.errors import ExpressionError
from nodedrop.contracts.expressions.templates import compile_template

#: ``referenced_nodes`` answers this when an expression may read any node.
ANY_NODE = "*"


def referenced_nodes(value: Any) -> frozenset[str]:
    """Node ids whose outputs ``value``'s expressions read; ``{ANY_NODE}`` if not knowable.
    Invalid expressions reference nothing (they fail when evaluated, naming themselves)."""
    found: set[str] = set()
    for source in _expression_sources(value):
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError:
            continue
        found |= _names_read(tree)
    return frozenset(found)


def _expression_sources(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if "{{" not in value:
            return
        try:
            template = compile_template(value)
        except ExpressionError:
            return
        yield from (expression.source for expression in template.expressions)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expression_sources(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expression_sources(item)


def _names_read(tree: ast.AST) -> set[str]:
    named: set[str] = set()
    direct: set[int] = set()  # ids of the `nodes` Name nodes used as nodes["x"] / nodes.x
    for node in ast.walk(tree):
        base = node.value if isinstance(node, ast.Subscript | ast.Attribute) else None
        if not (isinstance(base, ast.Name) and base.id == "nodes"):
            continue
        if isinstance(node, ast.Attribute):
            named.add(node.attr)
            direct.add(id(base))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and (isinstance(node.slice.value, str))
        ):
            named.add(node.slice.value)
            direct.add(id(base))
    dynamic = any(
        isinstance(node, ast.Name) and node.id == "nodes" and id(node) not in direct
        for node in ast.walk(tree)
    )
    return named | {ANY_NODE} if dynamic else named
