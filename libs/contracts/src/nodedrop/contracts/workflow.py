"""Workflow definitions (docs/nodes.md, "Workflow definitions") and their validation.

:func:`validate_workflow` is the one door into a :class:`Workflow`: it checks the JSON shape with
pydantic, then the graph (types, ids, ports, cycles, triggers) against a node type registry, and
reports every problem with its location in FastAPI's ``{"loc", "msg", "type"}`` form.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nodedrop.contracts.expressions import ExpressionError, check_syntax, compile_template
from nodedrop.contracts.expressions.limits import MAX_EXPRESSION_LENGTH
from nodedrop.contracts.items import ERROR_PORT, MAIN_PORT, REF_KEY, Item
from nodedrop.contracts.nodetypes import BUILTIN_SPECS, NodeTypeRegistry, NodeTypeSpec

NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
PORT_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_TIMEOUT_MS = 31 * 24 * 3600 * 1000
#: The highest ``settings.max_concurrent`` (a running set held in one key-value entry).
MAX_CONCURRENT = 1000
#: The most nodes any definition may have (the API's setting may lower it: WorkflowLimits).
MAX_NODES = 5000
OnError = Literal["fail", "continue", "error_output"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval_ms: int = Field(default=1000, ge=0, le=MAX_TIMEOUT_MS)
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=100.0)
    max_interval_ms: int | None = Field(default=None, ge=0, le=MAX_TIMEOUT_MS)
    non_retryable_errors: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_interval_ms is not None and self.max_interval_ms < self.initial_interval_ms:
            raise ValueError("max_interval_ms must be >= initial_interval_ms")
        return self

    @property
    def effective_max_interval_ms(self) -> int:
        if self.max_interval_ms is not None:
            return self.max_interval_ms
        return 100 * self.initial_interval_ms

    def delay_ms(self, failed_attempt: int) -> int:
        """Delay before attempt ``failed_attempt + 1``: min(initial x coefficient^(n-1), max)."""
        raw = self.initial_interval_ms * self.backoff_coefficient ** (failed_attempt - 1)
        return int(min(raw, self.effective_max_interval_ms))


class Position(_Strict):
    x: float
    y: float


class Node(_Strict):
    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_ms: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_MS)
    on_error: OnError = "fail"
    pinned_output: dict[str, list[Item]] | None = None
    position: Position | None = None

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retry or _NO_RETRY


_NO_RETRY = RetryPolicy()


class Connection(_Strict):
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    output: str = Field(default=MAIN_PORT, pattern=PORT_PATTERN)
    input: str = Field(default=MAIN_PORT, pattern=PORT_PATTERN)


class Settings(_Strict):
    timeout_ms: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_MS)
    #: At most this many executions of the workflow (from its triggers) run at once; more
    #: wait, queued, in the order they come, and start as running ones end.
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_CONCURRENT)
    #: A saved workflow (of the same owner) to run from its ``error_trigger`` node when an
    #: execution of this one ends ``failed`` or ``timed_out`` (docs/nodes.md, "Error workflows").
    error_workflow_id: str | None = Field(default=None, min_length=1, max_length=128)


class Workflow(_Strict):
    name: str = Field(default="Untitled", max_length=200)
    nodes: list[Node] = Field(max_length=MAX_NODES)
    connections: list[Connection] = Field(default_factory=list, max_length=20000)
    settings: Settings = Field(default_factory=Settings)

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_json(self) -> dict[str, Any]:
        """The definition as JSON, with defaults left out (what a user would write)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


Problem = dict[str, Any]


@dataclass(frozen=True)
class WorkflowLimits:
    """Size limits a definition must keep to: the API's settings (docs/api.md "Limits"). The
    defaults are the ceilings that hold whatever the settings: the model's and the evaluator's."""

    max_nodes: int = MAX_NODES
    #: Characters of one ``{{ }}`` expression.
    max_expression_length: int = MAX_EXPRESSION_LENGTH
    #: Items of one port of a node's ``pinned_output``; None: no limit.
    max_items: int | None = None


DEFAULT_LIMITS = WorkflowLimits()


