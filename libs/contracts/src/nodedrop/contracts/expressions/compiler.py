"""Turns one expression's source into a tree of closures, refusing anything not whitelisted.

``ast.parse(mode="eval")`` gives the syntax tree; each allowed node type has a method here that
checks it and returns a closure ``(Context) -> value``. A node type without a method is refused,
so syntax added to future Pythons is refused until someone decides otherwise. Everything that
can be decided from the text (names, attribute and method names, argument counts, operators,
nesting) is decided here, once, which is what makes save-time checks useful and evaluation fast.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nodedrop.contracts.expressions import operators
from nodedrop.contracts.expressions.errors import BudgetExceeded, ExpressionError
from nodedrop.contracts.expressions.helpers import HELPERS, METHOD_NAMES, METHODS, iterate
from nodedrop.contracts.expressions.limits import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_GENERATORS,
)
from nodedrop.contracts.expressions.runtime import (
    SEQUENCES,
    Context,
    OverBudget,
    Refused,
    check_items,
    check_text,
    to_text,
    type_name,
)

Evaluator = Callable[[Context], Any]
#: The names an expression may read (docs/nodes.md, "Expressions").
SCOPE_NAMES = frozenset({"item", "nodes", "execution"})
#: JSON's literals, accepted beside Python's True, False and None.
JSON_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}

_BINARY: dict[type[ast.operator], operators.BinaryOperator] = {
    ast.Add: operators.add,
    ast.Sub: operators.subtract,
    ast.Mult: operators.multiply,
    ast.Div: operators.divide,
    ast.FloorDiv: operators.floor_divide,
    ast.Mod: operators.modulo,
    ast.Pow: operators.power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Context, Any], Any]] = {
    ast.USub: operators.negate,
    ast.UAdd: operators.plus,
    ast.Not: operators.logical_not,
}
_COMPARE: dict[type[ast.cmpop], operators.BinaryOperator] = {
    ast.Eq: operators.equal,
    ast.NotEq: operators.not_equal,
    ast.Lt: operators.less,
    ast.LtE: operators.less_equal,
    ast.Gt: operators.greater,
    ast.GtE: operators.greater_equal,
    ast.In: operators.contains,
    ast.NotIn: operators.not_contains,
    ast.Is: operators.is_,
    ast.IsNot: operators.is_not,
}
# What refused syntax is called in messages (everything else: its ast class name).
_REFUSED_NAMES: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Set: "set literals (use a list)",
    ast.SetComp: "set comprehensions (use a list)",
    ast.Starred: "* unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.BitAnd: "the & operator",
    ast.BitOr: "the | operator",
    ast.BitXor: "the ^ operator",
    ast.LShift: "the << operator",
    ast.RShift: "the >> operator",
    ast.Invert: "the ~ operator",
    ast.MatMult: "the @ operator",
}
_COMPREHENSIONS = (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)
_JSON_CONSTANTS = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True, slots=True, eq=False)
class CompiledExpression:
    """A checked expression, ready to evaluate any number of times (it holds no state)."""

    source: str
    #: Steps charged per evaluation for the nodes outside comprehensions.
    cost: int
    run: Evaluator

    def evaluate(self, ctx: Context, *, as_text: bool = False) -> Any:
        """The expression's value; with ``as_text``, rendered as it reads inside a string."""
        try:
            ctx.charge(self.cost)
            value = self.run(ctx)
            return to_text(ctx, value) if as_text else value
        except OverBudget as refused:
            raise BudgetExceeded(self.source, refused.message) from None
        except Refused as refused:
            raise ExpressionError(self.source, refused.message) from None
        except RecursionError:
            # Python's own recursion over deep input data (==, JSON): refused, not a crash.
            raise ExpressionError(self.source, "data nested too deeply") from None
        except Exception as error:
            # Whatever a helper or operator raised on the user's data (division by zero,
            # '<' between a string and a number) fails the node as an ExpressionError
            # (docs/nodes.md, "Expressions"), never as an unexpected crash.
            raise ExpressionError(self.source, str(error) or type(error).__name__) from error


