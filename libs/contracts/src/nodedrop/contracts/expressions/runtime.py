"""Evaluation state (the step budget), size checks and text rendering shared by the evaluator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from nodedrop.contracts.expressions.errors import shorten
from nodedrop.contracts.expressions.limits import (
    CHARS_PER_STEP,
    MAX_ATTEMPT_STEPS,
    MAX_ITEMS,
    MAX_STEPS,
    MAX_STRING_LENGTH,
)

NoneType = type(None)
#: Values whose comparison or copy costs O(1): no budget walk needed.
SCALARS: frozenset[type] = frozenset({int, float, bool, NoneType})
NUMBERS: frozenset[type] = frozenset({int, float, bool})
SEQUENCES: frozenset[type] = frozenset({list, tuple})


class Refused(Exception):  # noqa: N818 - internal signal, surfaced as ExpressionError
    """Evaluation stopped for a reason the user should read; the caller adds the expression."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OverBudget(Refused):
    """The :class:`Budget` shared by several renders (a node attempt's) is used up."""


class Budget:
    """Work units shared by many :func:`render` calls: one node attempt's, over all its items.

    Each render may still use at most :data:`MAX_STEPS` of it; when the budget has less left,
    the render gets what is left, and running out stops it with :class:`BudgetExceeded`. Not
    thread-safe: one attempt renders one item at a time.
    """

    __slots__ = ("left", "steps")

    def __init__(self, steps: int = MAX_ATTEMPT_STEPS) -> None:
        self.steps = steps
        self.left = steps

    @property
    def spent(self) -> int:
        return self.steps - self.left


class Context:
    """One :func:`render` call: the scope, comprehension variables and the remaining budget.

    Compiled expressions are shared (cached) and stateless; everything that changes while
    evaluating lives here, so concurrent renders never see each other. With a shared
    ``budget``, the render's steps come out of it too (:meth:`settle` when done).
    """

    __slots__ = ("budget", "by_budget", "granted", "locals", "scope", "steps_left")

    def __init__(
        self, scope: Mapping[str, Any], steps: int = MAX_STEPS, budget: Budget | None = None
    ) -> None:
        self.scope = scope
        self.locals: dict[str, Any] = {}
        self.budget = budget
        #: The shared budget has less left than this render may use: running out is its end.
        self.by_budget = budget is not None and budget.left < steps
        if budget is not None and self.by_budget:
            steps = max(budget.left, 0)
        self.granted = steps
        self.steps_left = steps

    def charge(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise self._exhausted()

    def _exhausted(self) -> Refused:
        if self.budget is not None and self.by_budget:
            return OverBudget(
                f"too much work for one node attempt (more than {self.budget.steps:,} steps "
                "over all its items)"
            )
        return Refused(f"too much work (more than {self.granted:,} steps)")

    def settle(self) -> None:
        """Take what this render used out of the shared budget."""
        if self.budget is not None:
            used = self.granted - self.steps_left
            self.budget.left = max(self.budget.left - used, 0)


def type_name(value: Any) -> str:
    """JSON's vocabulary, which is what workflow authors think in."""
    kind = type(value)
    if kind is str:
        return "a string"
    if kind is bool:
        return "a boolean"
    if kind is int or kind is float:
        return "a number"
    if value is None:
        return "null"
    if kind is dict:
        return "an object"
    if kind in SEQUENCES:
        return "a list"
    return f"a value of type {kind.__name__}"


def check_text(length: int) -> None:
    """Called with a result's length BEFORE the string is built."""
    if length > MAX_STRING_LENGTH:
        raise Refused(f"string too long ({length:,} characters; at most {MAX_STRING_LENGTH:,})")


def check_items(count: int) -> None:
    """Called with a result's length BEFORE the list or object is built."""
    if count > MAX_ITEMS:
        raise Refused(f"list too long ({count:,} elements; at most {MAX_ITEMS:,})")


def charge_text(ctx: Context, length: int) -> None:
    ctx.charge(length // CHARS_PER_STEP + 1)


def charge_bigint(ctx: Context, left_bits: int, right_bits: int) -> None:
    """Multiplying, dividing or printing big integers costs about the product of their sizes
    (a 14,000-bit int prints in ~200 µs); free for everyday numbers."""
    ctx.charge((left_bits * right_bits >> 18) + (left_bits + right_bits) // CHARS_PER_STEP)


def missing_key(obj: dict[Any, Any], key: object) -> NoReturn:
    # A few keys help fix a typo; all of them could be megabytes of someone's data.
    keys = [k for _, k in zip(range(10), obj, strict=False)]
    shown = ", ".join(shorten(str(k), 40) for k in keys)
    more = ", …" if len(obj) > len(keys) else ""
    available = f" (keys: {shown}{more})" if keys else " (the object is empty)"
    raise Refused(f"no key {shorten(repr(key), 80)}{available}")


def weigh(ctx: Context, value: Any) -> int:
    """Charge the budget for work proportional to ``value``'s full size; return its rough size
    in JSON characters.

    Deep operations (``==`` on lists, ``in`` a list, sorting, JSON) cost as much as the data is
    big. The walk charges before descending, so a huge input is refused after at most the
    remaining budget of work, never walked in full; it is iterative, so deep data cannot
    overflow the stack here.
    """
    kind = type(value)
    if kind in SCALARS:
        return 8
    if kind is str:
        length = len(value)
        charge_text(ctx, length)
        return length + 2
    size = 0
    stack: list[Any] = [value]
    while stack:
        current = stack.pop()
        kind = type(current)
        if kind is dict:
            ctx.charge(len(current) + 1)  # before copying its children onto the stack
            size += 2 + 2 * len(current)
            stack.extend(current.keys())
            stack.extend(current.values())
        elif kind in SEQUENCES:
            ctx.charge(len(current) + 1)
            size += 2 + len(current)
            stack.extend(current)
        elif kind is str:
            ctx.charge(len(current) // CHARS_PER_STEP)
            size += len(current) + 2
        else:
            size += 8
    return size


def weigh_pair(ctx: Context, left: Any, right: Any) -> None:
    """Budget for a comparison: free for numbers, by length for strings, deep for containers."""
    if type(left) in SCALARS and type(right) in SCALARS:
        return
    weigh(ctx, left)
    weigh(ctx, right)


def to_json(ctx: Context, value: Any) -> str:
    """Compact JSON (no spaces), non-ASCII kept as is; sized before it is built."""
    check_text(weigh(ctx, value))
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    check_text(len(text))  # escapes can make the result longer than the estimate
    return text


def to_text(ctx: Context, value: Any) -> str:
    """How a value reads inside a string: strings as they are, everything else as JSON
    (``true``, ``false``, ``null``, ``1.5``, ``{"a":1}``)."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is int:
        bits = value.bit_length()
        charge_bigint(ctx, bits, bits)  # int -> str is quadratic in the digits
        return str(value)
    return to_json(ctx, value)
