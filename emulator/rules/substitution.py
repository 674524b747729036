"""Substitution templates: the ``${expression}`` parts of rule action fields, such as the S3 ``key``.

Each ``${...}`` holds any expression the rule SQL supports (functions, operators, fields of the incoming
payload), parsed by :func:`emulator.rules.expressions.parse_expression`, so the two never disagree. Text outside
``${...}`` is copied as is (a ``$`` not followed by ``{`` too). For example ``${topic()}/${timestamp()}``
on ``devices/dev-1/telemetry`` at 1700000000000 gives ``devices/dev-1/telemetry/1700000000000``.

As on AWS IoT (iot-substitution-templates), a template is evaluated apart from the SELECT: it sees the
original message, never the rule's output, so it cannot refer to an ``AS`` alias. ``${ts}`` beside
``SELECT timestamp() AS ts`` reads the payload's own ``ts`` field, which is usually missing.

A value renders as text: a String as is, Undefined (a missing field) as the empty string, anything else
as compact JSON (``true``, ``null``, ``[1,2]``), a whole decimal as an Int (``20.0`` gives ``20``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from base.errors import InvalidInputError
from emulator.rules.expressions import Expression, InvalidRuleSqlError, parse_expression
from emulator.rules.functions import MessageContext
from emulator.rules.values import UNDEFINED, to_string


class InvalidSubstitutionTemplateError(InvalidInputError):
    """A rule action's substitution template cannot be parsed."""


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and expressions, in order."""

    text: str
    parts: tuple[str | Expression, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text``; raise :class:`InvalidSubstitutionTemplateError` naming the problem and its position."""
        parts: list[str | Expression] = []
        position = 0
        while (start := text.find("${", position)) != -1:
            if start > position:
                parts.append(text[position:start])
            try:
                expression, position = parse_expression(text, start + 2, closing="}")
            except InvalidRuleSqlError as exc:
                raise InvalidSubstitutionTemplateError(
                    f"Invalid substitution template {text!r} at character {exc.position + 1}: {exc.problem}."
                ) from None
            parts.append(expression)
        if position < len(text):
            parts.append(text[position:])
        return cls(text, tuple(parts))

    @property
    def is_static(self) -> bool:
        """True when there is no ``${...}``: an S3 key like that overwrites one object on every message."""
        return all(isinstance(part, str) for part in self.parts)

    def render(self, ctx: MessageContext) -> str:
        """The text with every ``${...}`` replaced by its value for the message ``ctx``."""
        return "".join(part if isinstance(part, str) else render_value(part.evaluate(ctx)) for part in self.parts)


def render_value(value: Any) -> str:
    """How a substituted value reads in the text (see the module docstring)."""
    if value is UNDEFINED:
        return ""
    if value is None:
        return "null"
    return to_string(value)


@lru_cache(maxsize=512)
def compile_template(text: str) -> Template:
    """:meth:`Template.parse`, remembered: rules render the same few templates for every message."""
    return Template.parse(text)


def render(template: str, ctx: MessageContext) -> str:
    """Expand the substitution template ``template`` for the message ``ctx``."""
    return compile_template(template).render(ctx)
