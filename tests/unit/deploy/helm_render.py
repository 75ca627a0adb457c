"""A small renderer for the Helm templates of deploy/kubernetes/nodedrop, for the tests.

It implements exactly the subset of Helm's template language (Go's text/template plus a few
Sprig functions) the chart uses, and raises :class:`TemplateError` on anything else, so a
template that goes beyond it fails the tests instead of rendering wrongly:

- text, ``{{ pipeline }}``, comments ``{{/* ... */}}``, the trim markers ``{{-`` and ``-}}``;
- ``define "name"`` (in any template; the ``_*.tpl`` files render nothing themselves);
- ``if PIPELINE`` ... [``else``] ... ``end`` (Go's truth: false, 0, "", nil, empty list/map);
- ``range PIPELINE`` ... ``end`` over a list, with the element as the dot;
- operands: ``.``, ``.A.B`` (from the dot), ``$`` and ``$.A.B`` (from the root), strings in
  double quotes, integers;
- pipelines ``a | f x | g``: the value goes in as the last argument of the next function;
- functions ``include NAME CONTEXT``, ``toYaml``, ``nindent N``, ``quote``, ``default D``.

The root context holds ``.Values`` and ``.Release.Name`` only. A key that is not there raises
(Helm's ``--strict`` behaviour), where Helm would print nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the environment

_WHITESPACE = " \t\r\n"


class TemplateError(Exception):
    """A construct outside the supported subset, or an error Helm would report too."""


# ---------------------------------------------------------------- lexing


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Action:
    source: str  # without the delimiters and trim markers, stripped
    where: str


_Token = _Text | _Action


def _lex(source: str, name: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(_WHITESPACE)
        if start < 0:
            tokens.append(_Text(text))
            return tokens
        end = source.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"{name}: unclosed action at offset {start}")
        inner = source[start + 2 : end]
        line = source.count("\n", 0, start) + 1
        where = f"{name}:{line}"
        if len(inner) >= 2 and inner[0] == "-" and inner[1] in _WHITESPACE:
            text = text.rstrip(_WHITESPACE)
            inner = inner[2:]
        trim_next = len(inner) >= 2 and inner[-1] == "-" and inner[-2] in _WHITESPACE
        if trim_next:
            inner = inner[:-2]
        tokens.append(_Text(text))
        stripped = inner.strip(_WHITESPACE)
        if stripped.startswith("/*") or stripped.endswith("*/"):
            # Go: a comment starts and ends at the delimiters ({{/* */}}, {{- /* */ -}}).
            if not (inner.startswith("/*") and inner.endswith("*/")):
                raise TemplateError(f"{where}: malformed comment")
        else:
            if inner.count('"') % 2:
                raise TemplateError(f"{where}: unbalanced quotes (or '}}}}' inside a string)")
            tokens.append(_Action(stripped, where))
        pos = end + 2


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class _Field:
    root: bool  # $... instead of the dot
    path: tuple[str, ...]


@dataclass(frozen=True)
class _Literal:
    value: str | int


@dataclass(frozen=True)
class _Identifier:
    name: str


_Operand = _Field | _Literal | _Identifier
_Command = tuple[_Operand, ...]
_Pipeline = tuple[_Command, ...]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+)(?![\w.])
      | (?P<field>\$?(?:\.[A-Za-z_]\w*)+|\$|\.)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<pipe>\|)
    )""",
    re.VERBOSE,
)


def _parse_pipeline(source: str, where: str) -> _Pipeline:
    commands: list[_Command] = []
    current: list[_Operand] = []
    pos = 0
    source = source.rstrip(_WHITESPACE)
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"{where}: unsupported syntax at {source[pos:]!r}")
        pos = match.end()
        if match["string"] is not None:
            current.append(_Literal(cast(str, json.loads(match["string"]))))
        elif match["number"] is not None:
            current.append(_Literal(int(match["number"])))
        elif match["field"] is not None:
            current.append(_field(match["field"], where))
        elif match["ident"] is not None:
            current.append(_Identifier(match["ident"]))
        else:  # a pipe
            if not current:
                raise TemplateError(f"{where}: empty command in pipeline {source!r}")
            commands.append(tuple(current))
            current = []
    if not current:
        raise TemplateError(f"{where}: empty command in pipeline {source!r}")
    commands.append(tuple(current))
    return tuple(commands)


def _field(text: str, where: str) -> _Field:
    if text == ".":
        return _Field(False, ())
    root = text.startswith("$")
    rest = text[1:] if root else text
    if rest and not rest.startswith("."):
        raise TemplateError(f"{where}: unsupported variable {text!r} (only $ is)")
    return _Field(root, tuple(part for part in rest.split(".") if part))


