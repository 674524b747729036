"""The values AWS IoT SQL (version 2016-03-23) computes with: ``Undefined``, the conversions, the operators.

Faithful to the AWS IoT Developer Guide (iot-sql-data-types, iot-sql-operators): a missing field or a failed
conversion is Undefined, which JSON output leaves out; comparisons with Undefined are Undefined; mismatched
types are never equal; arithmetic converts numeric strings such as ``"5"``, and ``+`` concatenates when either
side is a String. :mod:`emulator.rules.sql` builds expressions from these; :mod:`emulator.rules.functions` uses
the conversions.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from typing import Any


class _Undefined:
    """SQL ``Undefined``: not a value (a missing field, a failed conversion); JSON output leaves it out."""

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()

_DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_number(value: Any) -> Any:
    if _is_number(value):
        return value
    if isinstance(value, str) and _DECIMAL_RE.match(value):
        return int(value) if value.lstrip("-").isdigit() else float(value)
    return UNDEFINED


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_string(value: Any) -> Any:
    """The standard conversion to String: Null and Undefined give Undefined, arrays and objects give JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # SQL 2016-03-23 turns whole decimals into Ints
    if _is_number(value):
        return repr(value)
    if isinstance(value, list | dict):
        return to_json(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return UNDEFINED


def to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return UNDEFINED


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is not type(b):
        return False  # mismatched types are never equal
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _equal(a: Any, b: Any) -> Any:
    return UNDEFINED if a is UNDEFINED or b is UNDEFINED else _same(a, b)


def _not_equal(a: Any, b: Any) -> Any:
    return UNDEFINED if a is UNDEFINED or b is UNDEFINED else not _same(a, b)


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """An operator on two operands converted to numbers (strings such as "5" convert); else Undefined."""

    def apply(a: Any, b: Any) -> Any:
        x, y = to_number(a), to_number(b)
        if x is UNDEFINED or y is UNDEFINED:
            return UNDEFINED
        try:
            return op(x, y)
        except (ZeroDivisionError, OverflowError, ValueError):
            return UNDEFINED

    return apply


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):  # + concatenates when either side is a String
        x, y = to_string(a), to_string(b)
        return UNDEFINED if x is UNDEFINED or y is UNDEFINED else x + y
    return _numeric(operator.add)(a, b) if _is_number(a) and _is_number(b) else UNDEFINED


def _divide(x: Any, y: Any) -> Any:
    if isinstance(x, int) and isinstance(y, int):  # Int / Int is an Int, truncated toward zero like Java
        quotient = abs(x) // abs(y)
        return quotient if (x >= 0) == (y >= 0) else -quotient
    return x / y


def _remainder(x: Any, y: Any) -> Any:
    if isinstance(x, int) and isinstance(y, int):
        rest = abs(x) % abs(y)  # raises ZeroDivisionError for y == 0, which gives Undefined
        return rest if x >= 0 else -rest
    return math.fmod(x, y)


COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": _equal,
    "<>": _not_equal,
    "!=": _not_equal,
    "<": _numeric(operator.lt),
    "<=": _numeric(operator.le),
    ">": _numeric(operator.gt),
    ">=": _numeric(operator.ge),
}
ADDITIVE = {"+": _add, "-": _numeric(operator.sub)}
MULTIPLICATIVE = {"*": _numeric(operator.mul), "/": _numeric(_divide), "%": _numeric(_remainder)}
