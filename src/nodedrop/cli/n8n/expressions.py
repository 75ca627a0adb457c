"""n8n expressions (JavaScript inside ``{{ }}``) translated to nodedrop's expression language.

Pure. n8n marks a parameter as an expression with a leading ``=``: ``"={{ $json.total > 100 }}"``
or ``"=https://api.example.org/{{ $json.id }}"``. What maps (docs/nodes.md, "Expressions"):

- ``$json.x``, ``$json["x"]``, ``$input.item.json.x``: ``item.x``, ``item["x"]``;
- a webhook's request: ``.body`` goes (``$json.body.x`` after a webhook: ``item.x``), since
  nodedrop's webhook item is the JSON body; its ``headers``, ``query`` and ``params`` do not
  map;
- ``$node["Name"].json.x``, ``$('Name').item.json.x``, ``$('Name').first().json.x``:
  ``nodes["id"]["main"][0].x`` (the node's first item; ``.last()``: ``[-1]``);
- ``$execution.id``: ``execution.id``;
- ``=== !== && || ! undefined``: ``== != and or not None``;
- ``x.length``, ``x.toString()``: ``len(x)``, ``str(x)``;
- the methods ``toLowerCase toUpperCase trim startsWith endsWith split replace``: ``lower upper
  strip startswith endswith split replace``;
- ``Math.round/min/max/abs``, ``parseInt``, ``String``, ``JSON.stringify/parse``: ``round min
  max abs int str to_json from_json``.

Anything else (the ternary ``?:``, ``??``, ``?.``, arrow functions, object literals, template
strings, ``$now``, ``$workflow``, other methods) is reported as not translated; the result is
checked with nodedrop's own compiler, so what is called translated is a valid expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodedrop.contracts.expressions import ExpressionError, compile_expression


class Untranslatable(ValueError):  # noqa: N818 - "raise Untranslatable" reads as meant
    """An n8n expression that has no nodedrop equivalent here; the message says what."""


@dataclass(frozen=True)
class Names:
    """What an expression may name: nodedrop ids by n8n node name, the webhook nodes among
    them, and whether ``$json`` is a webhook's request where the expression is (the node's only
    parent is a webhook)."""

    node_ids: Mapping[str, str]
    webhooks: frozenset[str] = frozenset()
    fed_by_webhook: bool = False


@dataclass
class Translation:
    """A parameter value translated, and what in it did not translate."""

    value: Any
    problems: list[str] = field(default_factory=list)


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_$][\w$]*)
    | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||\?\?|\?\.|=>|[-+*/%<>!?:()[\]{},.`])
    )""",
    re.VERBOSE,
)
_OPERATORS = {"===": "==", "!==": "!=", "&&": "and", "||": "or"}
_UNSUPPORTED_OPERATORS = {
    "?": "the ternary ?:",
    ":": "the ternary ?:",
    "??": "??",
    "?.": "?.",
    "=>": "arrow functions",
    "{": "object literals",
    "`": "template strings",
}
_METHODS = {
    "toLowerCase": "lower",
    "toUpperCase": "upper",
    "trim": "strip",
    "startsWith": "startswith",
    "endsWith": "endswith",
    "split": "split",
    "replace": "replace",
}
_FUNCTIONS = {
    ("Math", "round"): "round",
    ("Math", "min"): "min",
    ("Math", "max"): "max",
    ("Math", "abs"): "abs",
    ("JSON", "stringify"): "to_json",
    ("JSON", "parse"): "from_json",
}
_GLOBALS = {"parseInt": "int", "String": "str", "true": "true", "false": "false", "null": "null"}
_GLOBALS["undefined"] = "None"


def _tokens(source: str) -> list[str]:
    found: list[str] = []
    position = 0
    source = source.rstrip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise Untranslatable(f"cannot read {source[position : position + 20]!r}")
        found.append(match.group().strip())
        position = match.end()
    return found


