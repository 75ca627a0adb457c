"""Workflow definitions: every rejection and default that docs/nodes.md ("Workflow definitions")
and docs/api.md ("Errors") name.

Each rejection is checked for its exact ``loc`` (FastAPI-style, what the API answers with 422),
its ``type`` and a ``msg`` that names the problem.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import pytest

from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import (
    Connection,
    Problem,
    RetryPolicy,
    Workflow,
    WorkflowInvalid,
    find_cycle,
    validate_workflow,
)

REGISTRY = NodeTypeRegistry()
Json = dict[str, Any]


def node(node_id: str, node_type: str = "noop", **fields: Any) -> Json:
    return {"id": node_id, "type": node_type, **fields}


def conn(source: str, target: str, **fields: Any) -> Json:
    return {"from": source, "to": target, **fields}


def workflow(*nodes: Json, connections: tuple[Json, ...] | list[Json] = ()) -> Json:
    """A definition whose first node is the trigger ``start``, followed by ``nodes``."""
    return {
        "name": "test",
        "nodes": [node("start", "manual_trigger"), *nodes],
        "connections": list(connections),
    }


def problems_of(data: Any) -> list[Problem]:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(data, REGISTRY)
    assert info.value.problems, "WorkflowInvalid must name at least one problem"
    return info.value.problems


def the_problem(data: Any) -> Problem:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


def contract_example() -> Json:
    """An order sync using most fields, with the ``notify`` node it connects to added."""
    return {
        "name": "Order sync",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "fetch",
                "type": "http_request",
                "parameters": {"method": "GET", "url": "https://api.example.org/orders"},
                "retry": {
                    "max_attempts": 3,
                    "initial_interval_ms": 200,
                    "backoff_coefficient": 2.0,
                    "max_interval_ms": 5000,
                    "non_retryable_errors": ["HttpClientError"],
                },
                "timeout_ms": 10000,
                "on_error": "fail",
            },
            {"id": "big", "type": "if", "parameters": {"condition": "{{ item.body.total > 100 }}"}},
            {
                "id": "notify",
                "type": "http_request",
                "parameters": {
                    "method": "POST",
                    "url": "https://hooks.example.org/big-order",
                    "json": {"order": "{{ item.body.id }}"},
                },
            },
        ],
        "connections": [
            {"from": "start", "to": "fetch"},
            {"from": "fetch", "to": "big"},
            {"from": "big", "output": "true", "to": "notify", "input": "main"},
        ],
        "settings": {"timeout_ms": 600000},
    }


# ------------------------------------------------------------------------------ valid definitions


def test_contract_example_validates() -> None:
    wf = validate_workflow(contract_example(), REGISTRY)

    assert [n.id for n in wf.nodes] == ["start", "fetch", "big", "notify"]
    fetch = wf.node("fetch")
    assert fetch.parameters == {"method": "GET", "url": "https://api.example.org/orders"}
    assert fetch.retry_policy == RetryPolicy(
        max_attempts=3,
        initial_interval_ms=200,
        backoff_coefficient=2.0,
        max_interval_ms=5000,
        non_retryable_errors=["HttpClientError"],
    )
    assert fetch.timeout_ms == 10000
    assert fetch.on_error == "fail"
    assert wf.connections[2] == Connection.model_validate(
        {"from": "big", "output": "true", "to": "notify", "input": "main"}
    )
    assert wf.settings.timeout_ms == 600000


def test_connection_ports_default_to_main() -> None:
    wf = validate_workflow(workflow(node("a"), connections=[conn("start", "a")]), REGISTRY)

    (connection,) = wf.connections
    assert (connection.from_, connection.to) == ("start", "a")
    assert (connection.output, connection.input) == ("main", "main")


def test_node_defaults() -> None:
    wf = validate_workflow(workflow(node("a"), connections=[conn("start", "a")]), REGISTRY)

    a = wf.node("a")
    assert (a.on_error, a.retry, a.timeout_ms, a.parameters) == ("fail", None, None, {})
    assert a.retry_policy == RetryPolicy()


def test_retry_defaults() -> None:
    policy = RetryPolicy()

    assert policy.max_attempts == 1
    assert policy.initial_interval_ms == 1000
    assert policy.backoff_coefficient == 2.0
    assert policy.non_retryable_errors == []
    assert policy.effective_max_interval_ms == 100_000
    assert RetryPolicy(initial_interval_ms=30).effective_max_interval_ms == 3000


def test_retry_given_in_a_node_fills_in_defaults() -> None:
    wf = validate_workflow(
        workflow(node("a", retry={"max_attempts": 4}), connections=[conn("start", "a")]), REGISTRY
    )

    assert wf.node("a").retry_policy == RetryPolicy(
        max_attempts=4, initial_interval_ms=1000, backoff_coefficient=2.0
    )
    assert wf.node("a").retry_policy.effective_max_interval_ms == 100_000


@pytest.mark.parametrize(
    ("policy", "failed_attempt", "delay"),
    [
        (RetryPolicy(), 1, 1000),
        (RetryPolicy(), 2, 2000),
        (RetryPolicy(), 7, 64_000),
        (RetryPolicy(), 8, 100_000),  # 128 000 capped at 100 x initial
        (RetryPolicy(), 99, 100_000),
        (RetryPolicy(initial_interval_ms=200, max_interval_ms=5000), 1, 200),
        (RetryPolicy(initial_interval_ms=200, max_interval_ms=5000), 3, 800),
        (RetryPolicy(initial_interval_ms=200, max_interval_ms=5000), 5, 3200),
        (RetryPolicy(initial_interval_ms=200, max_interval_ms=5000), 6, 5000),  # 6400 capped
        (RetryPolicy(initial_interval_ms=200, backoff_coefficient=1.5), 3, 450),
        (RetryPolicy(initial_interval_ms=500, backoff_coefficient=1.0), 10, 500),
        (RetryPolicy(initial_interval_ms=0), 5, 0),
    ],
)
def test_retry_delay_is_min_of_exponential_and_max(
    policy: RetryPolicy, failed_attempt: int, delay: int
) -> None:
    assert policy.delay_ms(failed_attempt) == delay


def test_switch_output_ports_come_from_its_cases() -> None:
    switch = node(
        "route",
        "switch",
        parameters={
            "cases": [
                {"output": "big", "condition": "{{ item.total > 100 }}"},
                {"output": "small", "condition": True},
            ],
            "default_output": "other",
        },
    )
    targets = [node(name) for name in ("b", "s", "o")]
    ok = workflow(
        switch,
        *targets,
        connections=[
            conn("start", "route"),
            conn("route", "b", output="big"),
            conn("route", "s", output="small"),
            conn("route", "o", output="other"),
        ],
    )
    validate_workflow(ok, REGISTRY)

    bad = workflow(
        switch, *targets, connections=[conn("start", "route"), conn("route", "b", output="main")]
    )
    problem = the_problem(bad)
    assert problem["loc"] == ["connections", 1, "output"]
    assert problem["type"] == "unknown_port"
    assert "'main'" in problem["msg"]
    assert "big, small, other" in problem["msg"]


def test_merge_accepts_any_input_port() -> None:
    wf = workflow(
        node("m", "merge"),
        connections=[conn("start", "m", input="left"), conn("start", "m", input="right")],
    )
    assert [c.input for c in validate_workflow(wf, REGISTRY).connections] == ["left", "right"]


@pytest.mark.parametrize("node_id", ["a", "Z", "a1", "A-b_9", "a" * 64])
def test_valid_node_ids(node_id: str) -> None:
    wf = workflow(node(node_id), connections=[conn("start", node_id)])
    assert validate_workflow(wf, REGISTRY).nodes[1].id == node_id


def chain(length: int) -> Json:
    nodes = [node("n0", "manual_trigger"), *(node(f"n{i}") for i in range(1, length))]
    connections = [conn(f"n{i}", f"n{i + 1}") for i in range(length - 1)]
    return {"nodes": nodes, "connections": connections}


def test_find_cycle_on_a_deep_chain_does_not_recurse() -> None:
    assert sys.getrecursionlimit() < 5000  # a recursive DFS would overflow on this chain
    data = chain(5000)

    assert find_cycle(Workflow.model_validate(data)) is None
    assert len(validate_workflow(data, REGISTRY).nodes) == 5000


def test_find_cycle_on_a_deep_chain_closed_into_a_loop() -> None:
    data = chain(5000)
    data["connections"].append(conn("n4999", "n1"))

    cycle = find_cycle(Workflow.model_validate(data))
    assert cycle == [f"n{i}" for i in range(1, 5000)]


# ------------------------------------------------------------------------------ graph rejections


def test_unknown_node_type() -> None:
    problem = the_problem(workflow(node("a", "telepathy"), connections=[conn("start", "a")]))

    assert problem["loc"] == ["nodes", 1, "type"]
    assert problem["type"] == "unknown_node_type"
    assert "unknown node type 'telepathy'" in problem["msg"]


def test_duplicate_node_id() -> None:
    problem = the_problem(workflow(node("a"), node("a"), connections=[conn("start", "a")]))

    assert problem["loc"] == ["nodes", 2, "id"]
    assert problem["type"] == "duplicate_node_id"
    assert "duplicate node id 'a'" in problem["msg"]
    assert "nodes[1]" in problem["msg"]


@pytest.mark.parametrize(
    ("connection", "end"),
    [(conn("ghost", "a"), "from"), (conn("a", "ghost"), "to")],
)
def test_connection_with_an_unknown_node(connection: Json, end: str) -> None:
    problem = the_problem(workflow(node("a"), connections=[conn("start", "a"), connection]))

    assert problem["loc"] == ["connections", 1, end]
    assert problem["type"] == "unknown_node"
    assert "unknown node 'ghost'" in problem["msg"]


@pytest.mark.parametrize(
    ("source", "port", "ports"),
    [
        (node("a"), "x", "main"),
        (node("a"), "error", "main"),  # `error` exists only with on_error: error_output
        (node("a", on_error="continue"), "error", "main"),
        (node("a", "if", parameters={"condition": True}), "main", "true, false"),
        (node("a", "if", parameters={"condition": True}), "maybe", "true, false"),
        (node("a", on_error="error_output"), "x", "main, error"),
        (node("a", "wait", parameters={"ms": 5}), "out", "main"),
    ],
)
def test_connection_from_an_unknown_output_port(source: Json, port: str, ports: str) -> None:
    problem = the_problem(
        workflow(source, node("b"), connections=[conn("start", "a"), conn("a", "b", output=port)])
    )

    assert problem["loc"] == ["connections", 1, "output"]
    assert problem["type"] == "unknown_port"
    assert f"node 'a' has no output port {port!r}" in problem["msg"]
    assert f"(ports: {ports})" in problem["msg"]


@pytest.mark.parametrize(
    ("source", "port"),
    [
        (node("a"), "main"),
        (node("a", "if", parameters={"condition": True}), "true"),
        (node("a", "if", parameters={"condition": True}), "false"),
        (node("a", on_error="error_output"), "main"),
        (node("a", on_error="error_output"), "error"),
        (node("a", "if", parameters={"condition": True}, on_error="error_output"), "error"),
    ],
)
def test_connection_from_a_known_output_port(source: Json, port: str) -> None:
    wf = workflow(source, node("b"), connections=[conn("start", "a"), conn("a", "b", output=port)])
    assert validate_workflow(wf, REGISTRY).connections[1].output == port


@pytest.mark.parametrize("target_type", ["noop", "if", "http_request"])
def test_connection_into_an_unknown_input_port(target_type: str) -> None:
    parameters = {"if": {"condition": True}, "http_request": {"url": "https://example.org"}}
    target = node("a", target_type, parameters=parameters.get(target_type, {}))

    problem = the_problem(workflow(target, connections=[conn("start", "a", input="side")]))

    assert problem["loc"] == ["connections", 0, "input"]
    assert problem["type"] == "unknown_port"
    assert "node 'a' has no input port 'side'" in problem["msg"]


@pytest.mark.parametrize(
    "trigger",
    [
        node("t2", "manual_trigger"),
        node("t2", "webhook_trigger"),
        node("t2", "schedule_trigger", parameters={"cron": "*/5 * * * *"}),
    ],
)
def test_connection_into_a_trigger(trigger: Json) -> None:
    problem = the_problem(workflow(trigger, connections=[conn("start", "t2")]))

    assert problem["loc"] == ["connections", 0, "to"]
    assert problem["type"] == "unknown_port"
    assert "trigger node 't2' takes no input" in problem["msg"]


def test_pinned_output_on_an_unknown_port() -> None:
    problem = the_problem(
        workflow(node("a", pinned_output={"nope": [{}]}), connections=[conn("start", "a")])
    )

    assert problem["loc"] == ["nodes", 1, "pinned_output", "nope"]
    assert problem["type"] == "unknown_port"
    assert "node 'a' has no output port 'nope'" in problem["msg"]


def cycle_in(problem: Problem) -> list[str]:
    """The node names of the cycle a problem names: ``"... cycle: a -> b -> a"``."""
    assert problem["loc"] == ["connections"]
    assert problem["type"] == "cycle"
    assert "cycle: " in problem["msg"]
    return str(problem["msg"]).split("cycle: ", 1)[1].split(" -> ")


def test_cycle_of_two_nodes() -> None:
    problem = the_problem(
        workflow(
            node("a"),
            node("b"),
            connections=[conn("start", "a"), conn("a", "b"), conn("b", "a")],
        )
    )

    assert problem["msg"] == "connections form a cycle: a -> b -> a"
    assert cycle_in(problem) == ["a", "b", "a"]


def test_longer_cycle_not_starting_at_the_first_node() -> None:
    edges = [("start", "x"), ("x", "c"), ("c", "d"), ("d", "e"), ("e", "f"), ("f", "c")]
    data = workflow(
        *(node(name) for name in ("x", "c", "d", "e", "f")),
        connections=[conn(a, b) for a, b in edges],
    )

    named = cycle_in(the_problem(data))

    # It names exactly the nodes on the loop, closed, and each step is a real connection.
    assert named[0] == named[-1]
    assert sorted(named[:-1]) == ["c", "d", "e", "f"]
    assert all(step in edges for step in itertools.pairwise(named))
    assert named == ["c", "d", "e", "f", "c"]


def test_self_loop() -> None:
    problem = the_problem(
        workflow(node("a"), node("b"), connections=[conn("start", "a"), conn("b", "b")])
    )

    assert problem["msg"] == "connections form a cycle: b -> b"


def test_cycle_outside_the_triggers_reach_is_still_rejected() -> None:
    problem = the_problem(
        workflow(node("a"), node("b"), connections=[conn("a", "b"), conn("b", "a")])
    )

    assert sorted(cycle_in(problem)[:-1]) == ["a", "b"]


@pytest.mark.parametrize(
    "nodes",
    [
        [],
        [node("a")],
        [node("a"), node("b", "wait", parameters={"ms": 1})],
    ],
)
def test_no_trigger_node(nodes: list[Json]) -> None:
    connections = [conn("a", "b")] if len(nodes) == 2 else []
    problem = the_problem({"nodes": nodes, "connections": connections})

    assert problem["loc"] == ["nodes"]
    assert problem["type"] == "no_trigger"
    assert problem["msg"] == "workflow has no trigger node"


# ------------------------------------------------------------------------------ shape rejections


@pytest.mark.parametrize(
    ("retry", "loc", "kind", "msg"),
    [
        ({"max_attempts": 0}, ["max_attempts"], "greater_than_equal", "greater than or equal to 1"),
        ({"max_attempts": 101}, ["max_attempts"], "less_than_equal", "less than or equal to 100"),
        (
            {"backoff_coefficient": 0.5},
            ["backoff_coefficient"],
            "greater_than_equal",
            "greater than or equal to 1",
        ),
        (
            {"initial_interval_ms": 2000, "max_interval_ms": 1000},
            [],
            "value_error",
            "max_interval_ms must be >= initial_interval_ms",
        ),
        (
            {"initial_interval_ms": -1},
            ["initial_interval_ms"],
            "greater_than_equal",
            "greater than or equal to 0",
        ),
        (
            {"max_interval_ms": -5},
            ["max_interval_ms"],
            "greater_than_equal",
            "greater than or equal to 0",
        ),
        ({"max_attempts": "many"}, ["max_attempts"], "int_type", "valid integer"),
        ({"max_attemps": 3}, ["max_attemps"], "extra_forbidden", "Extra inputs"),
        (
            {"non_retryable_errors": "HttpClientError"},
            ["non_retryable_errors"],
            "list_type",
            "valid list",
        ),
    ],
)
def test_invalid_retry_policy(retry: Json, loc: list[str], kind: str, msg: str) -> None:
    problem = the_problem(workflow(node("a", retry=retry), connections=[conn("start", "a")]))

    assert problem["loc"] == ["nodes", 1, "retry", *loc]
    assert problem["type"] == kind
    assert msg in problem["msg"]


@pytest.mark.parametrize("node_id", ["1abc", "", "_a", "a b", "a.b", "a/b", "é", "a\n", "a" * 65])
def test_invalid_node_id(node_id: str) -> None:
    problem = the_problem({"nodes": [node(node_id, "manual_trigger")]})

    assert problem["loc"] == ["nodes", 0, "id"]
    assert problem["type"] == "string_pattern_mismatch"
    assert "should match pattern" in problem["msg"]


@pytest.mark.parametrize(
    ("edit", "loc"),
    [
        (lambda d: d.update(owner="me"), ["owner"]),
        (lambda d: d["nodes"][1].update(colour="red"), ["nodes", 1, "colour"]),
        (lambda d: d["connections"][0].update(weight=2), ["connections", 0, "weight"]),
        (lambda d: d.update(settings={"retries": 1}), ["settings", "retries"]),
        (
            lambda d: d["nodes"][1].update(position={"x": 1, "y": 2, "z": 3}),
            ["nodes", 1, "position", "z"],
        ),
    ],
    ids=["top-level", "node", "connection", "settings", "position"],
)
def test_unknown_field(edit: Any, loc: list[str | int]) -> None:
    data = workflow(node("a"), connections=[conn("start", "a")])
    edit(data)

    problem = the_problem(data)

    assert problem["loc"] == loc
    assert problem["type"] == "extra_forbidden"
    assert problem["msg"] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("target", "loc", "kind", "msg"),
    [
        (node("a", on_error="retry"), ["nodes", 1, "on_error"], "literal_error", "'fail'"),
        (node("a", timeout_ms=0), ["nodes", 1, "timeout_ms"], "greater_than_equal", "1"),
        (node("a", parameters=[]), ["nodes", 1, "parameters"], "dict_type", "dictionary"),
        ({"type": "noop"}, ["nodes", 1, "id"], "missing", "Field required"),
    ],
)
def test_invalid_node_field(target: Json, loc: list[str | int], kind: str, msg: str) -> None:
    problem = the_problem(workflow(target))

    assert problem["loc"] == loc
    assert problem["type"] == kind
    assert msg in problem["msg"]


def test_python_field_names_are_unknown_fields_in_a_definition() -> None:
    """``from_``, ``json_body``: the models' Python names; a definition says ``from``, ``json``."""
    request = node("h", "http_request", parameters={"url": "https://x", "json_body": {"a": 1}})
    problems = problems_of(workflow(request, connections=[{"from_": "start", "to": "h"}]))

    assert [(p["loc"], p["type"]) for p in problems] == [
        (["connections", 0, "from"], "missing"),
        (["connections", 0, "from_"], "extra_forbidden"),
    ]
    problem = the_problem(workflow(request, connections=[conn("start", "h")]))
    assert problem["loc"] == ["nodes", 1, "parameters", "json_body"]
    assert problem["type"] == "extra_forbidden"


