"""The independent oracle of the chaos checks: what each accepted execution must have produced,
worked out from its workflow definition, its input and the side-effect server's answers, and
compared with the log (the events each service recorded) and the projection's rows.

Pure code, no servers (tests/unit/chaos/ feeds it made-up histories). It shares nothing with the
notifier's projection fold or the scheduler's core: each node type the workloads use is modelled
here on its own, from docs/nodes.md:

- ``manual_trigger``: outputs the execution's input items on ``main``;
- ``http_request``: one request per item, with the node's ``Idempotency-Key`` for the item; its
  output item is the far side's answer (``status``, ``headers``, ``body``, ``body_encoding``);
  a far side that answered 5xx to every attempt fails the node (``HttpServerError``) once its
  attempts are used up;
- ``set``: each item with the (literal) values set over it;
- ``noop``: its input.

For every execution it checks:

1. one result per attempt: at most one ``NodeSucceeded``/``NodeFailed`` per (node, attempt);
2. side effects: each request node of a modelled execution reached the far side at least once
   per item, and at most once per attempt made (``NodeReady``), matched by ``Idempotency-Key``;
   the request carried the rendered body; the node's output is an answer the far side gave;
3. each node's final state and output equal the model's (the last attempt's result in the log);
4. the projection's rows equal the expectation column by column: the execution's status and
   times, each node's status, attempts, times (``finished_at`` set for every finished node),
   input, output, error, runner-lost count.

Workflows outside the model (a ``wait`` node, fan-in, expressions beyond ``{{ item.x }}``) get
checks 1, 2 (at most once per attempt) and the finished rows' shape only.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    AnyEvent,
    ExecutionFinished,
    ExecutionStarted,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.runner.nodes.http_request import idempotency_key

MODELLED = frozenset({"manual_trigger", "http_request", "set", "noop"})
FINAL_NODE_STATUSES = frozenset({"succeeded", "failed", "skipped", "cancelled"})
_ITEM_FIELD = re.compile(r"^\{\{\s*item\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
#: The response headers whose values the far side decides per answer (not modelled).
_VOLATILE_HEADERS = frozenset({"date", "server"})


@dataclass(frozen=True)
class Effect:
    """One request the side-effect server received, and what it answered."""

    key: str | None
    path: str
    body: bytes
    #: None: not answered (yet).
    status: int | None
    answer: Any = None


@dataclass(frozen=True)
class Submitted:
    """What a scenario submitted: the workflow and the trigger's input items."""

    workflow: dict[str, Any]
    input: list[dict[str, Any]] | None = None


@dataclass
class Projection:
    """The projection's rows as read from PostgreSQL (JSON columns decoded)."""

    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    #: Expected side effects (request node x item of modelled executions) never made.
    lost_effects: int = 0
    #: Results stored beyond one per attempt.
    duplicate_results: int = 0
    #: Side effects made more often than the attempts of their node.
    repeated_effects: int = 0
    #: Side effects made twice or more, each by an attempt of its own (allowed).
    retried_effects: int = 0
    #: Projection rows that differ from the expectation.
    wrong_rows: int = 0
    #: Executions checked against the full model.
    modelled: int = 0

    def problem(self, text: str) -> None:
        self.problems.append(text)


@dataclass
class _Node:
    """What the model says of one node: its input and output, or its failure."""

    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    #: The error type it must fail with; None: it must succeed.
    error_type: str | None = None
    #: Attempts it must end with (a node failing for good uses all of them); None: any.
    attempts: int | None = None
    #: Not reached: the execution failed before it (skipped).
    skipped: bool = False


@dataclass
class _History:
    ready: dict[str, dict[int, NodeReady]] = field(default_factory=lambda: defaultdict(dict))
    started: dict[str, dict[int, NodeStarted]] = field(default_factory=lambda: defaultdict(dict))
    results: dict[tuple[str, int], list[NodeSucceeded | NodeFailed]] = field(
        default_factory=lambda: defaultdict(list)
    )
    execution_started: ExecutionStarted | None = None
    finished: ExecutionFinished | None = None

    def attempts(self, node: str) -> int:
        return max(self.ready.get(node, {}), default=0)

    def final_result(self, node: str) -> NodeSucceeded | NodeFailed | None:
        stored = self.results.get((node, self.attempts(node)), [])
        return stored[0] if stored else None

    def runner_lost(self, node: str) -> int:
        return sum(
            1
            for (name, _), stored in self.results.items()
            if name == node
            for r in stored
            if isinstance(r, NodeFailed) and r.error.type == RUNNER_LOST
        )