def compile_expression(source: str) -> CompiledExpression:
    """Parse and check ``source`` (the text between ``{{`` and ``}}``); cached by source.

    Raises :class:`ExpressionError` naming the problem and its column.
    """
    if len(source) <= CACHED_SOURCE_CHARS:
        return _compile_cached(source)
    return _compile(source)


# A compiled expression takes about 80 bytes per source character; caching only short sources
# (nearly all of them) keeps the cache under ~80 MB even when someone submits many long ones.
CACHED_SOURCE_CHARS = 1000


@functools.lru_cache(maxsize=1024)
def _compile_cached(source: str) -> CompiledExpression:
    return _compile(source)


def _compile(source: str) -> CompiledExpression:
    text = source.strip()
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            text,
            f"expression too long ({len(text):,} characters; at most {MAX_EXPRESSION_LENGTH:,})",
        )
    if not text:
        raise ExpressionError(text, "empty expression")
    tree = _parse(text)
    _check_depth(text, tree.body)
    compiler = _Compiler(text)
    return CompiledExpression(text, _static_cost(tree.body), compiler.expr(tree.body))


def _parse(text: str) -> ast.Expression:
    try:
        # The parser warns about user text ("\d" is an invalid escape): that is not ours to log.
        # catch_warnings is process-wide, but this runs only when the cache misses.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="eval")
    except SyntaxError as error:
        column = f"column {error.offset}" if error.offset and error.offset > 0 else "the end"
        where = f"line {error.lineno}, {column}" if "\n" in text else column
        raise ExpressionError(
            text,
            f"invalid syntax: {error.msg} (at {where})",
            syntax=True,
            column=_syntax_index(text, error),
        ) from None
    except (RecursionError, MemoryError):
        # CPython's parser gives up on deep nesting this way ("-" * 5000 + "1").
        raise ExpressionError(text, f"expression nested too deeply (at most {MAX_DEPTH})") from None
    except ValueError as error:  # Python 3.11: "source code string cannot contain null bytes"
        raise ExpressionError(text, f"invalid syntax: {error}", syntax=True) from None


def _children(node: ast.AST) -> list[ast.AST]:
    # Contexts (Load) and operator tokens are leaves of no interest to depth or cost.
    return [
        child
        for child in ast.iter_child_nodes(node)
        if isinstance(child, ast.expr | ast.comprehension | ast.keyword)
    ]


def _check_depth(text: str, root: ast.expr) -> None:
    """Iterative, so a tree too deep for the compiler's recursion is refused without recursing."""
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(text, f"expression nested too deeply (at most {MAX_DEPTH})")
        stack.extend((child, depth + 1) for child in _children(node))


def _static_cost(root: ast.AST) -> int:
    """Steps for one evaluation of ``root``: one per node, a comprehension counting as one
    (its body is charged per iteration when it runs)."""
    cost = 0
    stack = [root]
    while stack:
        node = stack.pop()
        cost += isinstance(node, ast.expr)
        if not isinstance(node, _COMPREHENSIONS):
            stack.extend(_children(node))
    return cost


def _node_column(text: str, node: ast.AST) -> tuple[int, int]:
    """The 1-based line and character column where ``node`` starts."""
    line_number = getattr(node, "lineno", 1)
    offset = getattr(node, "col_offset", 0)
    line = text.splitlines()[line_number - 1] if text else ""
    # col_offset counts UTF-8 bytes; people count characters.
    return line_number, len(line.encode()[:offset].decode(errors="ignore")) + 1


def _column(text: str, node: ast.AST) -> str:
    line_number, column = _node_column(text, node)
    return f"line {line_number}, column {column}" if "\n" in text else f"column {column}"


def _index(text: str, line_number: int, column: int) -> int:
    """A 1-based line and column as a 0-based index into ``text``, clamped to it."""
    lines = text.split("\n")
    before = sum(len(line) + 1 for line in lines[: max(line_number - 1, 0)])
    return min(max(before + column - 1, 0), len(text))


def _syntax_index(text: str, error: SyntaxError) -> int:
    # SyntaxError's offset counts characters (not bytes) and is 1-based; none means the end.
    if not error.offset or error.offset < 1:
        return len(text)
    return _index(text, error.lineno or 1, error.offset)