def test_connection_without_from() -> None:
    problem = the_problem(workflow(node("a"), connections=[{"to": "a"}]))

    assert problem["loc"] == ["connections", 0, "from"]
    assert problem["type"] == "missing"


@pytest.mark.parametrize(
    ("target", "field", "kind", "msg"),
    [
        (node("w", "wait"), "ms", "missing", "Field required"),
        (node("w", "wait", parameters={"ms": "x"}), "ms", "int_type", "valid integer"),
        (node("w", "wait", parameters={"ms": -1}), "ms", "greater_than_equal", "greater than"),
        (node("w", "if"), "condition", "missing", "Field required"),
        (node("w", "if", parameters={"condition": None}), "condition", "string_type", "string"),
        (node("w", "noop", parameters={"speed": 1}), "speed", "extra_forbidden", "Extra inputs"),
        (node("w", "wait", parameters={"ms": 1, "sec": 1}), "sec", "extra_forbidden", "Extra"),
        (node("w", "http_request"), "url", "missing", "Field required"),
        (
            node("w", "http_request", parameters={"url": "https://x", "method": "FETCH"}),
            "method",
            "literal_error",
            "'GET'",
        ),
        (node("w", "switch", parameters={"cases": []}), "cases", "too_short", "at least 1"),
        (node("w", "schedule_trigger"), "cron", "missing", "Field required"),
    ],
)
def test_invalid_parameters(target: Json, field: str, kind: str, msg: str) -> None:
    problems = problems_of(workflow(target))
    problem = problems[0]

    assert problem["loc"][:4] == ["nodes", 1, "parameters", field]
    assert problem["type"] == kind
    assert problem["msg"].startswith("node 'w': ")
    assert msg in problem["msg"]
    assert all(p["loc"][:3] == ["nodes", 1, "parameters"] for p in problems)