class WorkflowInvalid(ValueError):  # noqa: N818 - a verdict, read as "the workflow is invalid"
    """A definition was rejected; ``problems`` are FastAPI-style ``{"loc", "msg", "type"}``."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))


def _problem(loc: list[str | int], msg: str, kind: str) -> Problem:
    return {"loc": loc, "msg": msg, "type": kind}


def validate_workflow(
    data: Any, registry: NodeTypeRegistry, limits: WorkflowLimits = DEFAULT_LIMITS
) -> Workflow:
    """Parse and check a definition; raise :class:`WorkflowInvalid` naming every problem."""
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        # Before parsing: the size alone decides, whatever the nodes hold.
        raise WorkflowInvalid(
            [
                _problem(
                    ["nodes"],
                    f"{len(nodes):,} nodes; a workflow has at most {limits.max_nodes:,}",
                    "too_long",
                )
            ]
        )
    # by_name=False: only the JSON names are fields ("from", "json"); the Python names that
    # populate_by_name allows in code ("from_", "json_body") are unknown fields in a definition.
    try:
        workflow = Workflow.model_validate(data, by_name=False)
    except ValidationError as error:
        raise WorkflowInvalid(
            [_problem(list(e["loc"]), e["msg"], e["type"]) for e in error.errors(include_url=False)]
        ) from None
    problems = graph_problems(workflow, registry) + size_problems(workflow, limits, registry)
    if problems:
        raise WorkflowInvalid(problems)
    return workflow


def graph_problems(workflow: Workflow, registry: NodeTypeRegistry) -> list[Problem]:
    """Everything wrong with a structurally valid workflow's graph, in document order."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    outputs: dict[str, tuple[str, ...]] = {}
    for i, node in enumerate(workflow.nodes):
        if node.id in index:
            problems.append(
                _problem(
                    ["nodes", i, "id"],
                    f"duplicate node id {node.id!r} (first at nodes[{index[node.id]}])",
                    "duplicate_node_id",
                )
            )
            continue
        index[node.id] = i
        spec = registry.get(node.type)
        if spec is None:
            problems.append(
                _problem(
                    ["nodes", i, "type"], f"unknown node type {node.type!r}", "unknown_node_type"
                )
            )
            continue
        try:
            parameters = spec.parameters.model_validate(node.parameters, by_name=False)
        except ValidationError as error:
            problems.extend(
                _problem(
                    ["nodes", i, "parameters", *e["loc"]],
                    f"node {node.id!r}: {e['msg']}",
                    e["type"],
                )
                for e in error.errors(include_url=False)
            )
            continue
        problems.extend(
            _problem(
                ["nodes", i, "parameters", *found.path],
                f"node {node.id!r}: {found.message}",
                "expression",
            )
            for found in check_syntax(template_parameters(node.parameters, spec))
        )
        ports = spec.output_ports(parameters)
        if node.on_error == "error_output":
            ports = (*ports, ERROR_PORT)
        outputs[node.id] = ports
        for port, items in (node.pinned_output or {}).items():
            if any(REF_KEY in item for item in items):
                problems.append(
                    _problem(
                        ["nodes", i, "pinned_output", port],
                        f"node {node.id!r}: the key {REF_KEY!r} is reserved",
                        "reserved",
                    )
                )
        for port in sorted(set(node.pinned_output or {}) - set(ports)):
            problems.append(
                _problem(
                    ["nodes", i, "pinned_output", port],
                    f"node {node.id!r} has no output port {port!r}",
                    "unknown_port",
                )
            )

    for j, conn in enumerate(workflow.connections):
        for end, node_id in (("from", conn.from_), ("to", conn.to)):
            if node_id not in index:
                problems.append(
                    _problem(
                        ["connections", j, end],
                        f"connection {end} unknown node {node_id!r}",
                        "unknown_node",
                    )
                )
        if conn.from_ in outputs and conn.output not in outputs[conn.from_]:
            problems.append(
                _problem(
                    ["connections", j, "output"],
                    f"node {conn.from_!r} has no output port {conn.output!r} "
                    f"(ports: {', '.join(outputs[conn.from_]) or 'none'})",
                    "unknown_port",
                )
            )
        target = workflow.nodes[index[conn.to]] if conn.to in index else None
        target_spec = registry.get(target.type) if target else None
        if target_spec is not None:
            if target_spec.input_ports == ():
                problems.append(
                    _problem(
                        ["connections", j, "to"],
                        f"trigger node {conn.to!r} takes no input",
                        "unknown_port",
                    )
                )
            elif target_spec.input_ports is not None and conn.input not in target_spec.input_ports:
                problems.append(
                    _problem(
                        ["connections", j, "input"],
                        f"node {conn.to!r} has no input port {conn.input!r}",
                        "unknown_port",
                    )
                )

    if not any(
        (spec := registry.get(n.type)) is not None and spec.is_trigger for n in workflow.nodes
    ):
        problems.append(_problem(["nodes"], "workflow has no trigger node", "no_trigger"))
    for i, node in enumerate(workflow.nodes):
        # A webhook answering with a node's items must name a node of the workflow.
        answering = node.parameters.get("response_node") if node.type == "webhook_trigger" else None
        if isinstance(answering, str) and answering not in index:
            problems.append(
                _problem(
                    ["nodes", i, "parameters", "response_node"],
                    f"response_node {answering!r} is not a node of the workflow",
                    "unknown_node",
                )
            )

    cycle = find_cycle(workflow)
    if cycle:
        problems.append(
            _problem(
                ["connections"],
                f"connections form a cycle: {' -> '.join([*cycle, cycle[0]])}",
                "cycle",
            )
        )
    return problems


