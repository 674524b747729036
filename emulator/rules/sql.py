"""AWS IoT SQL, version 2016-03-23, as the emulator's rules engine runs it.

:meth:`Rule.parse` compiles ``SELECT <items> FROM '<topic filter>' [WHERE <condition>]`` once (keywords and
function names are case-insensitive, field names are not); :meth:`Rule.evaluate` runs it on one message.
Faithful to the AWS IoT Developer Guide (iot-sql-reference, iot-sql-operators, iot-sql-functions,
iot-sql-data-types, binary-payloads) for the subset below:

- items: ``*``, field paths (``a.b[0]``), literals (strings in single or double quotes, numbers, ``true``,
  ``false``, ``null``), function calls, operators, ``expr AS alias``, and ``*`` beside aliased items; an item
  without ``AS`` is named after its last field or its function, else ``_<position>``;
- operators: ``OR``, ``AND``, ``NOT``, ``= <> != < <= > >=``, ``IS [NOT] NULL``, ``+ - * / %``, parentheses;
- functions (:data:`emulator.rules.functions.FUNCTIONS`): ``topic([n])``, ``timestamp()``, ``clientid()``,
  ``principal()``, ``newuuid()``, ``traceid()``, ``parse_time(pattern, ms[, zone])``, ``lower``, ``upper``,
  ``concat``, ``abs``, ``encode(value or *, 'base64')``, ``decode(value, 'base64')``.

A missing field is Undefined; comparisons with Undefined are Undefined and the rule fires only when WHERE is
true, so a condition on a missing field does not fire. AND/OR are three-valued (false AND Undefined is false,
true OR Undefined is true). ``IS NULL`` is true for Null and for Undefined (an emulator extension standing in
for AWS's ``isNull()``/``isUndefined()``). A payload that is not a JSON object is raw bytes: its fields are
Undefined and ``SELECT *`` forwards it unchanged.

Expressions (tokens, parser, compiled form) live in :mod:`emulator.rules.expressions`, values and operators in
:mod:`emulator.rules.values`, :class:`MessageContext` and the functions in :mod:`emulator.rules.functions`, MQTT
topic filters in :mod:`emulator.rules.topic_filters`; the names callers use are importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from base.errors import JitrError
from emulator.rules.expressions import (
    KEYWORDS,
    Expression,
    ExpressionParser,
    InvalidRuleSqlError,
    parse_expression,
    unquote,
)
from emulator.rules.functions import MessageContext
from emulator.rules.topic_filters import is_valid_topic_filter, topic_matches
from emulator.rules.values import UNDEFINED, to_bool, to_json

__all__ = [
    "SQL_VERSION",
    "UNDEFINED",
    "Expression",
    "InvalidRuleSqlError",
    "MessageContext",
    "Result",
    "Rule",
    "RuleEvaluationError",
    "SelectItem",
    "parse_expression",
    "topic_matches",
]

SQL_VERSION = "2016-03-23"


class RuleEvaluationError(JitrError):
    """A rule matched a message but cannot build its outgoing payload (AWS reports this to the errorAction)."""


class _StatementParser(ExpressionParser):
    """The expression parser, plus the statement around the expressions."""

    def statement(self) -> Rule:
        self.expect("SELECT")
        items = [self.select_item(1)]
        while self.at_op(","):
            self.advance()
            items.append(self.select_item(len(items) + 1))
        self.expect("FROM")
        topic_filter, where = self.topic_filter(), None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.expression()
        if self.tok.kind != "eof":
            self.fail(f"unexpected {self.found()} after the {'WHERE condition' if where else 'topic filter'}")
        return Rule(self.text, topic_filter, tuple(items), where)

    def select_item(self, position: int) -> SelectItem:
        expression = self.expression()
        if not self.at_keyword("AS"):
            return SelectItem(expression, None if expression.is_star else expression.name or f"_{position}")
        self.advance()
        if self.tok.kind == "str":
            return SelectItem(expression, unquote(self.advance().text))
        if self.tok.kind != "name" or self.tok.text.upper() in KEYWORDS:
            self.fail(f"expected a name after AS but found {self.found()}")
        return SelectItem(expression, self.advance().text)

    def topic_filter(self) -> str:
        if self.tok.kind != "str":
            self.fail(f"expected a topic filter in quotes after FROM but found {self.found()}")
        start, value = self.tok.start, unquote(self.advance().text)
        if not is_valid_topic_filter(value):
            self.fail(f"{value!r} is not a valid MQTT topic filter ('+' and '#' must fill a level, '#' last)", start)
        return value


# --- rules ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectItem:
    """One item of the SELECT list: its expression and output key (None for a bare ``*``)."""

    expression: Expression
    key: str | None


@dataclass(frozen=True)
class Result:
    """What a rule passes to its actions: the payload, and the selected object (None for raw bytes)."""

    payload: bytes
    values: dict[str, Any] | None


@dataclass(frozen=True)
class Rule:
    """A parsed topic rule statement."""

    sql: str
    topic_filter: str
    select: tuple[SelectItem, ...]
    where: Expression | None

    @classmethod
    def parse(cls, sql: str) -> Rule:
        """Compile ``sql``; raise :class:`InvalidRuleSqlError` naming the problem and its position."""
        return _StatementParser(sql).statement()

    def matches_topic(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, ctx: MessageContext) -> Result | None:
        """The outgoing payload, or None when the topic does not match or WHERE is not true.

        Raise :class:`RuleEvaluationError` when the selection cannot be serialized, such as ``*`` beside other
        items on a non-JSON payload (AWS forbids it for binary payloads; an empty payload counts as ``{}``).
        """
        if not self.matches_topic(ctx.topic):
            return None
        if self.where is not None and to_bool(self.where.evaluate(ctx)) is not True:
            return None
        values: dict[str, Any] = {}
        for item in self.select:
            if item.key is None and ctx.message is not None:
                values.update(ctx.message)
            elif item.key is None and len(self.select) == 1:
                return Result(ctx.payload, None)  # binary pass-through
            elif item.key is None and ctx.payload.strip():
                raise RuleEvaluationError(
                    f"Rule on {self.topic_filter!r} selects * with other items, which needs a JSON object payload."
                )
            elif item.key is not None and (value := item.expression.evaluate(ctx)) is not UNDEFINED:
                values[item.key] = value
        try:
            return Result(to_json(values).encode(), values)
        except (TypeError, ValueError) as exc:
            raise RuleEvaluationError(
                f"Rule on {self.topic_filter!r} selected a value JSON cannot hold: {exc}."
            ) from None
