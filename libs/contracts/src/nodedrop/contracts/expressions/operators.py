"""Operators, indexing and slicing over JSON values, each sized before it builds its result.

Every function dispatches on the operands' exact types and applies Python's operator only to
types it knows (numbers, strings, lists, objects); anything else is refused, so an operator never
reaches a foreign object's ``__add__`` or ``__getitem__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from nodedrop.contracts.expressions.limits import CHARS_PER_STEP, MAX_INT_BITS
from nodedrop.contracts.expressions.runtime import (
    NUMBERS,
    SCALARS,
    SEQUENCES,
    Context,
    Refused,
    charge_bigint,
    charge_text,
    check_items,
    check_text,
    missing_key,
    type_name,
    weigh,
    weigh_pair,
)

BinaryOperator = Callable[[Context, Any, Any], Any]
Number = int | float


def _numbers(left: object, right: object) -> bool:
    return type(left) in NUMBERS and type(right) in NUMBERS


def _real(result: object) -> Number:
    """JSON has no infinity, NaN or complex numbers: refuse them where they would appear."""
    kind = type(result)
    if kind is float:
        if not math.isfinite(cast(float, result)):
            raise Refused("number too large (not a finite number)")
        return cast(float, result)
    if kind is int or kind is bool:
        return cast(int, result)
    raise Refused("the result is not a real number")


def _integer_bits(ctx: Context, bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise Refused(f"integer too large (more than {MAX_INT_BITS:,} bits)")
    ctx.charge(int(bits) // CHARS_PER_STEP)  # big-int arithmetic is not O(1)


def _refused(symbol: str, left: object, right: object) -> Refused:
    return Refused(f"cannot use {symbol} with {type_name(left)} and {type_name(right)}")


def add(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        return _real(left + right)
    kind = type(left)
    if kind is str and type(right) is str:
        length = len(left) + len(right)
        check_text(length)
        charge_text(ctx, length)
        return left + right
    if kind in SEQUENCES and type(right) is kind:
        count = len(left) + len(right)
        check_items(count)
        ctx.charge(count)
        return left + right
    raise _refused("+", left, right)


def subtract(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        return _real(left - right)
    raise _refused("-", left, right)


def _repeat(ctx: Context, sequence: Any, times: Any) -> Any:
    count = len(sequence) * max(int(times), 0)
    if type(sequence) is str:
        check_text(count)
        charge_text(ctx, count)
    else:
        check_items(count)
        ctx.charge(count)
    return sequence * times


def multiply(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        if type(left) is not float and type(right) is not float:
            _integer_bits(ctx, int(left).bit_length() + int(right).bit_length())
        return _real(left * right)
    repeatable = (str, list, tuple)
    if type(left) in repeatable and type(right) in (int, bool):
        return _repeat(ctx, left, right)
    if type(right) in repeatable and type(left) in (int, bool):
        return _repeat(ctx, right, left)
    raise _refused("*", left, right)


def divide(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        return _real(left / right)
    raise _refused("/", left, right)


def _charge_division(ctx: Context, left: Any, right: Any) -> None:
    if type(left) is int and type(right) is int:
        charge_bigint(ctx, left.bit_length(), right.bit_length())


def floor_divide(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        _charge_division(ctx, left, right)
        return _real(left // right)
    raise _refused("//", left, right)


def modulo(ctx: Context, left: Any, right: Any) -> Any:
    if _numbers(left, right):
        _charge_division(ctx, left, right)
        return _real(left % right)
    if type(left) is str:
        # printf-style formatting would be a second, unbounded language ("%*d" % (10**9, 1)).
        raise Refused("'%' formatting of strings is not supported; use + or an f-string")
    raise _refused("%", left, right)


def power(ctx: Context, left: Any, right: Any) -> Any:
    if not _numbers(left, right):
        raise _refused("**", left, right)
    if type(left) is not float and type(right) is not float:
        base, exponent = int(left), int(right)
        if exponent > 0 and abs(base) > 1:
            # Sized from logarithms before anything is computed: 10 ** 10 ** 10 stops here.
            _integer_bits(ctx, exponent * math.log2(abs(base)))
        return _real(base**exponent)
    try:
        return _real(left**right)
    except OverflowError:
        raise Refused("number too large (not a finite number)") from None


def negate(ctx: Context, operand: Any) -> Any:
    if type(operand) in NUMBERS:
        return -operand
    raise Refused(f"cannot negate {type_name(operand)}")


def plus(ctx: Context, operand: Any) -> Any:
    if type(operand) in NUMBERS:
        return +operand
    raise Refused(f"cannot use unary + with {type_name(operand)}")


def logical_not(ctx: Context, operand: Any) -> Any:
    return not operand


# ---------------------------------------------------------------- comparisons


def equal(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left == right)


def not_equal(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left != right)


def less(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left < right)


def less_equal(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left <= right)


def greater(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left > right)


def greater_equal(ctx: Context, left: Any, right: Any) -> bool:
    weigh_pair(ctx, left, right)
    return bool(left >= right)


def contains(ctx: Context, needle: Any, haystack: Any) -> bool:
    kind = type(haystack)
    if kind is dict:
        # Keys are strings; an unhashable needle (a list) is simply not a key.
        if type(needle) is str or type(needle) in SCALARS:
            return needle in haystack
        return False
    if kind is str:
        if type(needle) is not str:
            raise Refused(f"'in' a string needs a string on the left, not {type_name(needle)}")
        charge_text(ctx, len(haystack))
        return needle in haystack
    if kind in SEQUENCES:
        weigh(ctx, needle)
        weigh(ctx, haystack)
        return needle in haystack
    raise Refused(f"'in' needs a list, string or object on the right, not {type_name(haystack)}")


def not_contains(ctx: Context, needle: Any, haystack: Any) -> bool:
    return not contains(ctx, needle, haystack)


def is_(ctx: Context, left: Any, right: Any) -> bool:
    return left is right  # the compiler allows only `is None`, `is True`, `is False`


def is_not(ctx: Context, left: Any, right: Any) -> bool:
    return left is not right


# ---------------------------------------------------------------- indexing


def get_key(obj: Any, key: str) -> Any:
    """``obj.key``: the sugar for ``obj["key"]`` on objects; never a Python attribute."""
    if type(obj) is dict:
        try:
            return obj[key]
        except KeyError:
            missing_key(obj, key)
    raise Refused(f"'.{key}' reads a key of an object, but the value is {type_name(obj)}")


def get_item(ctx: Context, obj: Any, key: Any) -> Any:
    kind = type(obj)
    if kind is dict:
        if type(key) is not str and type(key) not in SCALARS:
            raise Refused(f"{type_name(key)} cannot be an object key")
        try:
            return obj[key]
        except KeyError:
            missing_key(obj, key)
    if kind in SEQUENCES or kind is str:
        if type(key) is not int and type(key) is not bool:
            raise Refused(f"indexes must be integers, not {type_name(key)}")
        try:
            return obj[key]
        except IndexError:
            raise Refused(f"index {key} is out of range (length {len(obj)})") from None
    raise Refused(f"cannot index {type_name(obj)}")


def get_slice(ctx: Context, obj: Any, lower: Any, upper: Any, step: Any) -> Any:
    kind = type(obj)
    if kind not in SEQUENCES and kind is not str:
        raise Refused(f"cannot slice {type_name(obj)}")
    for bound in (lower, upper, step):
        if bound is not None and type(bound) is not int and type(bound) is not bool:
            raise Refused(f"slice bounds must be integers, not {type_name(bound)}")
    part = slice(lower, upper, step)
    count = len(range(*part.indices(len(obj))))  # "slice step cannot be zero" is raised here
    if kind is str:
        charge_text(ctx, count)
    else:
        ctx.charge(count)
    return obj[part]