def test_invalid_switch_case_parameter_has_a_nested_loc() -> None:
    target = node("w", "switch", parameters={"cases": [{"output": "ok", "condition": True}, {}]})
    problems = problems_of(workflow(target, connections=[conn("start", "w")]))

    assert [(p["loc"], p["type"]) for p in problems] == [
        (["nodes", 1, "parameters", "cases", 1, "output"], "missing"),
        (["nodes", 1, "parameters", "cases", 1, "condition"], "missing"),
    ]


# ------------------------------------------------------------------------------ several problems


def test_several_graph_problems_are_reported_together_in_document_order() -> None:
    data = workflow(
        node("a", "telepathy"),
        node("b"),
        node("b"),
        node("w", "wait"),
        node("t2", "manual_trigger"),
        connections=[
            conn("start", "b"),
            conn("b", "ghost"),
            conn("b", "w", output="x"),
            conn("b", "t2"),
            conn("w", "b"),
            conn("b", "w"),
        ],
    )

    problems = problems_of(data)

    assert [(p["loc"], p["type"]) for p in problems] == [
        (["nodes", 1, "type"], "unknown_node_type"),
        (["nodes", 3, "id"], "duplicate_node_id"),
        (["nodes", 4, "parameters", "ms"], "missing"),
        (["connections", 1, "to"], "unknown_node"),
        (["connections", 2, "output"], "unknown_port"),
        (["connections", 3, "to"], "unknown_port"),
        (["connections"], "cycle"),
    ]
    assert problems[-1]["msg"] == "connections form a cycle: b -> w -> b"