# ---------------------------------------------------------------- the tree


@dataclass
class _Output:
    pipeline: _Pipeline
    where: str


@dataclass
class _If:
    condition: _Pipeline
    where: str
    then: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


@dataclass
class _Range:
    over: _Pipeline
    body: list[_Node] = field(default_factory=list)
    where: str = ""


_Node = _Text | _Output | _If | _Range

_KEYWORDS = frozenset({"if", "else", "end", "range", "define"})
_UNSUPPORTED = frozenset({"with", "template", "block", "break", "continue", "else if"})


def _keyword(source: str) -> tuple[str, str]:
    word, _, rest = source.partition(" ")
    if word == "else" and rest.strip().startswith(("if ", "with ")):
        return "else if", rest
    return word, rest.strip(_WHITESPACE)


def _parse(tokens: Sequence[_Token], name: str) -> tuple[list[_Node], dict[str, list[_Node]]]:
    """The top-level nodes and the defines of one template."""
    defines: dict[str, list[_Node]] = {}
    # Each frame: the list being filled, and what opened it ("root", "if", "else", "range",
    # "define"), the node for if/range, and the define's name.
    top: list[_Node] = []
    stack: list[tuple[list[_Node], str, _If | _Range | str | None]] = [(top, "root", None)]
    body: list[_Node]
    for token in tokens:
        if isinstance(token, _Text):
            if token.text:
                stack[-1][0].append(token)
            continue
        word, rest = _keyword(token.source)
        if word in _UNSUPPORTED:
            raise TemplateError(f"{token.where}: unsupported construct {{{{ {token.source} }}}}")
        if word not in _KEYWORDS:
            stack[-1][0].append(_Output(_parse_pipeline(token.source, token.where), token.where))
        elif word == "if":
            node = _If(_parse_pipeline(rest, token.where), token.where)
            stack[-1][0].append(node)
            stack.append((node.then, "if", node))
        elif word == "else":
            _, kind, opened = stack[-1]
            if kind != "if" or not isinstance(opened, _If) or rest:
                raise TemplateError(f"{token.where}: unsupported or misplaced else")
            stack[-1] = (opened.otherwise, "else", opened)
        elif word == "range":
            loop = _Range(_parse_pipeline(rest, token.where), where=token.where)
            stack[-1][0].append(loop)
            stack.append((loop.body, "range", loop))
        elif word == "define":
            if len(stack) != 1:
                raise TemplateError(f"{token.where}: define inside another block")
            match = re.fullmatch(r'"([^"\\]+)"', rest)
            if match is None:
                raise TemplateError(f"{token.where}: define needs one quoted name")
            body = []
            stack.append((body, "define", match[1]))
        else:  # end
            if len(stack) == 1:
                raise TemplateError(f"{token.where}: end without a block")
            if rest:
                raise TemplateError(f"{token.where}: unexpected {rest!r} after end")
            body, kind, opened = stack.pop()
            if kind == "define":
                assert isinstance(opened, str)
                if opened in defines:
                    raise TemplateError(f"{token.where}: {opened!r} defined twice")
                defines[opened] = body
    if len(stack) != 1:
        raise TemplateError(f"{name}: {stack[-1][1]} without end")
    return top, defines


# ---------------------------------------------------------------- evaluation


def _truth(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | dict | tuple):
        return bool(value)
    return True