def histories(events: Sequence[AnyEvent]) -> dict[str, _History]:
    by_execution: dict[str, _History] = defaultdict(_History)
    for event in events:
        history = by_execution[event.execution_id]
        if isinstance(event, NodeReady):
            history.ready[event.node].setdefault(event.attempt, event)
        elif isinstance(event, NodeStarted):
            history.started[event.node].setdefault(event.attempt, event)
        elif isinstance(event, NodeSucceeded | NodeFailed):
            history.results[(event.node, event.attempt)].append(event)
        elif isinstance(event, ExecutionStarted) and history.execution_started is None:
            history.execution_started = event
        elif isinstance(event, ExecutionFinished) and history.finished is None:
            history.finished = event
    return by_execution


def verify(
    submitted: Mapping[str, Submitted],
    events: Sequence[AnyEvent],
    effects: Sequence[Effect],
    projection: Projection,
) -> Verdict:
    """Check every execution of ``submitted`` (see the module's docstring)."""
    verdict = Verdict()
    by_key: dict[str | None, list[Effect]] = defaultdict(list)
    for effect in effects:
        by_key[effect.key].append(effect)
    all_histories = histories(events)
    for execution_id, what in submitted.items():
        history = all_histories.get(execution_id, _History())
        model = expected(execution_id, what, by_key, history)
        check = _Check(verdict, execution_id, what, history, by_key, model)
        check.one_result_per_attempt()
        check.at_most_once_per_attempt()
        if model is not None:
            verdict.modelled += 1
            check.against_model()
        check.rows(projection)
    return verdict


# ------------------------------------------------------------------------------- the model
def chain(workflow: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The workflow's nodes in order when they form one chain on ``main`` (else None)."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for c in workflow.get("connections", []):
        if c.get("from_output", "main") != "main" or c.get("to_input", "main") != "main":
            return None
        parents[c["to"]].append(c["from"])
        children[c["from"]].append(c["to"])
    roots = [n for n in nodes if not parents[n]]
    if len(roots) != 1 or any(len(p) > 1 for p in parents.values()):
        return None
    order = [roots[0]]
    while children[order[-1]]:
        if len(children[order[-1]]) > 1:
            return None
        order.append(children[order[-1]][0])
    return [nodes[n] for n in order] if len(order) == len(nodes) else None


def render(value: Any, item: Mapping[str, Any]) -> Any:
    """The parameters for one item: ``{{ item.x }}`` alone in a string is the item's ``x``."""
    if isinstance(value, str):
        match = _ITEM_FIELD.match(value)
        if match:
            return item[match[1]]
        if "{{" in value:
            raise _UnmodelledError(value)
        return value
    if isinstance(value, dict):
        return {k: render(v, item) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, item) for v in value]
    return value


class _UnmodelledError(Exception):
    pass