def test_several_shape_problems_are_reported_together() -> None:
    data = {
        "nodes": [
            node("1st", "manual_trigger"),
            node("a", retry={"max_attempts": 0, "backoff_coefficient": 0.1}),
        ],
        "connections": [{"from": "a"}],
        "extra": True,
    }

    problems = problems_of(data)

    assert [(p["loc"], p["type"]) for p in problems] == [
        (["nodes", 0, "id"], "string_pattern_mismatch"),
        (["nodes", 1, "retry", "max_attempts"], "greater_than_equal"),
        (["nodes", 1, "retry", "backoff_coefficient"], "greater_than_equal"),
        (["connections", 0, "to"], "missing"),
        (["extra"], "extra_forbidden"),
    ]


def test_workflow_invalid_message_lists_every_problem() -> None:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow({"nodes": [node("a", "telepathy")]}, REGISTRY)

    assert str(info.value) == (
        "nodes.0.type: unknown node type 'telepathy'; nodes: workflow has no trigger node"
    )


@pytest.mark.parametrize(
    ("data", "loc", "kind"),
    [({}, ["nodes"], "missing"), ([], [], "model_type"), ("{}", [], "model_type")],
)
def test_not_a_workflow(data: Any, loc: list[str], kind: str) -> None:
    problem = the_problem(data)

    assert problem["loc"] == loc
    assert problem["type"] == kind


def test_an_invalid_expression_is_rejected_at_save_time_with_its_location() -> None:
    data = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "pick",
                "type": "set",
                "parameters": {"values": {"ok": "{{ item.a }}", "bad": "{{ item.__class__ }}"}},
            },
        ],
        "connections": [{"from": "start", "to": "pick"}],
    }
    with pytest.raises(WorkflowInvalid) as raised:
        validate_workflow(data, NodeTypeRegistry())
    [problem] = raised.value.problems
    assert problem["loc"] == ["nodes", 1, "parameters", "values", "bad"]
    assert problem["type"] == "expression"
    assert "pick" in problem["msg"]
    assert "__class__" in problem["msg"]
