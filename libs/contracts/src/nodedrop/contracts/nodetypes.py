"""Node type specifications: what the API validates and the scheduler plans with.

A spec is declarative (type name, category, parameter model, ports). Implementations live in the
runner; custom node types are classes registered under the entry-point group ``nodedrop.nodes``
whose ``spec`` attribute is a :class:`NodeTypeSpec`, so the API can validate them without running
them.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nodedrop.contracts.codecheck import MAX_SOURCE_CHARS, source_problem
from nodedrop.contracts.cron import check_cron
from nodedrop.contracts.items import MAIN_PORT, Item

Category = Literal["trigger", "action", "flow"]
ENTRY_POINT_GROUP = "nodedrop.nodes"


class Parameters(BaseModel):
    """Base of every parameter model: unknown parameters are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoParameters(Parameters):
    pass


WebhookMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
#: The most a webhook's ``response_timeout_s`` may say; the api's NODEDROP_MAX_WAIT_S may cap it
#: lower when it answers.
MAX_WEBHOOK_RESPONSE_TIMEOUT_S = 3600
#: The node type that answers a ``respond: via_node`` webhook, and the port of its output that
#: holds the answer ``{"status", "headers", "body"}``.
RESPOND_TO_WEBHOOK_TYPE = "respond_to_webhook"
RESPONSE_PORT = "response"


def _post_only() -> list[WebhookMethod]:
    return ["POST"]


class WebhookTriggerParameters(Parameters):
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="without one, anybody who knows the webhook's URL can run the workflow",
    )
    require_signature: bool = Field(
        default=False,
        description="accept only requests signed with the secret (X-Nodedrop-Signature), "
        "not the secret itself (X-Nodedrop-Secret)",
    )
    methods: list[WebhookMethod] = Field(
        default_factory=_post_only,
        title="HTTP methods",
        min_length=1,
        max_length=5,
        description="the HTTP methods the webhook accepts; others are answered 405",
    )
    output: Literal["body", "request"] = Field(
        default="body",
        title="Trigger outputs",
        description="what the trigger outputs: the body (a JSON object as the item itself), or "
        "the whole request as {method, headers, query, body} (secret headers left out)",
    )
    respond: Literal["immediately", "when_finished", "via_node"] = Field(
        default="immediately",
        title="Answer the caller",
        description="immediately: 202 once the run is recorded; when_finished: the output of "
        "response_node (default: the last node to finish) once the run ends; via_node: what a "
        "respond_to_webhook node says",
    )
    response_node: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="when_finished: the node whose output (its main items, a JSON array) is "
        "the answer",
    )
    response_timeout_s: float = Field(
        default=30.0,
        title="Response timeout (seconds)",
        gt=0,
        le=MAX_WEBHOOK_RESPONSE_TIMEOUT_S,
        description="when_finished / via_node: after this many seconds the answer is 504 with "
        "the execution id, and the execution goes on",
    )

    @model_validator(mode="after")
    def _signature_needs_a_secret(self) -> WebhookTriggerParameters:
        if self.require_signature and self.secret is None:
            raise ValueError("require_signature needs a secret to sign with")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("a method is listed twice in methods")
        if self.response_node is not None and self.respond != "when_finished":
            raise ValueError("response_node is only used when respond is when_finished")
        return self


class RespondToWebhookParameters(Parameters):
    status: int | str = Field(
        default=200,
        title="HTTP status",
        description="HTTP status, 200 to 599 (or an expression giving one)",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="response headers (values may be expressions)"
    )
    body: Any = Field(
        default=None,
        description="the JSON answered (expressions rendered with the first input item); "
        "null answers the input items",
    )

    @field_validator("status")
    @classmethod
    def _status_range(cls, status: int | str) -> int | str:
        if isinstance(status, int) and not 200 <= status <= 599:
            raise ValueError("status must be from 200 to 599")
        return status


class ScheduleTriggerParameters(Parameters):
    cron: str = Field(
        title="Schedule (cron expression, UTC)",
        min_length=9,
        max_length=200,
        description="five-field cron expression (minute hour day-of-month month day-of-week), "
        "in UTC",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        return check_cron(cron)


class WaitParameters(Parameters):
    ms: int = Field(
        title="Wait (milliseconds)",
        ge=0,
        le=31 * 24 * 3600 * 1000,
        description="delay in milliseconds",
    )


class ExecuteWorkflowParameters(Parameters):
    workflow_id: str = Field(
        min_length=1, max_length=128, description="the saved workflow to run (one of yours)"
    )
    version: int | None = Field(
        default=None, ge=1, description="the version to run; by default the latest"
    )
    trigger: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the trigger node of that workflow to start from; by default its first "
        "error_trigger, else its first trigger",
    )
    mode: Literal["wait", "fire_and_forget", "each_item"] = Field(
        default="wait",
        description="wait: output the child's final output; fire_and_forget: output the "
        "child's execution id at once; each_item: one child per item, outputs in item order",
    )
    concurrency: int = Field(
        default=1, ge=1, le=100, description="each_item: children running at once"
    )
    batch_size: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="each_item: items per child (the last child may get fewer)",
    )