class _AnyText:
    """Equal to any string: a header value the far side decides per answer (``date``,
    ``server``), present but not modelled."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any text>"


ANY_TEXT = _AnyText()


def answer_item(effect: Effect) -> dict[str, Any]:
    """The ``http_request`` output item for an answer of the far side."""
    text = json.dumps(effect.answer)
    return {
        "status": effect.status,
        "headers": {
            "content-type": "application/json",
            "content-length": str(len(text)),
            **dict.fromkeys(_VOLATILE_HEADERS, ANY_TEXT),
        },
        "body": effect.answer,
        "body_encoding": "json",
    }


def expected(
    execution_id: str,
    what: Submitted,
    by_key: Mapping[str | None, list[Effect]],
    history: _History | None = None,
) -> dict[str, _Node] | None:
    """Each node's expected outcome; None when the workflow is outside the model. An
    ``http_request`` node's output is the answer the far side gave for its key (the one the
    log's result shows, when it gave several)."""
    nodes = chain(what.workflow)
    if nodes is None or any(n["type"] not in MODELLED for n in nodes):
        return None
    model: dict[str, _Node] = {}
    items: list[dict[str, Any]] | None = None
    failed = False
    try:
        for node in nodes:
            name, kind = node["id"], node["type"]
            if failed:
                model[name] = _Node(skipped=True)
                continue
            if kind == "manual_trigger":
                items = list(what.input) if what.input is not None else [{}]
                model[name] = _Node(input={"main": items}, output={"main": items})
                continue
            assert items is not None
            parameters = node.get("parameters", {})
            node_input = {"main": items}
            if kind == "noop":
                model[name] = _Node(input=node_input, output={"main": items})
            elif kind == "set":
                values = parameters.get("values", {})
                items = [{**item, **render(values, item)} for item in items]
                model[name] = _Node(input=node_input, output={"main": items})
            else:  # http_request
                actual = history.final_result(name) if history else None
                shown = actual.output.get("main", []) if isinstance(actual, NodeSucceeded) else []
                outputs: list[dict[str, Any]] = []
                for index in range(len(items)):
                    answers = by_key.get(idempotency_key(execution_id, name, index), [])
                    answered = [a for a in answers if a.status is not None]
                    if answered and all(a.status is not None and a.status >= 500 for a in answered):
                        failed = True
                        retry = node.get("retry", {})
                        model[name] = _Node(
                            input=node_input,
                            error_type="HttpServerError",
                            attempts=int(retry.get("max_attempts", 1)),
                        )
                        break
                    candidates = [answer_item(a) for a in answered if a.status == 200]
                    seen = shown[index] if index < len(shown) else None
                    chosen = next((c for c in candidates if c == seen), None)
                    # No answer at all: the model's output is an answer never given.
                    outputs.append(chosen or (candidates[0] if candidates else {"never": "sent"}))
                else:
                    model[name] = _Node(input=node_input, output={"main": outputs})
                    items = outputs
    except (_UnmodelledError, KeyError):
        return None
    return model


