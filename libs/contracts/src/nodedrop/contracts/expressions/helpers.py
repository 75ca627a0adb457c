"""The functions and methods an expression may call, each written out here.

Nothing is looked up on the user's objects: ``"a".upper()`` runs :func:`_upper` because the
value is exactly a ``str`` and ``upper`` is in :data:`METHODS`'s table for ``str``. Every helper
checks its argument types itself, sizes its result before building it, and charges the budget
for work proportional to its input. Helpers take the evaluation :class:`Context` first; the
compiler checks the other arguments against the signatures below when the expression is saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, cast

from nodedrop.contracts.expressions.limits import MAX_ITEMS, MAX_ROUND_DIGITS
from nodedrop.contracts.expressions.runtime import (
    NUMBERS,
    SEQUENCES,
    Context,
    Refused,
    charge_text,
    check_items,
    check_text,
    to_json,
    to_text,
    type_name,
    weigh,
)

Helper = Callable[..., Any]
# Python refuses to parse longer integers anyway (sys.int_info.default_max_str_digits is 4300).
_MAX_INT_DIGITS = 4300


def _sequence(ctx: Context, value: Any, caller: str) -> list[Any] | tuple[Any, ...] | str:
    """What ``for x in value`` and the list helpers iterate: lists, strings, object keys."""
    kind = type(value)
    if kind is list or kind is tuple or kind is str:
        return cast("list[Any] | tuple[Any, ...] | str", value)
    if kind is dict:
        ctx.charge(len(value))  # before copying the keys
        return list(cast("dict[str, Any]", value))
    raise Refused(f"{caller} needs a list, string or object, not {type_name(value)}")


def iterate(ctx: Context, value: Any) -> list[Any] | tuple[Any, ...] | str:
    """What a comprehension's ``for`` iterates."""
    return _sequence(ctx, value, "'for … in'")


def _finite(value: float, caller: str) -> float:
    if not math.isfinite(value):
        raise Refused(f"{caller}: not a finite number")
    return value


def _number(value: Any, caller: str) -> int | float:
    if type(value) in NUMBERS:
        return cast(int | float, value)
    raise Refused(f"{caller} needs a number, not {type_name(value)}")


def _integer(value: Any, caller: str) -> int:
    if type(value) is int or type(value) is bool:
        return int(value)
    raise Refused(f"{caller} needs an integer, not {type_name(value)}")


def _string(value: Any, caller: str) -> str:
    if type(value) is str:
        return value
    raise Refused(f"{caller} needs a string, not {type_name(value)}")


# ---------------------------------------------------------------- functions


def _len(ctx: Context, value: Any, /) -> int:
    if type(value) in (str, list, tuple, dict):
        return len(value)
    raise Refused(f"len() needs a string, list or object, not {type_name(value)}")


def _str(ctx: Context, value: Any = "", /) -> str:
    return to_text(ctx, value)


def _int(ctx: Context, value: Any = 0, /) -> int:
    kind = type(value)
    if kind is int or kind is bool:
        return int(value)
    if kind is float:
        return int(_finite(value, "int()"))
    if kind is str:
        text = value.strip()
        if len(text) > _MAX_INT_DIGITS:
            raise Refused(f"int(): more than {_MAX_INT_DIGITS} digits")
        ctx.charge(len(text) * len(text) >> 16)  # parsing digits is quadratic too
        try:
            return int(text)
        except ValueError:
            raise Refused(f"int(): not an integer: {text[:40]!r}") from None
    raise Refused(f"int() needs a number or string, not {type_name(value)}")


def _float(ctx: Context, value: Any = 0.0, /) -> float:
    kind = type(value)
    if kind in NUMBERS:
        return _finite(float(value), "float()")
    if kind is str:
        text = value.strip()
        if len(text) > _MAX_INT_DIGITS:
            raise Refused(f"float(): more than {_MAX_INT_DIGITS} characters")
        try:
            return _finite(float(text), "float()")
        except ValueError:
            raise Refused(f"float(): not a number: {text[:40]!r}") from None
    raise Refused(f"float() needs a number or string, not {type_name(value)}")