class _Translator:
    def __init__(self, tokens: list[str], names: Names) -> None:
        self.tokens = tokens
        self.names = names
        self.at = 0
        self.out: list[str] = []

    def peek(self, offset: int = 0) -> str | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, *expected: str) -> str:
        token = self.peek()
        if token is None or (expected and token not in expected):
            raise Untranslatable(f"expected {' or '.join(expected) or 'more'} at {token!r}")
        self.at += 1
        return token

    def run(self) -> str:
        while self.peek() is not None:
            self.step()
        return _join(self.out)

    def step(self) -> None:
        token = self.take()
        if token in _UNSUPPORTED_OPERATORS:
            raise Untranslatable(f"{_UNSUPPORTED_OPERATORS[token]} has no equivalent")
        if token in _OPERATORS:
            self.out.append(_OPERATORS[token])
        elif token == "!":
            self.out.append("not")
        elif token == ".":
            self.member()
        elif token.startswith("$"):
            self.reference(token)
        elif token[0].isalpha() or token[0] == "_":
            self.name(token)
        else:
            self.out.append(token)

    def name(self, token: str) -> None:
        if token in _GLOBALS:
            self.out.append(_GLOBALS[token])
            return
        if self.peek() == "." and (token, self.peek(1)) in _FUNCTIONS:
            self.take(".")
            self.out.append(_FUNCTIONS[(token, self.take())])
            return
        raise Untranslatable(f"{token!r} is not something nodedrop's expressions know")

    def member(self) -> None:
        """``.name`` after a value: a key, or a method nodedrop has under another name."""
        name = self.take()
        if self.peek() == "(":
            if name == "toString":
                self.take("(")
                self.take(")")
                self.wrap("str")
                return
            if name not in _METHODS:
                raise Untranslatable(f"the method .{name}() has no equivalent")
            self.out += [".", _METHODS[name]]
            return
        if name == "length":
            self.wrap("len")
            return
        self.out += [".", name]

    def wrap(self, function: str) -> None:
        """``function(...)`` around the value that ends the output so far (``a.b[0]``)."""
        start = len(self.out)
        while start > 0:
            last = self.out[start - 1]
            if last in {"]", ")"}:
                start = self._group_start(start - 1)
                continue
            if re.fullmatch(r"[A-Za-z_]\w*|'.*'|\".*\"", last):
                start -= 1
                if start > 0 and self.out[start - 1] == ".":
                    start -= 1
                    continue
                if start > 0 and self.out[start - 1] == "[":
                    continue
                break
            break
        self.out[start:] = [function, "(", *self.out[start:], ")"]

    def _group_start(self, close: int) -> int:
        opening = {"]": "[", ")": "("}[self.out[close]]
        depth = 0
        for index in range(close, -1, -1):
            if self.out[index] == self.out[close]:
                depth += 1
            elif self.out[index] == opening:
                depth -= 1
                if depth == 0:
                    return index
        raise Untranslatable("unbalanced brackets")

    def reference(self, token: str) -> None:
        if token == "$json":
            self.out.append("item")
            if self.names.fed_by_webhook:
                self.webhook_request()
        elif token == "$input":
            self.take(".")
            self.take("item")
            self.take(".")
            self.take("json")
            self.out.append("item")
        elif token == "$execution":
            self.take(".")
            self.take("id")
            self.out += ["execution", ".", "id"]
        elif token == "$node":
            self.take("[")
            name = self.string()
            self.take("]")
            self.take(".")
            self.take("json")
            self.out += self.first_item(name, 0)
            if name in self.names.webhooks:
                self.webhook_request()
        elif token == "$":
            self.take("(")
            name = self.string()
            self.take(")")
            self.take(".")
            accessor = self.take("item", "first", "last")
            if accessor != "item":
                self.take("(")
                self.take(")")
            self.take(".")
            self.take("json")
            self.out += self.first_item(name, -1 if accessor == "last" else 0)
            if name in self.names.webhooks:
                self.webhook_request()
        else:
            raise Untranslatable(f"{token} has no equivalent")

    def webhook_request(self) -> None:
        """After a webhook's item: n8n's is the request (``body``, ``headers``, ``query``,
        ``params``), nodedrop's the JSON body itself, so ``.body`` goes away."""
        if self.peek() == "." and self.peek(1) == "body":
            self.at += 2
        elif self.peek() == "[" and self.peek(1) in {'"body"', "'body'"} and self.peek(2) == "]":
            self.at += 3
        else:
            part = self.peek(1) if self.peek() in {".", "["} else "the whole request"
            raise Untranslatable(
                f"a webhook request's {part}: nodedrop's webhook item is the JSON body alone"
            )

    def string(self) -> str:
        token = self.take()
        if token[:1] not in {"'", '"'}:
            raise Untranslatable(f"expected a node name in quotes at {token!r}")
        return token[1:-1].replace("\\'", "'").replace('\\"', '"')

    def first_item(self, name: str, index: int) -> list[str]:
        """``nodes["id"]["main"][index]`` as tokens, so ``.length`` can wrap it."""
        node_id = self.names.node_ids.get(name)
        if node_id is None:
            raise Untranslatable(f"no node named {name!r} in the workflow")
        return ["nodes", "[", f'"{node_id}"', "]", "[", '"main"', "]", "[", str(index), "]"]