# ------------------------------------------------------------------------------- the checks
@dataclass
class _Check:
    """The checks of one execution."""

    verdict: Verdict
    execution_id: str
    what: Submitted
    history: _History
    by_key: Mapping[str | None, list[Effect]]
    model: Mapping[str, _Node] | None

    def problem(self, text: str) -> None:
        self.verdict.problem(text)

    def effects_of(self, node: str, index: int) -> list[Effect]:
        return self.by_key.get(idempotency_key(self.execution_id, node, index), [])

    def one_result_per_attempt(self) -> None:
        for (node, attempt), stored in self.history.results.items():
            if len(stored) > 1:
                self.verdict.duplicate_results += len(stored) - 1
                self.problem(
                    f"{self.execution_id}/{node} attempt {attempt}: {len(stored)} results stored "
                    f"({', '.join(type(r).__name__ for r in stored)}), one expected"
                )

    def at_most_once_per_attempt(self) -> None:
        items = len(self.what.input) if self.what.input is not None else 1
        for node in self.what.workflow["nodes"]:
            if node["type"] != "http_request":
                continue
            made = self.history.attempts(node["id"])
            for index in range(items):
                seen = len(self.effects_of(node["id"], index))
                if seen > made:
                    self.verdict.repeated_effects += seen - made
                    self.problem(
                        f"side effect of {self.execution_id}/{node['id']} item {index} happened "
                        f"{seen} times in {made} attempts"
                    )
                elif seen > 1:
                    self.verdict.retried_effects += 1

    def against_model(self) -> None:
        assert self.model is not None
        history, execution_id = self.history, self.execution_id
        must_fail = any(n.error_type for n in self.model.values())
        status = history.finished.status if history.finished else None
        want = "failed" if must_fail else "succeeded"
        if status != want:
            self.problem(f"{execution_id} ended {status}, its workflow must end {want}")
        for node in chain(self.what.workflow) or []:
            name = node["id"]
            expectation = self.model[name]
            if node["type"] == "http_request" and not expectation.skipped:
                self.effects_made(node, expectation)
            result = history.final_result(name)
            if expectation.skipped:
                if history.attempts(name):
                    self.problem(f"{execution_id}/{name} ran after the execution failed")
                continue
            if expectation.error_type is not None:
                if (
                    not isinstance(result, NodeFailed)
                    or result.error.type != expectation.error_type
                ):
                    self.problem(
                        f"{execution_id}/{name} must fail with {expectation.error_type}, its "
                        f"last attempt recorded {_describe(result)}"
                    )
                if expectation.attempts not in (None, history.attempts(name)):
                    self.problem(
                        f"{execution_id}/{name} failed after {history.attempts(name)} attempts, "
                        f"{expectation.attempts} expected"
                    )
                continue
            if not isinstance(result, NodeSucceeded):
                self.problem(f"{execution_id}/{name} must succeed, recorded {_describe(result)}")
            elif result.output != expectation.output:
                self.problem(
                    f"{execution_id}/{name} output {_short(result.output)} is not the expected "
                    f"{_short(expectation.output)}"
                )
            ready = history.ready.get(name, {}).get(history.attempts(name))
            if ready is not None and ready.input != expectation.input:
                self.problem(
                    f"{execution_id}/{name} was given {_short(ready.input)}, expected "
                    f"{_short(expectation.input)}"
                )

    def effects_made(self, node: Mapping[str, Any], expectation: _Node) -> None:
        """Every item's request reached the far side, with the rendered body, on the node's
        URL (a failing node's: once per attempt)."""
        name = node["id"]
        attempts = self.history.attempts(name)
        parameters = node.get("parameters", {})
        path = urlsplit(str(parameters.get("url", ""))).path
        for index, item in enumerate((expectation.input or {}).get("main", [])):
            made = self.effects_of(name, index)
            if not made:
                self.verdict.lost_effects += 1
                self.problem(
                    f"side effect of {self.execution_id}/{name} item {index} never happened "
                    f"({attempts} attempts recorded)"
                )
                continue
            if expectation.error_type is not None and len(made) != attempts:
                self.problem(
                    f"{self.execution_id}/{name} item {index}: {len(made)} requests in "
                    f"{attempts} failed attempts (one each expected)"
                )
            body = render(parameters["json"], item) if "json" in parameters else None
            for effect in made:
                sent = json.loads(effect.body) if effect.body else None
                if effect.path != path or sent != body:
                    self.problem(
                        f"{self.execution_id}/{name} item {index} sent {effect.path} {sent!r}, "
                        f"expected {path} {body!r}"
                    )

    def compare(self, row: str, column: str, actual: Any, want: Any) -> None:
        if actual != want:
            self.problem(f"projection {row} {column} = {_short(actual)}, expected {_short(want)}")

    def rows(self, projection: Projection) -> None:
        """The projection's rows of the execution against the expectation, column by column."""
        before = len(self.verdict.problems)
        execution_id, history = self.execution_id, self.history
        row = projection.executions.get(execution_id)
        if row is None:
            self.verdict.wrong_rows += 1
            self.problem(f"projection has no row for execution {execution_id}")
            return
        finished, started = history.finished, history.execution_started
        label = f"execution {execution_id}"
        self.compare(label, "status", row.get("status"), finished.status if finished else None)
        self.compare(label, "finished_at", row.get("finished_at"), finished and finished.time)
        self.compare(label, "started_at", row.get("started_at"), started and started.time)
        if self.model is not None and finished is not None and finished.status == "succeeded":
            self.compare(label, "error", row.get("error"), None)
        wrong_nodes = 0
        order = [n["id"] for n in self.what.workflow["nodes"]]
        for position, node in enumerate(order):
            mark = len(self.verdict.problems)
            self.node_row(projection.nodes.get((execution_id, node)), node, position)
            wrong_nodes += len(self.verdict.problems) > mark
        extra = [k for k in projection.nodes if k[0] == execution_id and k[1] not in order]
        if extra:
            self.problem(f"projection has rows for nodes of no plan: {extra[:3]}")
        self.verdict.wrong_rows += wrong_nodes or int(len(self.verdict.problems) > before)

    def node_row(self, row: Mapping[str, Any] | None, node: str, position: int) -> None:
        label = f"node {self.execution_id}/{node}"
        if row is None:
            self.problem(f"projection has no row for {label}")
            return
        status = row.get("status")
        if status in FINAL_NODE_STATUSES and row.get("finished_at") is None:
            self.problem(f"projection {label} is {status} with finished_at NULL")
        if self.history.finished is not None and status not in FINAL_NODE_STATUSES:
            self.problem(f"projection {label} still {status} in a finished execution")
        self.compare(label, "position", row.get("position"), position)
        expectation = (self.model or {}).get(node)
        if expectation is None:
            return
        if expectation.skipped:
            self.compare(label, "status", status, "skipped")
            self.compare(label, "skip_reason", row.get("skip_reason"), "execution_failed")
            return
        history = self.history
        attempts = history.attempts(node)
        result = history.final_result(node)
        started = history.started.get(node, {}).get(attempts)
        self.compare(label, "attempts", row.get("attempts"), attempts)
        self.compare(label, "input", row.get("input"), expectation.input)
        self.compare(label, "started_at", row.get("started_at"), started and started.time)
        self.compare(label, "finished_at", row.get("finished_at"), result and result.time)
        self.compare(label, "runner_lost", row.get("runner_lost"), history.runner_lost(node))
        self.compare(label, "pinned", row.get("pinned"), False)
        self.compare(label, "wait_until", row.get("wait_until"), None)
        if expectation.error_type is not None:
            self.compare(label, "status", status, "failed")
            error = row.get("error") or {}
            self.compare(label, "error.type", error.get("type"), expectation.error_type)
            self.compare(label, "output", row.get("output"), None)
            return
        self.compare(label, "status", status, "succeeded")
        self.compare(label, "output", row.get("output"), expectation.output)
        self.compare(label, "error", row.get("error"), None)
        self.compare(label, "skip_reason", row.get("skip_reason"), None)