def _check_call(
    candidates: Sequence[Callable[..., Any]], leading: int, args: int, keywords: list[str]
) -> str | None:
    """Whether any candidate accepts these arguments; else the first one's complaint."""
    complaint = None
    for function in candidates:
        try:
            inspect.signature(function).bind(*[None] * (leading + args), **dict.fromkeys(keywords))
        except TypeError as error:
            complaint = complaint or str(error)
        else:
            return None
    return complaint


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        # Names bound by the enclosing comprehensions, where compilation currently is.
        self.bound: frozenset[str] = frozenset()

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(
            self.source,
            f"{message} (at {_column(self.source, node)})",
            column=_index(self.source, *_node_column(self.source, node)),
        )

    def expr(self, node: ast.expr) -> Evaluator:
        method = _METHODS.get(type(node))
        if method is None:
            name = _REFUSED_NAMES.get(type(node), type(node).__name__)
            raise self.error(node, f"not allowed in expressions: {name}")
        return method(self, node)

    def check_identifier(self, node: ast.AST, name: str) -> None:
        # Dunder and private names are the door to Python's object graph (__class__,
        # __globals__, __subclasses__); no legitimate data access needs them as identifiers.
        # Data keys starting with "_" stay reachable as item["_key"], which reads dict data.
        if name.startswith("_"):
            raise self.error(node, f"names starting with '_' are not allowed ({name!r})")

    # ---------------------------------------------------------------- leaves

    def constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        if type(value) not in _JSON_CONSTANTS:  # bytes, complex (1j), Ellipsis
            raise self.error(node, f"constants of type {type(value).__name__} are not allowed")
        if type(value) is float and not math.isfinite(value):  # 1e999
            raise self.error(node, "number too large")

        def constant(ctx: Context) -> Any:
            return value

        return constant

    def name(self, node: ast.Name) -> Evaluator:
        ident = node.id
        self.check_identifier(node, ident)
        if ident in self.bound:

            def local(ctx: Context) -> Any:
                return ctx.locals[ident]

            return local
        if ident in JSON_LITERALS:
            # Workflow authors write JSON and JavaScript: `true`, `false` and `null` read as
            # they do there (a comprehension variable of that name still wins, above).
            literal = JSON_LITERALS[ident]
            return lambda ctx: literal
        if ident in SCOPE_NAMES:

            def scoped(ctx: Context) -> Any:
                try:
                    return ctx.scope[ident]
                except KeyError:
                    raise Refused(f"{ident!r} is not available here") from None

            return scoped
        if ident in HELPERS:
            raise self.error(node, f"{ident}() is a function: call it")
        raise self.error(
            node,
            f"unknown name {ident!r} (available: item, nodes, execution)",
        )

    # ---------------------------------------------------------------- access

    def attribute(self, node: ast.Attribute) -> Evaluator:
        key = node.attr
        self.check_identifier(node, key)
        value = self.expr(node.value)

        def read_key(ctx: Context) -> Any:
            return operators.get_key(value(ctx), key)

        return read_key

    def subscript(self, node: ast.Subscript) -> Evaluator:
        value = self.expr(node.value)
        index = node.slice
        if isinstance(index, ast.Slice):
            lower = self.optional(index.lower)
            upper = self.optional(index.upper)
            step = self.optional(index.step)

            def read_slice(ctx: Context) -> Any:
                return operators.get_slice(ctx, value(ctx), lower(ctx), upper(ctx), step(ctx))

            return read_slice
        key = self.expr(index)

        def read_item(ctx: Context) -> Any:
            return operators.get_item(ctx, value(ctx), key(ctx))

        return read_item

    def optional(self, node: ast.expr | None) -> Evaluator:
        if node is None:
            return _none
        return self.expr(node)

    # ---------------------------------------------------------------- operators

    def binary(self, node: ast.BinOp) -> Evaluator:
        operator = _BINARY.get(type(node.op))
        if operator is None:
            name = _REFUSED_NAMES.get(type(node.op), type(node.op).__name__)
            raise self.error(node, f"not allowed in expressions: {name}")
        left = self.expr(node.left)
        right = self.expr(node.right)

        def binary(ctx: Context) -> Any:
            return operator(ctx, left(ctx), right(ctx))

        return binary

    def unary(self, node: ast.UnaryOp) -> Evaluator:
        operator = _UNARY.get(type(node.op))
        if operator is None:
            name = _REFUSED_NAMES.get(type(node.op), type(node.op).__name__)
            raise self.error(node, f"not allowed in expressions: {name}")
        operand = self.expr(node.operand)

        def unary(ctx: Context) -> Any:
            return operator(ctx, operand(ctx))

        return unary

    def boolean(self, node: ast.BoolOp) -> Evaluator:
        values = [self.expr(value) for value in node.values]
        if isinstance(node.op, ast.And):

            def all_of(ctx: Context) -> Any:
                result = None
                for value in values:
                    result = value(ctx)
                    if not result:
                        return result
                return result

            return all_of

        def any_of(ctx: Context) -> Any:
            result = None
            for value in values:
                result = value(ctx)
                if result:
                    return result
            return result

        return any_of

    def compare(self, node: ast.Compare) -> Evaluator:
        left = self.expr(node.left)
        steps: list[tuple[operators.BinaryOperator, Evaluator]] = []
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            is_identity = isinstance(op, ast.Is | ast.IsNot)
            if is_identity and not (
                isinstance(comparator, ast.Constant)
                and comparator.value in (None, True, False)
                and type(comparator.value) in (bool, type(None))
            ):
                # Identity of anything else depends on CPython's caching; it means nothing here.
                raise self.error(node, "'is' compares only with None, True or False; use ==")
            steps.append((_COMPARE[type(op)], self.expr(comparator)))
        if len(steps) == 1:
            ((operator, right),) = steps

            def compare_one(ctx: Context) -> Any:
                return operator(ctx, left(ctx), right(ctx))

            return compare_one

        def compare_chain(ctx: Context) -> Any:
            current = left(ctx)
            for operator, right in steps:
                following = right(ctx)
                if not operator(ctx, current, following):
                    return False
                current = following
            return True

        return compare_chain

    def conditional(self, node: ast.IfExp) -> Evaluator:
        test = self.expr(node.test)
        body = self.expr(node.body)
        orelse = self.expr(node.orelse)

        def conditional(ctx: Context) -> Any:
            return body(ctx) if test(ctx) else orelse(ctx)

        return conditional

    # ---------------------------------------------------------------- literals

    def list_(self, node: ast.List | ast.Tuple) -> Evaluator:
        # Tuples are lists: every value stays JSON.
        elements = [self.expr(element) for element in node.elts]

        def build_list(ctx: Context) -> Any:
            return [element(ctx) for element in elements]

        return build_list

    def dict_(self, node: ast.Dict) -> Evaluator:
        pairs: list[tuple[Evaluator, Evaluator]] = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.error(value, "not allowed in expressions: ** unpacking")
            pairs.append((self.expr(key), self.expr(value)))

        def build_dict(ctx: Context) -> Any:
            result: dict[str, Any] = {}
            for key, value in pairs:
                result[_object_key(key(ctx))] = value(ctx)
            return result

        return build_dict

    def fstring(self, node: ast.JoinedStr) -> Evaluator:
        parts: list[str | Evaluator] = []
        for value in node.values:
            if isinstance(value, ast.Constant) and type(value.value) is str:
                parts.append(value.value)
                continue
            if not isinstance(value, ast.FormattedValue):
                raise self.error(value, "unexpected f-string part")
            if value.conversion != -1:
                raise self.error(value, "f-string conversions (!r, !s, !a) are not allowed")
            if value.format_spec is not None:
                # Format specs are a formatting language of their own, with widths that
                # allocate (f"{x:>999999999}"); round() and str methods cover the needs.
                raise self.error(value, "f-string format specs (':…') are not allowed; use round()")
            parts.append(self.expr(value.value))

        def fstring(ctx: Context) -> Any:
            pieces = [part if isinstance(part, str) else to_text(ctx, part(ctx)) for part in parts]
            check_text(sum(len(piece) for piece in pieces))
            return "".join(pieces)

        return fstring

    # ---------------------------------------------------------------- calls

    def call(self, node: ast.Call) -> Evaluator:
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise self.error(argument, "not allowed in expressions: * unpacking")
        names: list[str] = []
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.error(keyword.value, "not allowed in expressions: ** unpacking")
            self.check_identifier(keyword, keyword.arg)
            names.append(keyword.arg)
        args = [self.expr(argument) for argument in node.args]
        kwargs = [
            (name, self.expr(keyword.value))
            for name, keyword in zip(names, node.keywords, strict=True)
        ]
        func = node.func
        if isinstance(func, ast.Name):
            return self.call_function(node, func, args, kwargs)
        if isinstance(func, ast.Attribute):
            return self.call_method(node, func, args, kwargs)
        raise self.error(node, "only the functions and methods listed in the docs can be called")

    def call_function(
        self,
        node: ast.Call,
        func: ast.Name,
        args: list[Evaluator],
        kwargs: list[tuple[str, Evaluator]],
    ) -> Evaluator:
        name = func.id
        self.check_identifier(func, name)
        helper = HELPERS.get(name)
        if helper is None or name in self.bound:
            raise self.error(
                func, f"{name}() is not a function here (functions: {', '.join(HELPERS)})"
            )
        complaint = _check_call([helper], 1, len(args), [k for k, _ in kwargs])
        if complaint:
            raise self.error(node, f"{name}(): {complaint}")
        if kwargs:

            def call_with_keywords(ctx: Context) -> Any:
                return helper(
                    ctx, *[arg(ctx) for arg in args], **{k: value(ctx) for k, value in kwargs}
                )

            return call_with_keywords
        if len(args) == 1:
            (only,) = args

            def call_one(ctx: Context) -> Any:
                return helper(ctx, only(ctx))

            return call_one

        def call(ctx: Context) -> Any:
            return helper(ctx, *[arg(ctx) for arg in args])

        return call

    def call_method(
        self,
        node: ast.Call,
        func: ast.Attribute,
        args: list[Evaluator],
        kwargs: list[tuple[str, Evaluator]],
    ) -> Evaluator:
        name = func.attr
        self.check_identifier(func, name)
        candidates = METHOD_NAMES.get(name)
        if candidates is None:
            raise self.error(
                func,
                f"method .{name}() is not allowed (methods: {', '.join(sorted(METHOD_NAMES))})",
            )
        complaint = _check_call(candidates, 2, len(args), [k for k, _ in kwargs])
        if complaint:
            raise self.error(node, f".{name}(): {complaint}")
        target = self.expr(func.value)

        def call_method(ctx: Context) -> Any:
            obj = target(ctx)
            table = METHODS.get(type(obj))
            method = table.get(name) if table is not None else None
            if method is None:
                raise Refused(f"{type_name(obj)} has no method .{name}()")
            return method(
                ctx, obj, *[arg(ctx) for arg in args], **{k: value(ctx) for k, value in kwargs}
            )

        return call_method

    # ---------------------------------------------------------------- comprehensions

    def comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp) -> Evaluator:
        if len(node.generators) > MAX_GENERATORS:
            raise self.error(node, f"at most {MAX_GENERATORS} 'for' clauses in one comprehension")
        outer = self.bound
        levels: list[_Level] = []
        # Every name this comprehension binds, including names an enclosing one binds too: all
        # are restored afterwards.
        bound_here: set[str] = set()
        try:
            for generator in node.generators:
                if generator.is_async:
                    raise self.error(generator.target, "async comprehensions are not allowed")
                source = self.expr(generator.iter)
                names: set[str] = set()
                bind = self.target(generator.target, names)
                self.bound = self.bound | names
                bound_here |= names
                conditions = [self.expr(condition) for condition in generator.ifs]
                per_item = 1 + sum(_static_cost(c) for c in (generator.target, *generator.ifs))
                levels.append(
                    _Level(source, _static_cost(generator.iter), bind, conditions, per_item)
                )
            if isinstance(node, ast.DictComp):
                key, value = self.expr(node.key), self.expr(node.value)
                element_cost = _static_cost(node.key) + _static_cost(node.value)
            else:
                key, value = self.expr(node.elt), _none
                element_cost = _static_cost(node.elt)
        finally:
            self.bound = outer
        is_dict = isinstance(node, ast.DictComp)
        restored = frozenset(bound_here)
        return _comprehension(levels, key, value, element_cost, restored, dict_=is_dict)

    def target(self, node: ast.expr, names: set[str]) -> Callable[[Context, Any], None]:
        if isinstance(node, ast.Name):
            name = node.id
            self.check_identifier(node, name)
            if name in HELPERS:
                raise self.error(node, f"{name!r} is a function name; choose another variable name")
            names.add(name)

            def bind(ctx: Context, value: Any) -> None:
                ctx.locals[name] = value

            return bind
        if isinstance(node, ast.Tuple | ast.List):
            parts = [self.target(element, names) for element in node.elts]
            count = len(parts)

            def unpack(ctx: Context, value: Any) -> None:
                if type(value) not in SEQUENCES or len(value) != count:
                    raise Refused(f"cannot unpack {type_name(value)} into {count} names")
                for part, element in zip(parts, value, strict=True):
                    part(ctx, element)

            return unpack
        raise self.error(node, "a comprehension's 'for' binds names only, e.g. 'for k, v in …'")