_KEYWORDS = {"and", "or", "not", "in", "if", "else"}


def _join(tokens: list[str]) -> str:
    """Tokens as readable source: ``len(item["a"].strip()) > 0``."""
    text = ""
    previous = ""
    for token in tokens:
        glued = token in {".", ")", "]", ","} or previous in {".", "(", "[", ""}
        called = token in {"(", "["} and (
            previous in {")", "]"}
            or (previous[-1:].isalnum() and previous not in _KEYWORDS)
            or previous[-1:] in {"'", '"'}
        )
        text += token if glued or called else " " + token
        previous = token
    return text


def translate_expression(source: str, names: Names) -> str:
    """One n8n expression (the JavaScript between ``{{ }}``) in nodedrop's language;
    ``names`` says what the workflow's nodes are called. ``Untranslatable`` if it does not map."""
    translated = _Translator(_tokens(source), names).run()
    try:
        compile_expression(translated)
    except ExpressionError as error:
        raise Untranslatable(
            f"translated to {translated!r}, which nodedrop refuses: {error}"
        ) from None
    return translated


_TEMPLATE_PART = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def translate_template(text: str, names: Names) -> str:
    """An n8n expression parameter (after its ``=``): text with ``{{ }}`` parts."""
    pieces: list[str] = []
    position = 0
    for match in _TEMPLATE_PART.finditer(text):
        pieces.append(text[position : match.start()])
        pieces.append("{{ " + translate_expression(match.group(1).strip(), names) + " }}")
        position = match.end()
    pieces.append(text[position:])
    return "".join(pieces)


def untranslated(text: str) -> str:
    """What stands in for an expression that did not translate: a literal, visibly a
    placeholder, that nodedrop does not take for an expression."""
    return "n8n expression not translated: " + text.replace("{{", "{ {").replace("}}", "} }")


def translate_value(value: Any, names: Names, where: str = "") -> Translation:
    """A parameter value with every n8n expression in it translated (dicts and lists too)."""
    if isinstance(value, str) and value.startswith("="):
        try:
            return Translation(translate_template(value[1:], names))
        except Untranslatable as why:
            return Translation(untranslated(value[1:]), [f"{where}: {value[1:]!r}: {why}"])
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        problems: list[str] = []
        for key, inner in value.items():
            translated = translate_value(inner, names, f"{where}.{key}" if where else key)
            result[key] = translated.value
            problems += translated.problems
        return Translation(result, problems)
    if isinstance(value, list):
        items = [translate_value(v, names, f"{where}[{i}]") for i, v in enumerate(value)]
        return Translation([t.value for t in items], [p for t in items for p in t.problems])
    if isinstance(value, str) and "{{" in value:
        # A plain n8n string holding braces: a literal there, so it must stay one here.
        return Translation(value.replace("{{", '{{ "{{" }}'))
    return Translation(value)
