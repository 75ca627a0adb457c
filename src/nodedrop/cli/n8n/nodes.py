"""n8n node types mapped to nodedrop's, one function per type. Pure.

Each mapper gets the n8n node's parameters and answers a :class:`Mapped`: the nodedrop type and
parameters, the nodedrop port of each n8n output (by index), and what did not map (``lost``:
behaviour that is gone) or maps only approximately (``approximate``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nodedrop.cli.n8n.conditions import comparison, filter_condition, typed_lists_condition
from nodedrop.cli.n8n.expressions import (
    Names,
    Untranslatable,
    translate_expression,
    translate_value,
)

MAIN = "main"


@dataclass
class Mapped:
    type: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The nodedrop port of n8n output 0, 1, ... (an error output is added by the caller).
    outputs: list[str] = field(default_factory=lambda: [MAIN])
    #: Input ports by n8n input index; ``None``: everything goes to ``main``.
    inputs: Callable[[int], str] | None = None
    node_settings: dict[str, Any] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    #: What the node's expressions may name (other nodes, by their n8n names).
    names: Names
    #: The workflow's timezone in n8n (``settings.timezone``), if it has one.
    timezone: str | None = None


def _translated(value: Any, context: Context, where: str, mapped: Mapped) -> Any:
    translation = translate_value(value, context.names, where)
    mapped.lost += translation.problems
    return translation.value


def _pairs(entries: Any, context: Context, where: str, mapped: Mapped) -> dict[str, Any]:
    """n8n's ``{"parameters": [{"name", "value"}]}`` lists as a dict."""
    result = {}
    for entry in (entries or {}).get("parameters") or []:
        name = str(entry.get("name", ""))
        result[name] = _translated(entry.get("value", ""), context, f"{where}.{name}", mapped)
    return result


def manual_trigger(_: dict[str, Any], __: Context) -> Mapped:
    return Mapped("manual_trigger")


def webhook(parameters: dict[str, Any], _: Context) -> Mapped:
    mapped = Mapped("webhook_trigger")
    method = parameters.get("httpMethod", "GET")
    if method != "POST":
        mapped.approximate.append(f"n8n listens for {method}; nodedrop's webhook takes POST")
    if parameters.get("path"):
        mapped.approximate.append(
            f"path {parameters['path']!r}: nodedrop's URL is /webhooks/<workflow id>/<node id>"
        )
    if parameters.get("authentication", "none") != "none":
        mapped.lost.append(
            f"authentication {parameters['authentication']!r}: not migrated; give the node a "
            "secret (docs/api.md, Webhooks)"
        )
    if parameters.get("responseMode", "onReceived") != "onReceived":
        mapped.lost.append(
            f"responseMode {parameters['responseMode']!r}: nodedrop answers 202 at once"
        )
    mapped.approximate.append(
        "the item is the JSON body itself (n8n: under `body`, beside headers and query); "
        "expressions reading `body` are rewritten, others are reported"
    )
    return mapped


_UNITS_MS = {"seconds": 1000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}


def _cron_of(rule: dict[str, Any]) -> str:
    """One entry of n8n's ``rule.interval`` as five cron fields (UTC)."""
    kind = rule.get("field", "days")
    minute = rule.get("triggerAtMinute", 0)
    hour = rule.get("triggerAtHour", 0)
    if kind == "cronExpression":
        fields = str(rule.get("expression", "")).split()
        if len(fields) == 6:
            if fields[0] not in {"0", "*"}:
                raise Untranslatable(f"cron {rule.get('expression')!r} fires on seconds")
            fields = fields[1:]
        if len(fields) != 5:
            raise Untranslatable(f"cron {rule.get('expression')!r} is not five fields")
        return " ".join(fields)
    if kind == "minutes":
        return f"*/{rule.get('minutesInterval', 5)} * * * *"
    if kind == "hours":
        return f"{minute} */{rule.get('hoursInterval', 1)} * * *"
    if kind == "days":
        return f"{minute} {hour} */{rule.get('daysInterval', 1)} * *"
    if kind == "weeks":
        days = rule.get("triggerAtDay") or [0]
        return f"{minute} {hour} * * {','.join(str(d) for d in days)}"
    if kind == "months":
        day, every = rule.get("triggerAtDayOfMonth", 1), rule.get("monthsInterval", 1)
        return f"{minute} {hour} {day} */{every} *"
    raise Untranslatable(f"a schedule every few {kind} has no cron equivalent")