def _none(ctx: Context) -> Any:
    return None


def _object_key(key: Any) -> str:
    if type(key) is not str:
        raise Refused(f"object keys must be strings, not {type_name(key)}")
    return str(key)


@dataclass(frozen=True, slots=True)
class _Level:
    """One 'for' clause: where its values come from, how they bind, which ones pass."""

    source: Evaluator
    source_cost: int
    bind: Callable[[Context, Any], None]
    conditions: list[Evaluator]
    per_item: int


def _comprehension(
    levels: list[_Level],
    key: Evaluator,
    value: Evaluator,
    element_cost: int,
    names: frozenset[str],
    *,
    dict_: bool,
) -> Evaluator:
    last = len(levels) - 1

    def loop(ctx: Context, depth: int, out: Any) -> None:
        level = levels[depth]
        ctx.charge(level.source_cost)
        values = iterate(ctx, level.source(ctx))
        per_item = level.per_item + (element_cost if depth == last else 0)
        for current in values:
            ctx.charge(per_item)
            level.bind(ctx, current)
            if not all(condition(ctx) for condition in level.conditions):
                continue
            if depth < last:
                loop(ctx, depth + 1, out)
            elif dict_:
                name = _object_key(key(ctx))
                if name not in out:
                    check_items(len(out) + 1)
                out[name] = value(ctx)
            else:
                check_items(len(out) + 1)
                out.append(key(ctx))

    def run(ctx: Context) -> Any:
        # Comprehension variables shadow for the comprehension only, as in Python 3.
        saved = {name: ctx.locals[name] for name in names if name in ctx.locals}
        out: Any = {} if dict_ else []
        try:
            loop(ctx, 0, out)
        finally:
            for name in names:
                if name in saved:
                    ctx.locals[name] = saved[name]
                else:
                    ctx.locals.pop(name, None)
        return out

    return run


_METHODS: dict[type[ast.AST], Callable[[_Compiler, Any], Evaluator]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.name,
    ast.Attribute: _Compiler.attribute,
    ast.Subscript: _Compiler.subscript,
    ast.BinOp: _Compiler.binary,
    ast.UnaryOp: _Compiler.unary,
    ast.BoolOp: _Compiler.boolean,
    ast.Compare: _Compiler.compare,
    ast.IfExp: _Compiler.conditional,
    ast.List: _Compiler.list_,
    ast.Tuple: _Compiler.list_,
    ast.Dict: _Compiler.dict_,
    ast.JoinedStr: _Compiler.fstring,
    ast.Call: _Compiler.call,
    ast.ListComp: _Compiler.comprehension,
    ast.GeneratorExp: _Compiler.comprehension,
    ast.DictComp: _Compiler.comprehension,
}
