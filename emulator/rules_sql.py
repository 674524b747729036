"""AWS IoT SQL, version 2016-03-23, as the emulator's rules engine runs it.

:meth:`Rule.parse` compiles ``SELECT <items> FROM '<topic filter>' [WHERE <condition>]`` once (keywords and
function names are case-insensitive, field names are not); :meth:`Rule.evaluate` runs it on one message.
Faithful to the AWS IoT Developer Guide (iot-sql-reference, iot-sql-operators, iot-sql-functions,
iot-sql-data-types, binary-payloads) for the subset below:

- items: ``*``, field paths (``a.b[0]``), literals (strings in single or double quotes, numbers, ``true``,
  ``false``, ``null``), function calls, operators, ``expr AS alias``, and ``*`` beside aliased items; an item
  without ``AS`` is named after its last field or its function, else ``_<position>``;
- operators: ``OR``, ``AND``, ``NOT``, ``= <> != < <= > >=``, ``IS [NOT] NULL``, ``+ - * / %``, parentheses;
- functions (:data:`emulator.sql_functions.FUNCTIONS`): ``topic([n])``, ``timestamp()``, ``clientid()``,
  ``principal()``, ``newuuid()``, ``traceid()``, ``parse_time(pattern, ms[, zone])``, ``lower``, ``upper``,
  ``concat``, ``abs``, ``encode(value or *, 'base64')``, ``decode(value, 'base64')``.

A missing field is Undefined; comparisons with Undefined are Undefined and the rule fires only when WHERE is
true, so a condition on a missing field does not fire. AND/OR are three-valued (false AND Undefined is false,
true OR Undefined is true). ``IS NULL`` is true for Null and for Undefined (an emulator extension standing in
for AWS's ``isNull()``/``isUndefined()``). A payload that is not a JSON object is raw bytes: its fields are
Undefined and ``SELECT *`` forwards it unchanged.

Values and operators live in :mod:`emulator.sql_values`, :class:`MessageContext` and the functions in
:mod:`emulator.sql_functions`, MQTT topic filters in :mod:`emulator.topic_filters`; the names callers use are
importable from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ca.errors import InvalidInputError, JitrError
from emulator.sql_functions import FUNCTIONS, MessageContext
from emulator.sql_values import ADDITIVE, COMPARISONS, MULTIPLICATIVE, UNDEFINED, to_bool, to_json
from emulator.sql_values import to_string as to_string  # re-exported for emulator.substitution
from emulator.topic_filters import is_valid_topic_filter, topic_matches

SQL_VERSION = "2016-03-23"


class InvalidRuleSqlError(InvalidInputError):
    """A rule's SQL statement, or an expression in a substitution template, cannot be parsed."""

    def __init__(self, problem: str, position: int, what: str = "rule SQL") -> None:
        self.problem, self.position = problem, position
        super().__init__(f"Invalid {what} at character {position + 1}: {problem}.")


class RuleEvaluationError(JitrError):
    """A rule matched a message but cannot build its outgoing payload (AWS reports this to the errorAction)."""


# --- expressions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A compiled expression: :meth:`evaluate` gives its value for one message (``UNDEFINED`` if none)."""

    fn: Callable[[MessageContext], Any]
    name: str | None = None  # the output key when selected without AS
    is_star: bool = False

    def evaluate(self, ctx: MessageContext) -> Any:
        return self.fn(ctx)


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, UNDEFINED)
    if isinstance(container, list) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if 0 <= key < len(container) else UNDEFINED
    return UNDEFINED


def _constant(value: Any) -> Expression:
    return Expression(lambda ctx: value)


def _binary(fn: Callable[[Any, Any], Any], left: Expression, right: Expression) -> Expression:
    return Expression(lambda ctx: fn(left.evaluate(ctx), right.evaluate(ctx)))