def schedule(parameters: dict[str, Any], context: Context) -> Mapped:
    rules = (parameters.get("rule") or {}).get("interval") or [{}]
    mapped = Mapped("schedule_trigger")
    try:
        mapped.parameters["cron"] = _cron_of(rules[0])
    except Untranslatable as why:
        mapped.type = "manual_trigger"
        mapped.lost.append(f"schedule: {why}; replaced by a manual trigger")
        return mapped
    if len(rules) > 1:
        mapped.lost.append(f"only the first of {len(rules)} schedule rules is kept")
    zone = context.timezone or "the instance's timezone"
    mapped.approximate.append(f"cron in UTC (n8n: {zone})")
    return mapped


def http_request(parameters: dict[str, Any], context: Context) -> Mapped:
    mapped = Mapped("http_request")
    out = mapped.parameters
    out["method"] = parameters.get("method") or parameters.get("requestMethod") or "GET"
    out["url"] = _translated(parameters.get("url", ""), context, "url", mapped)
    if parameters.get("sendQuery"):
        if parameters.get("specifyQuery", "keypair") == "keypair":
            out["query"] = _pairs(parameters.get("queryParameters"), context, "query", mapped)
        else:
            mapped.lost.append("query given as JSON: not translated")
    if parameters.get("sendHeaders"):
        if parameters.get("specifyHeaders", "keypair") == "keypair":
            out["headers"] = _pairs(parameters.get("headerParameters"), context, "headers", mapped)
        else:
            mapped.lost.append("headers given as JSON: not translated")
    if parameters.get("sendBody"):
        _body(parameters, context, mapped)
    authentication = parameters.get("authentication", "none")
    if authentication != "none":
        mapped.lost.append(
            f"authentication {authentication!r}: credentials are not migrated; create a "
            "nodedrop credential and set the node's `credential`"
        )
    timeout = (parameters.get("options") or {}).get("timeout")
    if isinstance(timeout, int) and timeout > 0:
        mapped.node_settings["timeout_ms"] = timeout
    other = set(parameters.get("options") or {}) - {"timeout"}
    if other:
        mapped.lost.append(f"options not migrated: {', '.join(sorted(other))}")
    return mapped


_MARK = "\u27e6n8n{}\u27e7"  # ⟦n8n0⟧: no JSON text holds it