def _describe(result: NodeSucceeded | NodeFailed | None) -> str:
    if result is None:
        return "no result"
    if isinstance(result, NodeFailed):
        return f"NodeFailed {result.error.type}: {result.error.message[:80]}"
    return "NodeSucceeded"


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------- the faults
@dataclass(frozen=True)
class Kill:
    """One SIGKILL of a service process, as observed from the process objects."""

    name: str
    pid: int
    #: The killed process's exit status once reaped (-9: died by SIGKILL); None: still running.
    returncode: int | None
    #: The pid of the process started in its place (None: not restarted).
    restarted_pid: int | None = None
    #: Whether that process was running when last looked at.
    restarted_alive: bool = False


def kills_landed(kills: Sequence[Kill], wanted: int) -> list[str]:
    """Problems with the kills a scenario meant to inject: each died by SIGKILL and a new
    process (another pid) ran in its place (still running, or killed later by the scenario)."""
    problems = []
    if len(kills) != wanted:
        problems.append(f"{len(kills)} kills made, {wanted} planned")
    for kill in kills:
        if kill.returncode != -9:
            problems.append(
                f"{kill.name} (pid {kill.pid}) did not die by SIGKILL (exit {kill.returncode})"
            )
        if kill.restarted_pid is None or kill.restarted_pid == kill.pid:
            problems.append(f"{kill.name} was not restarted as a new process")
        elif not _replaced(kill, kills):
            problems.append(f"{kill.name} restarted as pid {kill.restarted_pid} but not running")
    return problems


def _replaced(kill: Kill, kills: Sequence[Kill]) -> bool:
    """Its replacement runs, or ran until the scenario killed it in turn."""
    later = {k.pid for k in kills if k.returncode == -9}
    return kill.restarted_alive or kill.restarted_pid in later


def kills_summary(kills: Sequence[Kill]) -> str:
    """The kills as measured, for the table."""
    died = sum(1 for k in kills if k.returncode == -9)
    replaced = sum(1 for k in kills if k.restarted_pid not in (None, k.pid) and _replaced(k, kills))
    return (
        f"measured: {died} of {len(kills)} killed processes died by SIGKILL, "
        f"{replaced} replaced by a new pid that ran"
    )