def _logic(is_and: bool, left: Expression, right: Expression) -> Expression:
    decisive = not is_and  # false decides an AND, true decides an OR

    def run(ctx: MessageContext) -> Any:
        a = to_bool(left.evaluate(ctx))
        if a is decisive:
            return decisive
        b = to_bool(right.evaluate(ctx))
        if b is decisive:
            return decisive
        return UNDEFINED if a is UNDEFINED or b is UNDEFINED else is_and

    return Expression(run)


def _not(value: Any) -> Any:
    flag = to_bool(value)
    return UNDEFINED if flag is UNDEFINED else not flag


def _star(ctx: MessageContext) -> Any:
    return ctx.payload if ctx.message is None else ctx.message


# --- parsing -------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<str>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")|(?P<op><>|!=|<=|>=|[-+*/%=<>(),.\[\]}])",
    re.S,
)
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IS"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unquote(raw: str) -> str:
    body = raw[1:-1].replace(raw[0] * 2, raw[0])  # '' inside '...' is a quote, as in SQL
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, str, op, eof, or bad (a character that starts no token)
    text: str
    start: int
    end: int


class _Parser:
    """Recursive descent with one token of lookahead, lexed lazily so that parsing can stop mid-text."""

    def __init__(self, text: str, position: int = 0, what: str = "rule SQL") -> None:
        self.text, self.what = text, what
        self.tok = self._lex(position)

    def _lex(self, pos: int) -> _Token:
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        match = _TOKEN_RE.match(self.text, pos)
        if pos >= len(self.text) or match is None:
            return _Token("eof" if pos >= len(self.text) else "bad", self.text[pos : pos + 1], pos, pos + 1)
        return _Token(match.lastgroup or "bad", match.group(), pos, match.end())

    def advance(self) -> _Token:
        tok, self.tok = self.tok, self._lex(self.tok.end)
        return tok

    def fail(self, problem: str, at: int | None = None) -> NoReturn:
        raise InvalidRuleSqlError(problem, self.tok.start if at is None else at, self.what)

    def found(self) -> str:
        if self.tok.kind == "eof":
            return "the end of the input"
        return "an unterminated string" if self.tok.kind == "bad" and self.tok.text in "'\"" else repr(self.tok.text)

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def at_keyword(self, keyword: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.upper() == keyword

    def expect(self, text: str) -> None:
        if not (self.at_op(text) or self.at_keyword(text)):
            self.fail(f"expected {text if text.isalpha() else repr(text)} but found {self.found()}")
        self.advance()

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
            return SelectItem(expression, _unquote(self.advance().text))
        if self.tok.kind != "name" or self.tok.text.upper() in _KEYWORDS:
            self.fail(f"expected a name after AS but found {self.found()}")
        return SelectItem(expression, self.advance().text)

    def topic_filter(self) -> str:
        if self.tok.kind != "str":
            self.fail(f"expected a topic filter in quotes after FROM but found {self.found()}")
        start, value = self.tok.start, _unquote(self.advance().text)
        if not is_valid_topic_filter(value):
            self.fail(f"{value!r} is not a valid MQTT topic filter ('+' and '#' must fill a level, '#' last)", start)
        return value

    def expression(self) -> Expression:
        left = self.conjunction()
        while self.at_keyword("OR"):
            self.advance()
            left = _logic(False, left, self.conjunction())
        return left

    def conjunction(self) -> Expression:
        left = self.negation()
        while self.at_keyword("AND"):
            self.advance()
            left = _logic(True, left, self.negation())
        return left

    def negation(self) -> Expression:
        if not self.at_keyword("NOT"):
            return self.comparison()
        self.advance()
        operand = self.negation()
        return Expression(lambda ctx: _not(operand.evaluate(ctx)))

    def comparison(self) -> Expression:
        left = self.binary(ADDITIVE, self.term)
        if self.at_op(*COMPARISONS):
            return _binary(COMPARISONS[self.advance().text], left, self.binary(ADDITIVE, self.term))
        if not self.at_keyword("IS"):
            return left
        self.advance()
        negate = self.at_keyword("NOT")
        if negate:
            self.advance()
        self.expect("NULL")
        return Expression(lambda ctx: (left.evaluate(ctx) in (None, UNDEFINED)) != negate)

    def term(self) -> Expression:
        return self.binary(MULTIPLICATIVE, self.unary)

    def binary(self, operators: dict[str, Callable[[Any, Any], Any]], operand: Callable[[], Expression]) -> Expression:
        left = operand()
        while self.at_op(*operators):
            left = _binary(operators[self.advance().text], left, operand())
        return left

    def unary(self) -> Expression:
        if not self.at_op("-", "+"):
            return self.postfix()
        sign, operand = self.advance().text, self.unary()
        return _binary(ADDITIVE[sign], _constant(0), operand) if sign == "-" else operand

    def postfix(self) -> Expression:
        expression = self.primary()
        while self.at_op(".", "["):
            if self.advance().text == "[":
                expression = _index(expression, self.expression())
                self.expect("]")
            elif self.tok.kind == "name":
                expression = _member(expression, self.advance().text)
            else:
                self.fail(f"expected a field name after '.' but found {self.found()}")
        return expression

    def primary(self) -> Expression:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.advance()
            if tok.kind == "str":
                return _constant(_unquote(tok.text))
            return _constant(float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text))
        if self.at_op("(", "*"):
            self.advance()
            if tok.text == "*":
                return Expression(_star, is_star=True)
            inner = self.expression()
            self.expect(")")
            return inner
        if tok.kind != "name" or tok.text.upper() in _KEYWORDS:
            self.fail(f"expected an expression but found {self.found()}")
        self.advance()
        if self.at_op("("):
            return self.call(tok)
        literals = {"true": True, "false": False, "null": None}
        if tok.text.lower() in literals:
            return _constant(literals[tok.text.lower()])
        return Expression(lambda ctx: _lookup(ctx.message, tok.text), name=tok.text)

    def listing(self, closing: str, item: Callable[[], Any]) -> list[Any]:
        items = []
        while not self.at_op(closing):
            if items:
                self.expect(",")
            items.append(item())
        self.advance()
        return items

    def call(self, name: _Token) -> Expression:
        key = name.text.lower()
        if key not in FUNCTIONS:
            self.fail(f"unknown function {name.text}()", name.start)
        self.advance()
        args = self.listing(")", self.expression)
        impl, fewest, most = FUNCTIONS[key]
        if not fewest <= len(args) <= most:
            expected = str(fewest) if fewest == most else f"{fewest} to {most}"
            self.fail(f"{name.text}() takes {expected} argument(s), not {len(args)}", name.start)
        if key == "encode" and args[0].is_star:
            args[0] = Expression(lambda ctx: ctx.payload)  # encode(*, ...) encodes the raw payload bytes
        return Expression(lambda ctx: impl(ctx, *(a.evaluate(ctx) for a in args)), name=name.text)


def _member(target: Expression, key: str) -> Expression:
    return Expression(lambda ctx: _lookup(target.evaluate(ctx), key), name=key)


def _index(target: Expression, index: Expression) -> Expression:
    return Expression(lambda ctx: _lookup(target.evaluate(ctx), index.evaluate(ctx)), name=target.name)


def parse_expression(text: str, start: int = 0, *, closing: str | None = None) -> tuple[Expression, int]:
    """Parse one expression of ``text`` from ``start``; return it and where it ends.

    With ``closing`` (such as ``"}"``) the expression must be followed by that token and the end is just past
    it, so the rest of ``text`` is never read (substitution templates rely on this); without, it must fill the text.
    """
    parser = _Parser(text, start, "expression")
    expression = parser.expression()
    if closing is None and parser.tok.kind != "eof":
        parser.fail(f"unexpected {parser.found()} after the expression")
    end = parser.tok.end if closing else len(text)
    if closing:
        parser.expect(closing)
    return expression, end


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
        return _Parser(sql).statement()

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