def _bool(ctx: Context, value: Any = False, /) -> bool:
    return bool(value)  # our values' truthiness is O(1) and runs no user code


def _round(ctx: Context, number: Any, ndigits: Any = None, /) -> int | float:
    value = _number(number, "round()")
    if ndigits is None:
        return round(_finite(value, "round()") if type(value) is float else value)
    digits = _integer(ndigits, "round()'s ndigits")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise Refused(
            f"round(): ndigits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
        )
    return round(value, digits)


def _abs(ctx: Context, number: Any, /) -> int | float:
    return abs(_number(number, "abs()"))


def _extreme(ctx: Context, name: str, values: tuple[Any, ...]) -> Any:
    sequence = _sequence(ctx, values[0], f"{name}()") if len(values) == 1 else values
    if not sequence:
        raise Refused(f"{name}() of an empty list")
    weigh(ctx, sequence)
    return min(sequence) if name == "min" else max(sequence)


def _min(ctx: Context, first: Any, /, *more: Any) -> Any:
    return _extreme(ctx, "min", (first, *more))


def _max(ctx: Context, first: Any, /, *more: Any) -> Any:
    return _extreme(ctx, "max", (first, *more))


def _sum(ctx: Context, values: Any, start: Any = 0, /) -> int | float:
    total = _number(start, "sum()'s start")
    sequence = _sequence(ctx, values, "sum()")
    ctx.charge(len(sequence))
    for value in sequence:
        # Numbers only: sum() over lists or strings is quadratic and builds unbounded results.
        total += _number(value, "sum() of a list")
    return _finite(total, "sum()") if type(total) is float else total