class StopAndErrorParameters(Parameters):
    message: str = Field(
        default="Stopped by stop_and_error", title="Error message", max_length=10_000
    )
    error_type: str = Field(default="StopAndError", pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


class SetParameters(Parameters):
    values: dict[str, Any] = Field(default_factory=dict)


class IfParameters(Parameters):
    condition: str | bool = Field(description="expression, e.g. {{ item.total > 100 }}")


class SwitchCase(Parameters):
    output: str = Field(title="Output port", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    condition: str | bool


class SwitchParameters(Parameters):
    cases: list[SwitchCase] = Field(min_length=1, max_length=64)
    default_output: str | None = Field(
        default=None, title="Default output port", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
    )


HttpScalar = str | int | float | bool


class HttpRequestParameters(Parameters):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str = Field(title="URL", min_length=1, max_length=8192)
    # Values may be numbers or booleans too (what an expression such as `{{ item.id }}` gives);
    # they are sent as their JSON text.
    headers: dict[str, HttpScalar] = Field(default_factory=dict)
    query: dict[str, HttpScalar] = Field(default_factory=dict, title="Query parameters")
    json_body: Any = Field(default=None, alias="json", title="JSON body")
    body: str | None = None
    credential: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the id of one of your credentials (GET /api/credentials), applied to "
        "every request: a header, bearer token, basic auth, query parameter or OAuth2 token",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


PORT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class CodeParameters(Parameters):
    source: str = Field(
        min_length=1,
        max_length=MAX_SOURCE_CHARS,
        description="Python defining main(items, ctx) (all_items) or main(item, ctx) "
        "(each_item); not an expression template",
    )
    mode: Literal["all_items", "each_item"] = "all_items"
    outputs: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="ports besides main that the code may send items to with ctx.send",
    )

    @field_validator("source")
    @classmethod
    def _compiles(cls, source: str) -> str:
        problem = source_problem(source)
        if problem is not None:
            raise ValueError(problem)
        return source

    @field_validator("outputs")
    @classmethod
    def _port_names(cls, outputs: list[str]) -> list[str]:
        for name in outputs:
            if not re.fullmatch(PORT_NAME_PATTERN, name):
                raise ValueError(
                    f"{name!r} is not a port name: a letter, then letters, digits, _, -"
                )
            if name in (MAIN_PORT, "error"):
                raise ValueError(f"{name!r} is always a port of the node; list only the others")
        if len(set(outputs)) != len(outputs):
            raise ValueError("a port is listed twice")
        return outputs


def _code_outputs(parameters: BaseModel) -> tuple[str, ...]:
    outputs = parameters.outputs if isinstance(parameters, CodeParameters) else []
    return (MAIN_PORT, *outputs)


def _fixed(*ports: str) -> Callable[[BaseModel], tuple[str, ...]]:
    return lambda _parameters: ports


def _switch_outputs(parameters: BaseModel) -> tuple[str, ...]:
    assert isinstance(parameters, SwitchParameters)
    names = [case.output for case in parameters.cases]
    if parameters.default_output is not None:
        names.append(parameters.default_output)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class NodeTypeSpec:
    """What a node type declares about itself."""

    type: str
    display_name: str
    category: Category
    parameters: builtins.type[Parameters] = NoParameters
    #: Output ports, computed from the validated parameters (``switch`` names its own).
    output_ports: Callable[[BaseModel], tuple[str, ...]] = field(default=_fixed(MAIN_PORT))
    #: Input ports; ``None`` accepts any port name (``merge``). Triggers take none.
    input_ports: tuple[str, ...] | None = (MAIN_PORT,)
    description: str = ""
    #: Parameters that hold a credential id: the runner resolves and decrypts those
    #: credentials for the attempt (``ctx.credential(name)``, docs/credentials.md).
    credential_parameters: tuple[str, ...] = ()
    #: Parameters that are plain text, never ``{{ expression }}`` templates (``code``'s Python
    #: source, where ``{{`` is an escaped brace of an f-string): not checked as expressions.
    literal_parameters: frozenset[str] = frozenset()

    @property
    def is_trigger(self) -> bool:
        return self.category == "trigger"

    def parameters_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.parameters.model_json_schema(by_alias=True)
        return schema

    def static_outputs(self) -> list[str]:
        """Ports to advertise when no parameters are known (``switch``: none are fixed)."""
        if self.parameters is SwitchParameters:
            return []
        return list(self.output_ports(self.parameters.model_construct()))


BUILTIN_SPECS: tuple[NodeTypeSpec, ...] = (
    NodeTypeSpec(
        "manual_trigger",
        "Manual trigger",
        "trigger",
        input_ports=(),
        description="Outputs the request's input items.",
    ),
    NodeTypeSpec(
        "webhook_trigger",
        "Webhook trigger",
        "trigger",
        WebhookTriggerParameters,
        input_ports=(),
        description="Outputs the webhook request body (or the whole request) as one item; "
        "answers at once, when the run ends, or through a respond_to_webhook node.",
    ),
    NodeTypeSpec(
        RESPOND_TO_WEBHOOK_TYPE,
        "Respond to webhook",
        "action",
        RespondToWebhookParameters,
        output_ports=_fixed(MAIN_PORT, RESPONSE_PORT),
        description="Sets the answer of a webhook whose trigger has respond: via_node; passes "
        "its items on, and the run goes on.",
    ),
    NodeTypeSpec(
        "schedule_trigger",
        "Schedule trigger",
        "trigger",
        ScheduleTriggerParameters,
        input_ports=(),
        description="Runs a saved workflow on a cron schedule.",
    ),
    NodeTypeSpec(
        "error_trigger",
        "Error trigger",
        "trigger",
        input_ports=(),
        description="Starts an error workflow: outputs what failed (execution, workflow, node, "
        "error, link).",
    ),
    NodeTypeSpec("noop", "No operation", "flow", description="Passes its input items through."),
    NodeTypeSpec(
        "set",
        "Set fields",
        "action",
        SetParameters,
        description="Updates each item with the given values.",
    ),
    NodeTypeSpec(
        "if",
        "If",
        "flow",
        IfParameters,
        output_ports=_fixed("true", "false"),
        description="Sends each item to port true or false.",
    ),
    NodeTypeSpec(
        "switch",
        "Switch",
        "flow",
        SwitchParameters,
        output_ports=_switch_outputs,
        description="Sends each item to the first matching case.",
    ),
    NodeTypeSpec(
        "merge",
        "Merge",
        "flow",
        input_ports=None,
        description="Concatenates all its inputs into main.",
    ),
    NodeTypeSpec(
        "wait", "Wait", "flow", WaitParameters, description="Passes items through after a delay."
    ),
    NodeTypeSpec(
        "http_request",
        "HTTP request",
        "action",
        HttpRequestParameters,
        description="One HTTP request per item.",
        credential_parameters=("credential",),
    ),
    NodeTypeSpec(
        "code",
        "Code",
        "action",
        CodeParameters,
        output_ports=_code_outputs,
        description="Runs Python in a sandbox on the items (all at once or one by one).",
        literal_parameters=frozenset({"source"}),
    ),
    NodeTypeSpec(
        "execute_workflow",
        "Execute workflow",
        "flow",
        ExecuteWorkflowParameters,
        description="Runs a saved workflow with the items as its input.",
    ),
    NodeTypeSpec(
        "stop_and_error",
        "Stop and error",
        "flow",
        StopAndErrorParameters,
        description="Fails with the given error.",
    ),
)


class NodeTypeRegistry:
    """The node types a deployment knows, by type name."""

    def __init__(self, specs: Iterable[NodeTypeSpec] = BUILTIN_SPECS) -> None:
        self._specs: dict[str, NodeTypeSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: NodeTypeSpec) -> None:
        if spec.type in self._specs:
            raise ValueError(f"node type {spec.type!r} is registered twice")
        self._specs[spec.type] = spec

    def get(self, type_name: str) -> NodeTypeSpec | None:
        return self._specs.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._specs

    def __iter__(self) -> Iterator[NodeTypeSpec]:
        return iter(self._specs.values())

    @property
    def specs(self) -> Mapping[str, NodeTypeSpec]:
        return self._specs

    @classmethod
    def with_plugins(cls) -> NodeTypeRegistry:
        """Built-ins plus every class registered under the ``nodedrop.nodes`` entry points."""
        registry = cls()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            plugin = entry_point.load()
            spec = getattr(plugin, "spec", None)
            if not isinstance(spec, NodeTypeSpec):
                raise TypeError(f"entry point {entry_point.name!r} has no NodeTypeSpec `spec`")
            registry.register(spec)
        return registry


def passthrough_items(node_input: Mapping[str, list[Item]]) -> list[Item]:
    """All input items, port by port in port order: what pass-through nodes emit."""
    return [item for items in node_input.values() for item in items]