def template_parameters(parameters: dict[str, Any], spec: NodeTypeSpec | None) -> dict[str, Any]:
    """The parameters that may hold ``{{ expressions }}``: all but the type's literal ones."""
    if spec is None or not spec.literal_parameters:
        return parameters
    return {k: v for k, v in parameters.items() if k not in spec.literal_parameters}


_BUILTIN_BY_TYPE = {spec.type: spec for spec in BUILTIN_SPECS}


def expression_parameters(node: Node) -> dict[str, Any]:
    """The node's parameters that may hold expressions, as far as the built-in types tell
    (``code``'s source never does; a custom type's parameters all may): what the scheduler
    reads for the upstream outputs a node's expressions need."""
    return template_parameters(node.parameters, _BUILTIN_BY_TYPE.get(node.type))


def size_problems(
    workflow: Workflow, limits: WorkflowLimits, registry: NodeTypeRegistry | None = None
) -> list[Problem]:
    """Expressions and pinned outputs over the limits (node counts are checked before)."""
    problems: list[Problem] = []
    for i, node in enumerate(workflow.nodes):
        spec = registry.get(node.type) if registry is not None else None
        for path, length in _expression_lengths(template_parameters(node.parameters, spec)):
            if length > limits.max_expression_length:
                problems.append(
                    _problem(
                        ["nodes", i, "parameters", *path],
                        f"node {node.id!r}: expression of {length:,} characters; at most "
                        f"{limits.max_expression_length:,}",
                        "too_long",
                    )
                )
        for port, items in (node.pinned_output or {}).items():
            if limits.max_items is not None and len(items) > limits.max_items:
                problems.append(
                    _problem(
                        ["nodes", i, "pinned_output", port],
                        f"node {node.id!r}: {len(items):,} items; at most {limits.max_items:,}",
                        "too_long",
                    )
                )
    return problems


def _expression_lengths(value: Any) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """(path, characters) of every expression in a parameter value that compiles (those that
    do not are reported by the syntax check)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, str) and "{{" in current:
            try:
                template = compile_template(current)
            except ExpressionError:
                continue
            for expression in template.expressions:
                yield path, len(expression.source)
        elif isinstance(current, dict):
            stack.extend(((*path, key), child) for key, child in current.items())
        elif isinstance(current, list):
            stack.extend(((*path, index), child) for index, child in enumerate(current))


def find_cycle(workflow: Workflow) -> list[str] | None:
    """One cycle's nodes in connection order, or None (iterative DFS, safe for deep graphs)."""
    children: dict[str, list[str]] = defaultdict(list)
    for conn in workflow.connections:
        children[conn.from_].append(conn.to)
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = defaultdict(int)
    for root in (n.id for n in workflow.nodes):
        if colour[root] != white:
            continue
        path: list[str] = [root]
        iterators = [iter(children[root])]
        colour[root] = grey
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iterators.pop()
            elif colour[nxt] == grey:
                return path[path.index(nxt) :]
            elif colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iterators.append(iter(children[nxt]))
    return None


def trigger_ids(workflow: Workflow, registry: NodeTypeRegistry) -> list[str]:
    return [
        n.id
        for n in workflow.nodes
        if (spec := registry.get(n.type)) is not None and spec.is_trigger
    ]