def _sorted(ctx: Context, values: Any, /, *, reverse: Any = False) -> list[Any]:
    sequence = _sequence(ctx, values, "sorted()")
    weigh(ctx, sequence)  # the elements' size, then about n log n comparisons
    ctx.charge(len(sequence) * len(sequence).bit_length() // 8)
    if type(reverse) is not bool:
        raise Refused("sorted()'s reverse must be true or false")
    return sorted(sequence, reverse=reverse)


def _reversed(ctx: Context, values: Any, /) -> list[Any] | str:
    if type(values) is str:
        charge_text(ctx, len(values))
        return values[::-1]
    sequence = _sequence(ctx, values, "reversed()")
    ctx.charge(len(sequence))
    return list(reversed(sequence))


def _any(ctx: Context, values: Any, /) -> bool:
    sequence = _sequence(ctx, values, "any()")
    ctx.charge(len(sequence))
    return any(sequence)


def _all(ctx: Context, values: Any, /) -> bool:
    sequence = _sequence(ctx, values, "all()")
    ctx.charge(len(sequence))
    return all(sequence)


def _range(ctx: Context, *bounds: Any) -> list[int]:
    if not 1 <= len(bounds) <= 3:
        raise Refused("range() takes 1 to 3 integers")
    numbers = [_integer(bound, "range()") for bound in bounds]
    span = range(*numbers)  # lazy: sized before anything is allocated
    try:
        count = len(span)
    except OverflowError:  # longer than sys.maxsize
        count = MAX_ITEMS + 1
    check_items(count)
    ctx.charge(count)
    return list(span)


def _list(ctx: Context, values: Any = (), /) -> list[Any]:
    sequence = _sequence(ctx, values, "list()")
    ctx.charge(len(sequence))
    return list(sequence)


def _enumerate(ctx: Context, values: Any, start: Any = 0, /) -> list[list[Any]]:
    sequence = _sequence(ctx, values, "enumerate()")
    first = _integer(start, "enumerate()'s start")
    ctx.charge(len(sequence))
    return [[first + index, value] for index, value in enumerate(sequence)]


def _zip(ctx: Context, *lists: Any) -> list[list[Any]]:
    sequences = [_sequence(ctx, values, "zip()") for values in lists]
    count = min((len(s) for s in sequences), default=0)
    ctx.charge(count * max(1, len(sequences)))
    return [list(row) for row in zip(*sequences, strict=False)]


def _to_json(ctx: Context, value: Any, /) -> str:
    return to_json(ctx, value)


def _refuse_constant(name: str) -> object:
    raise Refused(f"from_json(): {name} is not JSON")


def _from_json(ctx: Context, text: Any, /) -> Any:
    source = _string(text, "from_json()")
    check_text(len(source))
    # The parsed result can hold about one element per two characters; charging a step per
    # four characters keeps what one render can build near the item limit.
    ctx.charge(len(source) // 4 + 1)
    try:
        return json.loads(source, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise Refused(f"from_json(): {error}") from None


# ---------------------------------------------------------------- str methods


def _lower(ctx: Context, self: str, /) -> str:
    charge_text(ctx, len(self))
    return self.lower()


def _upper(ctx: Context, self: str, /) -> str:
    charge_text(ctx, len(self))
    result = self.upper()  # at most 3x longer ("ß" -> "SS"): small enough to check after
    check_text(len(result))
    return result


def _title(ctx: Context, self: str, /) -> str:
    charge_text(ctx, 4 * len(self))  # measured about 4x slower per character than lower()
    result = self.title()
    check_text(len(result))
    return result


def _capitalize(ctx: Context, self: str, /) -> str:
    charge_text(ctx, 4 * len(self))  # measured about 4x slower per character than lower()
    result = self.capitalize()
    check_text(len(result))
    return result


def _chars(value: Any, caller: str) -> str | None:
    return None if value is None else _string(value, caller)


def _strip_chars(ctx: Context, self: str, chars: Any, caller: str) -> str | None:
    characters = _chars(chars, caller)
    # Each character of self is looked up among `chars`: the work is the product of the lengths.
    charge_text(ctx, len(self) * max(1, len(characters or "")))
    return characters


def _strip(ctx: Context, self: str, chars: Any = None, /) -> str:
    return self.strip(_strip_chars(ctx, self, chars, "strip()"))


def _lstrip(ctx: Context, self: str, chars: Any = None, /) -> str:
    return self.lstrip(_strip_chars(ctx, self, chars, "lstrip()"))


def _rstrip(ctx: Context, self: str, chars: Any = None, /) -> str:
    return self.rstrip(_strip_chars(ctx, self, chars, "rstrip()"))


def _affixes(ctx: Context, value: Any, caller: str) -> str | tuple[str, ...]:
    if type(value) in SEQUENCES:
        weigh(ctx, value)
        return tuple(_string(v, caller) for v in value)
    return _string(value, caller)


def _startswith(ctx: Context, self: str, prefix: Any, /) -> bool:
    return self.startswith(_affixes(ctx, prefix, "startswith()"))


def _endswith(ctx: Context, self: str, suffix: Any, /) -> bool:
    return self.endswith(_affixes(ctx, suffix, "endswith()"))


def _split(ctx: Context, self: str, sep: Any = None, maxsplit: Any = -1, /) -> list[str]:
    separator = _chars(sep, "split()")
    limit = _integer(maxsplit, "split()'s maxsplit")
    if separator == "":
        raise Refused("split(): empty separator")
    charge_text(ctx, len(self))
    # Never build more than MAX_ITEMS + 1 parts: a longer result is refused, not allocated.
    bound = MAX_ITEMS if limit < 0 else min(limit, MAX_ITEMS)
    parts = self.split(separator, bound)
    if len(parts) > MAX_ITEMS and (limit < 0 or limit > MAX_ITEMS):
        check_items(MAX_ITEMS + 1)
    ctx.charge(len(parts))
    return parts


def _join(ctx: Context, self: str, values: Any, /) -> str:
    parts = _sequence(ctx, values, "join()")
    ctx.charge(len(parts))
    length = len(self) * max(0, len(parts) - 1)
    for part in parts:
        length += len(_string(part, "join() of a list"))
    check_text(length)
    charge_text(ctx, length)
    return self.join(parts)


def _replace(ctx: Context, self: str, old: Any, new: Any, count: Any = -1, /) -> str:
    before = _string(old, "replace()")
    after = _string(new, "replace()")
    limit = _integer(count, "replace()'s count")
    charge_text(ctx, len(self))
    found = self.count(before)
    if limit >= 0:
        found = min(found, limit)
    length = len(self) + found * (len(after) - len(before))
    check_text(length)
    charge_text(ctx, length)
    return self.replace(before, after, limit)


def _find(ctx: Context, self: str, sub: Any, /) -> int:
    charge_text(ctx, len(self))
    return self.find(_string(sub, "find()"))


def _str_count(ctx: Context, self: str, sub: Any, /) -> int:
    charge_text(ctx, len(self))
    return self.count(_string(sub, "count()"))


def _isdigit(ctx: Context, self: str, /) -> bool:
    charge_text(ctx, len(self))
    return self.isdigit()


# ---------------------------------------------------------------- dict methods


def _get(ctx: Context, self: dict[str, Any], key: Any, default: Any = None, /) -> Any:
    if type(key) is not str:
        return default  # JSON objects have string keys only; lists are not even hashable
    return self.get(key, default)


def _keys(ctx: Context, self: dict[str, Any], /) -> list[str]:
    ctx.charge(len(self))
    return list(self)


def _values(ctx: Context, self: dict[str, Any], /) -> list[Any]:
    ctx.charge(len(self))
    return list(self.values())


def _items(ctx: Context, self: dict[str, Any], /) -> list[list[Any]]:
    # Lists, not tuples: results stay JSON, and `for k, v in x.items()` unpacks them all the same.
    ctx.charge(len(self))
    return [[key, value] for key, value in self.items()]


# ---------------------------------------------------------------- list methods


def _list_count(ctx: Context, self: list[Any], value: Any, /) -> int:
    weigh(ctx, self)
    return self.count(value)


def _index(ctx: Context, self: list[Any], value: Any, /) -> int:
    weigh(ctx, self)
    try:
        return self.index(value)
    except ValueError:
        raise Refused("index(): the value is not in the list") from None


HELPERS: dict[str, Helper] = {
    "len": _len,
    "str": _str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "round": _round,
    "abs": _abs,
    "min": _min,
    "max": _max,
    "sum": _sum,
    "sorted": _sorted,
    "reversed": _reversed,
    "any": _any,
    "all": _all,
    "range": _range,
    "list": _list,
    "enumerate": _enumerate,
    "zip": _zip,
    "to_json": _to_json,
    "from_json": _from_json,
}

_STR_METHODS: dict[str, Helper] = {
    "lower": _lower,
    "upper": _upper,
    "title": _title,
    "capitalize": _capitalize,
    "strip": _strip,
    "lstrip": _lstrip,
    "rstrip": _rstrip,
    "startswith": _startswith,
    "endswith": _endswith,
    "split": _split,
    "join": _join,
    "replace": _replace,
    "find": _find,
    "count": _str_count,
    "isdigit": _isdigit,
}
_DICT_METHODS: dict[str, Helper] = {
    "get": _get,
    "keys": _keys,
    "values": _values,
    "items": _items,
}
_LIST_METHODS: dict[str, Helper] = {
    "count": _list_count,
    "index": _index,
}

#: Methods by the value's exact type (no subclasses: their overrides would be someone's code).
METHODS: dict[type, dict[str, Helper]] = {
    str: _STR_METHODS,
    dict: _DICT_METHODS,
    list: _LIST_METHODS,
    tuple: _LIST_METHODS,
}
#: Every method name, whatever the type: what the compiler accepts in ``x.name(...)``.
METHOD_NAMES: dict[str, tuple[Helper, ...]] = {}
for _table in (_STR_METHODS, _DICT_METHODS, _LIST_METHODS):
    for _name, _method in _table.items():
        METHOD_NAMES[_name] = (*METHOD_NAMES.get(_name, ()), _method)