def _print(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise TemplateError(
        f"{where}: printing a {type(value).__name__} ({value!r}) is not supported: use toYaml"
    )


def _to_yaml(value: object) -> str:
    # Helm's toYaml: the YAML document without its final newline.
    return cast(str, yaml.safe_dump(value, default_flow_style=False, sort_keys=True)).rstrip("\n")


def _nindent(width: object, text: object) -> str:
    if not isinstance(width, int) or isinstance(width, bool) or not isinstance(text, str):
        raise TemplateError(f"nindent takes a number and a string, not {width!r}, {text!r}")
    pad = " " * width
    return "\n" + pad + text.replace("\n", "\n" + pad)


def _quote(value: object) -> str:
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if isinstance(value, int):
        return f'"{value}"'
    if isinstance(value, str):
        if not all(" " <= c <= "~" for c in value):
            raise TemplateError(f"quote: only printable ASCII is supported, not {value!r}")
        return json.dumps(value)  # Go's %q for printable ASCII
    raise TemplateError(f"quote of a {type(value).__name__} ({value!r}) is not supported")


def _default(fallback: object, given: object) -> object:
    return given if _truth(given) else fallback


class Chart:
    """The templates of one chart directory, rendered with given values."""

    def __init__(self, chart_dir: Path) -> None:
        self.chart_dir = chart_dir
        self.templates: dict[str, list[_Node]] = {}
        self.defines: dict[str, list[_Node]] = {}
        templates_dir = chart_dir / "templates"
        for path in sorted(templates_dir.iterdir()):
            if path.is_dir():
                raise TemplateError(f"{path}: subdirectories of templates/ are not supported")
            if path.suffix not in {".yaml", ".tpl"}:
                raise TemplateError(f"{path}: only .yaml and .tpl templates are supported")
            top, defines = _parse(_lex(path.read_text(), path.name), path.name)
            for name, body in defines.items():
                if name in self.defines:
                    raise TemplateError(f"{path.name}: {name!r} is defined in two templates")
                self.defines[name] = body
            if not path.name.startswith("_"):
                self.templates[path.name] = top

    def values(self) -> dict[str, object]:
        loaded = yaml.safe_load((self.chart_dir / "values.yaml").read_text())
        if not isinstance(loaded, dict):
            raise TemplateError("values.yaml is not a mapping")
        return cast(dict[str, object], loaded)

    def render(
        self, release_name: str, values: Mapping[str, object] | None = None
    ) -> dict[str, str]:
        """Each template's output (not the ``_*`` ones), by file name."""
        root: dict[str, object] = {
            "Values": dict(self.values() if values is None else values),
            "Release": {"Name": release_name},
        }
        return {
            name: _Renderer(self.defines, root).run(nodes, root)
            for name, nodes in self.templates.items()
        }


class _Renderer:
    def __init__(self, defines: Mapping[str, list[_Node]], root: object) -> None:
        self.defines = defines
        self.root = root
        self.depth = 0
        self.functions: dict[str, Callable[..., object]] = {
            "include": self._include,
            "toYaml": _to_yaml,
            "nindent": _nindent,
            "quote": _quote,
            "default": _default,
        }
        self.arity = {"include": 2, "toYaml": 1, "nindent": 2, "quote": 1, "default": 2}

    def run(self, nodes: Sequence[_Node], dot: object) -> str:
        out: list[str] = []
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Output):
                out.append(_print(self._pipeline(node.pipeline, dot, node.where), node.where))
            elif isinstance(node, _If):
                condition = self._pipeline(node.condition, dot, node.where)
                out.append(self.run(node.then if _truth(condition) else node.otherwise, dot))
            else:
                items = self._pipeline(node.over, dot, node.where)
                if items is None:
                    continue
                if not isinstance(items, list):
                    raise TemplateError(f"{node.where}: range over a {type(items).__name__}")
                out.extend(self.run(node.body, item) for item in items)
        return "".join(out)

    def _include(self, name: object, dot: object) -> str:
        if not isinstance(name, str) or name not in self.defines:
            raise TemplateError(f"include of an undefined template {name!r}")
        self.depth += 1
        if self.depth > 50:
            raise TemplateError(f"include {name!r}: too deep (recursion?)")
        try:
            return self.run(self.defines[name], dot)
        finally:
            self.depth -= 1

    def _pipeline(self, pipeline: _Pipeline, dot: object, where: str) -> object:
        value: object = None
        for index, command in enumerate(pipeline):
            head, *args = command
            if isinstance(head, _Identifier):
                function = self.functions.get(head.name)
                if function is None:
                    raise TemplateError(f"{where}: unsupported function {head.name!r}")
                arguments = [self._operand(arg, dot, where) for arg in args]
                if index > 0:
                    arguments.append(value)
                if len(arguments) != self.arity[head.name]:
                    raise TemplateError(
                        f"{where}: {head.name} takes {self.arity[head.name]} arguments, "
                        f"got {len(arguments)}"
                    )
                value = function(*arguments)
            else:
                if args or index > 0:
                    raise TemplateError(f"{where}: {command} is not a function call")
                value = self._operand(head, dot, where)
        return value

    def _operand(self, operand: _Operand, dot: object, where: str) -> object:
        if isinstance(operand, _Literal):
            return operand.value
        if isinstance(operand, _Identifier):
            raise TemplateError(f"{where}: a function ({operand.name}) as an argument")
        value = self.root if operand.root else dot
        walked = "$" if operand.root else ""
        for key in operand.path:
            walked += f".{key}"
            if not isinstance(value, dict):
                raise TemplateError(f"{where}: {walked}: not a map: {value!r}")
            if key not in value:
                raise TemplateError(f"{where}: {walked} is not set")
            value = value[key]
        return value
