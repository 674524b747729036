"""AWS IoT SQL expressions (version 2016-03-23): their tokens, parser and compiled form.

:func:`parse_expression` compiles one expression (what substitution templates hold); :class:`ExpressionParser`
is the recursive-descent parser that :mod:`emulator.rules.sql` extends with the ``SELECT … FROM … WHERE``
statement. Operators, functions and the Undefined semantics are described there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from base.errors import InvalidInputError
from emulator.rules.functions import FUNCTIONS, MessageContext
from emulator.rules.values import ADDITIVE, COMPARISONS, MULTIPLICATIVE, UNDEFINED, to_bool


class InvalidRuleSqlError(InvalidInputError):
    """A rule's SQL statement, or an expression in a substitution template, cannot be parsed."""

    def __init__(self, problem: str, position: int, what: str = "rule SQL") -> None:
        self.problem, self.position = problem, position
        super().__init__(f"Invalid {what} at character {position + 1}: {problem}.")


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
KEYWORDS = {"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IS"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def unquote(raw: str) -> str:
    body = raw[1:-1].replace(raw[0] * 2, raw[0])  # '' inside '...' is a quote, as in SQL
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, str, op, eof, or bad (a character that starts no token)
    text: str
    start: int
    end: int


class ExpressionParser:
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
                return _constant(unquote(tok.text))
            return _constant(float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text))
        if self.at_op("(", "*"):
            self.advance()
            if tok.text == "*":
                return Expression(_star, is_star=True)
            inner = self.expression()
            self.expect(")")
            return inner
        if tok.kind != "name" or tok.text.upper() in KEYWORDS:
            self.fail(f"expected an expression but found {self.found()}")
        self.advance()
        if self.at_op("("):
            return self.call(tok)
        literals = {"true": True, "false": False, "null": None}
        if tok.text.lower() in literals:
            return _constant(literals[tok.text.lower()])
        return Expression(lambda ctx: _lookup(ctx.message, tok.text), name=tok.text)

    def listing(self, closing: str, item: Callable[[], Any]) -> list[Any]:
        items: list[Any] = []
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
    parser = ExpressionParser(text, start, "expression")
    expression = parser.expression()
    if closing is None and parser.tok.kind != "eof":
        parser.fail(f"unexpected {parser.found()} after the expression")
    end = parser.tok.end if closing else len(text)
    if closing:
        parser.expect(closing)
    return expression, end