def _json_template(text: str, context: Context) -> Any:
    """n8n's ``jsonBody``: JSON text, maybe with ``{{ }}`` in it, as a nodedrop object whose
    strings hold the translated expressions (an expression standing alone for a value becomes
    the whole value, so its type is kept)."""
    body = text[1:] if text.startswith("=") else text
    pieces = re.split(r"\{\{(.*?)\}\}", body, flags=re.DOTALL)
    literals, expressions = pieces[0::2], pieces[1::2]
    marks = [_MARK.format(index) for index in range(len(expressions))]
    # Each expression goes in as a mark: raw inside a JSON string ("order {{ x }}"), as a
    # string of its own where it stands for a value ({"n": {{ x }}}).
    marked = literals[0]
    in_string = _ends_inside_string(literals[0], False)
    for mark, literal in zip(marks, literals[1:], strict=True):
        marked += (mark if in_string else json.dumps(mark)) + literal
        in_string = _ends_inside_string(literal, in_string)
    try:
        parsed = json.loads(marked)
    except json.JSONDecodeError as error:
        raise Untranslatable(f"not JSON once its expressions are set apart: {error}") from None
    translated = [
        "{{ " + translate_expression(e.strip(), context.names) + " }}" for e in expressions
    ]

    def put_back(value: Any) -> Any:
        if isinstance(value, str):
            for mark, expression in zip(marks, translated, strict=True):
                value = value.replace(mark, expression)
            return value
        if isinstance(value, dict):
            return {key: put_back(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [put_back(inner) for inner in value]
        return value

    return put_back(parsed)


def _ends_inside_string(text: str, inside: bool) -> bool:
    """Whether JSON text that starts inside a string (or not) ends inside one."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and inside:
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


def _body(parameters: dict[str, Any], context: Context, mapped: Mapped) -> None:
    content = parameters.get("contentType", "json")
    if content != "json":
        mapped.lost.append(f"a {content} body: not translated (nodedrop sends JSON or text)")
        return
    if parameters.get("specifyBody", "keypair") == "keypair":
        mapped.parameters["json"] = _pairs(
            parameters.get("bodyParameters"), context, "json", mapped
        )
        return
    raw = parameters.get("jsonBody", "")
    try:
        mapped.parameters["json"] = _json_template(raw, context) if isinstance(raw, str) else raw
    except Untranslatable as why:
        mapped.lost.append(f"jsonBody: {why}")


def if_node(parameters: dict[str, Any], context: Context) -> Mapped:
    mapped = Mapped("if", outputs=["true", "false"])
    try:
        if "combineOperation" in parameters or not isinstance(
            (parameters.get("conditions") or {}).get("conditions"), list
        ):
            condition = typed_lists_condition(
                parameters.get("conditions"),
                str(parameters.get("combineOperation", "all")),
                context.names,
            )
        else:
            condition, notes = filter_condition(parameters.get("conditions"), context.names)
            mapped.approximate += notes
    except Untranslatable as why:
        mapped.lost.append(f"condition: {why}; every item goes to false")
        mapped.parameters["condition"] = False
        return mapped
    mapped.parameters["condition"] = "{{ " + condition + " }}"
    return mapped


def _port(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower() or "output"
    if not base[0].isalpha():
        base = f"output_{base}"
    port, suffix = base[:64], 2
    while port in taken or port in {"error", MAIN}:
        port = f"{base[:60]}_{suffix}"
        suffix += 1
    taken.add(port)
    return port


def switch(parameters: dict[str, Any], context: Context) -> Mapped:
    mapped = Mapped("switch", outputs=[])
    if parameters.get("mode", "rules") != "rules":
        mapped.lost.append(f"mode {parameters.get('mode')!r}: no equivalent; no case kept")
        mapped.parameters["cases"] = []
        return mapped
    given = parameters.get("rules") or {}
    legacy = "values" not in given  # Switch v1/v2: one value compared with each rule's value2
    rules: list[dict[str, Any]] = list(given.get("rules" if legacy else "values") or [])
    taken: set[str] = set()
    cases = []
    for index, rule in enumerate(rules):
        name = rule.get("outputKey") if rule.get("renameOutput") else None
        port = _port(str(name or f"output_{index}"), taken)
        mapped.outputs.append(port)
        try:
            if legacy:
                condition = comparison(
                    parameters.get("value1", ""),
                    str(rule.get("operation", "equal")),
                    rule.get("value2", ""),
                    context.names,
                )
            else:
                condition, notes = filter_condition(rule.get("conditions"), context.names)
                mapped.approximate += notes
        except Untranslatable as why:
            mapped.lost.append(f"rule {index}: {why}; the case never matches")
            condition = "False"
        cases.append({"output": port, "condition": "{{ " + condition + " }}"})
    mapped.parameters["cases"] = cases
    fallback = (parameters.get("options") or {}).get("fallbackOutput", "none")
    if legacy:
        fallback = parameters.get("fallbackOutput", -1)
    if fallback == "extra":
        mapped.parameters["default_output"] = _port("fallback", taken)
        mapped.outputs.append(mapped.parameters["default_output"])
    elif isinstance(fallback, int) and 0 <= fallback < len(mapped.outputs):
        mapped.parameters["default_output"] = mapped.outputs[fallback]
    if legacy:  # v1/v2 rules name their output index, several rules may share one
        mapped.outputs = _legacy_outputs(rules, cases)
    if (parameters.get("options") or {}).get("allMatchingOutputs"):
        mapped.lost.append("allMatchingOutputs: nodedrop sends an item to the first match only")
    return mapped


def _legacy_outputs(rules: list[dict[str, Any]], cases: list[dict[str, Any]]) -> list[str]:
    by_index: dict[int, str] = {}
    for rule, case in zip(rules, cases, strict=True):
        index = int(rule.get("output", 0))
        port = by_index.setdefault(index, case["output"])
        case["output"] = port
    return [by_index.get(i, f"output_{i}") for i in range(max(by_index, default=-1) + 1)]


def merge(parameters: dict[str, Any], _: Context) -> Mapped:
    mapped = Mapped("merge", inputs=lambda index: f"input_{index + 1}")
    mode = parameters.get("mode", "append")
    if mode != "append":
        mapped.lost.append(f"mode {mode!r}: nodedrop's merge appends the inputs' items")
    return mapped


_SET_TYPES = {"number", "boolean", "object", "array"}


def _typed(value: Any, kind: str) -> Any:
    """A literal of an n8n Set field, converted as n8n converts it."""
    if not isinstance(value, str) or value.startswith("=") or kind not in _SET_TYPES:
        return value
    try:
        if kind == "number":
            return int(value) if value.strip().lstrip("-").isdigit() else float(value)
        if kind == "boolean":
            return value.strip().lower() == "true"
        return json.loads(value)
    except ValueError:
        return value


def set_node(parameters: dict[str, Any], context: Context) -> Mapped:
    mapped = Mapped("set")
    values: dict[str, Any] = {}
    if parameters.get("mode", "manual") != "manual":
        mapped.lost.append("JSON mode: not translated; no values set")
    assignments = (parameters.get("assignments") or {}).get("assignments")
    if assignments is not None:  # Set v3.3+
        for entry in assignments:
            name = str(entry.get("name", ""))
            raw = _typed(entry.get("value"), str(entry.get("type", "string")))
            values[name] = _translated(raw, context, f"values.{name}", mapped)
        keeps_all = (parameters.get("options") or {}).get("includeOtherFields", False)
        keeps_all = keeps_all or parameters.get("includeOtherFields", False)
    elif "fields" in parameters:  # Set v3.0-3.2
        for entry in (parameters.get("fields") or {}).get("values") or []:
            name = str(entry.get("name", ""))
            kind = str(entry.get("type", "stringValue"))
            raw = _typed(entry.get(kind, ""), kind.removesuffix("Value"))
            values[name] = _translated(raw, context, f"values.{name}", mapped)
        keeps_all = parameters.get("include", "all") == "all"
    else:  # Set v1/v2
        for kind, entries in (parameters.get("values") or {}).items():
            for entry in entries or []:
                name = str(entry.get("name", ""))
                raw = _typed(entry.get("value"), kind)
                values[name] = _translated(raw, context, f"values.{name}", mapped)
        keeps_all = not parameters.get("keepOnlySet", False)
    if not keeps_all:
        mapped.approximate.append(
            "n8n keeps only the fields it sets; nodedrop's set adds them to each item"
        )
    if any("." in name for name in values):
        mapped.approximate.append("names with dots are keys here (n8n: nested fields)")
    mapped.parameters["values"] = values
    return mapped


def wait(parameters: dict[str, Any], _: Context) -> Mapped:
    resume = parameters.get("resume", "timeInterval")
    if resume != "timeInterval":
        mapped = Mapped("noop")
        mapped.lost.append(f"resume {resume!r}: no equivalent; replaced by a noop")
        return mapped
    amount = parameters.get("amount", 1)
    unit = parameters.get("unit", "hours")
    mapped = Mapped("wait")
    if not isinstance(amount, int | float) or unit not in _UNITS_MS:
        mapped.lost.append(f"wait {amount!r} {unit!r}: not a fixed time; waits 0 ms")
        mapped.parameters["ms"] = 0
        return mapped
    mapped.parameters["ms"] = int(amount * _UNITS_MS[unit])
    return mapped


def noop(_: dict[str, Any], __: Context) -> Mapped:
    return Mapped("noop")


MAPPERS: dict[str, Callable[[dict[str, Any], Context], Mapped]] = {
    "n8n-nodes-base.manualTrigger": manual_trigger,
    "n8n-nodes-base.start": manual_trigger,
    "n8n-nodes-base.webhook": webhook,
    "n8n-nodes-base.scheduleTrigger": schedule,
    "n8n-nodes-base.httpRequest": http_request,
    "n8n-nodes-base.if": if_node,
    "n8n-nodes-base.switch": switch,
    "n8n-nodes-base.merge": merge,
    "n8n-nodes-base.set": set_node,
    "n8n-nodes-base.wait": wait,
    "n8n-nodes-base.noOp": noop,
}


def unmapped(n8n_type: str) -> Mapped:
    """A stand-in for a type with no equivalent: the graph stays whole and valid."""
    trigger = n8n_type.lower().endswith("trigger") or n8n_type.endswith((".cron", ".interval"))
    mapped = Mapped("manual_trigger" if trigger else "noop")
    mapped.lost.append(
        f"{n8n_type}: no nodedrop equivalent; replaced by a {mapped.type} (it does nothing)"
    )
    return mapped
