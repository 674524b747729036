"""The message a rule reads, and the AWS IoT SQL functions (iot-sql-functions) that read it.

:data:`FUNCTIONS` maps each lower-cased function name to ``(implementation(ctx, *args), fewest arguments, most
arguments)``; :mod:`emulator.rules.sql` checks the arity when it parses a call and passes the
:class:`MessageContext` when it evaluates one. Arguments arrive evaluated, Undefined included.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from emulator.rules.values import UNDEFINED, to_number, to_string


def _random_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class MessageContext:
    """One incoming MQTT message as the rules engine sees it."""

    topic: str
    payload: bytes
    client_id: str | None
    principal: str | None  # the certificateId of the publishing device
    timestamp_ms: int  # when the broker received it, epoch milliseconds
    trace_id: str | None = None
    new_uuid: Callable[[], str] = _random_uuid

    @classmethod
    def received(
        cls,
        topic: str,
        payload: bytes,
        *,
        client_id: str | None = None,
        principal: str | None = None,
        clock: Callable[[], float] = time.time,
        **extra: Any,
    ) -> MessageContext:
        """A context stamped with ``clock()`` (seconds, as ``time.time``) converted to epoch milliseconds."""
        return cls(topic, payload, client_id, principal, int(clock() * 1000), **extra)

    @cached_property
    def message(self) -> dict[str, Any] | None:
        """The payload as a JSON object, or None when it is not one (binary, text, array, empty)."""
        try:
            value = json.loads(self.payload)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


# --- functions: name -> (implementation(ctx, *args), fewest arguments, most arguments) ---------------


def _fn_topic(ctx: MessageContext, *segment: Any) -> Any:
    if not segment:
        return ctx.topic
    n, levels = to_number(segment[0]), ctx.topic.split("/")
    return levels[math.floor(n) - 1] if n is not UNDEFINED and 1 <= n < len(levels) + 1 else UNDEFINED


def _fn_concat(ctx: MessageContext, *args: Any) -> Any:
    if len(args) < 2:
        return args[0] if args else UNDEFINED
    if any(isinstance(a, list) for a in args):
        return [item for a in args for item in (a if isinstance(a, list) else [a])]
    texts = [to_string(a) for a in args]
    if not any(isinstance(a, str) for a in args) or any(t is UNDEFINED for t in texts):
        return UNDEFINED
    return "".join(texts)


def _fn_encode(ctx: MessageContext, value: Any, scheme: Any) -> Any:
    data = value if isinstance(value, bytes) else to_string(value)
    if scheme != "base64" or data is UNDEFINED:
        return UNDEFINED
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode("ascii")


def _fn_decode(ctx: MessageContext, value: Any, scheme: Any) -> Any:
    if scheme != "base64" or not isinstance(value, str):
        return UNDEFINED
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:
        return None  # AWS: NULL when the value cannot be decoded
    try:
        return json.loads(text)  # a JSON document becomes addressable
    except ValueError:
        return text


def _string_fn(transform: Callable[..., Any]) -> Callable[..., Any]:
    """A function of String arguments: each converted with the standard rules, Undefined if one cannot be."""

    def apply(ctx: MessageContext, *args: Any) -> Any:
        texts = [to_string(a) for a in args]
        return UNDEFINED if any(t is UNDEFINED for t in texts) else transform(*texts)

    return apply


_JODA_RE = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|.", re.S)


def _fn_parse_time(ctx: MessageContext, pattern: Any, millis: Any, zone: Any = "UTC") -> Any:
    """Format epoch milliseconds with a Joda-Time pattern (the common letters) in a time zone."""
    ms = to_number(millis)
    if not isinstance(pattern, str) or not isinstance(zone, str) or ms is UNDEFINED:
        return UNDEFINED
    try:
        tz = UTC if zone.upper() in ("UTC", "Z", "GMT") else ZoneInfo(zone)
        moment = datetime.fromtimestamp(math.floor(ms) // 1000, tz).replace(microsecond=math.floor(ms) % 1000 * 1000)
    except (ValueError, OverflowError, OSError):
        return UNDEFINED
    out = []
    for match in _JODA_RE.finditer(pattern):
        token = match.group()
        if token.startswith("'"):
            out.append(token[1:-1].replace("''", "'") or "'")  # quoted text; '' is a quote
        elif match.group(1):
            text = _joda_field(moment, token[0], len(token))
            if text is None:
                return UNDEFINED
            out.append(text)
        else:
            out.append(token)
    return "".join(out)


def _joda_field(moment: datetime, letter: str, width: int) -> str | None:
    numbers = {"d": moment.day, "H": moment.hour, "h": moment.hour % 12 or 12, "m": moment.minute}
    numbers |= {"s": moment.second, "D": moment.timetuple().tm_yday, "k": moment.hour or 24, "K": moment.hour % 12}
    zone_id = getattr(moment.tzinfo, "key", "UTC")
    if letter == "y":
        return f"{moment.year % 100:02d}" if width == 2 else f"{moment.year:0{width}d}"
    if letter == "M":
        return moment.strftime("%B" if width >= 4 else "%b") if width >= 3 else f"{moment.month:0{width}d}"
    if letter in numbers:
        return f"{numbers[letter]:0{width}d}"
    if letter == "S":
        return f"{moment.microsecond // 1000:03d}"[:width].ljust(width, "0")
    offset = moment.strftime("%z")
    texts: dict[str, str | None] = {
        "E": moment.strftime("%A" if width >= 4 else "%a"),
        "a": "AM" if moment.hour < 12 else "PM",
        "G": "AD",
    }
    texts |= {"z": moment.tzname() if width < 4 else zone_id}
    texts |= {"Z": offset if width == 1 else f"{offset[:3]}:{offset[3:]}" if width == 2 else zone_id}
    return texts.get(letter)


def _defined(value: Any) -> Any:
    return UNDEFINED if value is None else value


def _fn_abs(ctx: MessageContext, value: Any) -> Any:
    number = to_number(value)
    return UNDEFINED if number is UNDEFINED else abs(number)


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "topic": (_fn_topic, 0, 1),
    "timestamp": (lambda ctx: ctx.timestamp_ms, 0, 0),
    "clientid": (lambda ctx: "n/a" if ctx.client_id is None else ctx.client_id, 0, 0),
    "principal": (lambda ctx: _defined(ctx.principal), 0, 0),
    "traceid": (lambda ctx: _defined(ctx.trace_id), 0, 0),
    "newuuid": (lambda ctx: ctx.new_uuid(), 0, 0),
    "parse_time": (_fn_parse_time, 2, 3),
    "lower": (_string_fn(str.lower), 1, 1),
    "upper": (_string_fn(str.upper), 1, 1),
    "concat": (_fn_concat, 0, 1_000),
    "abs": (_fn_abs, 1, 1),
    "encode": (_fn_encode, 2, 2),
    "decode": (_fn_decode, 2, 2),
}
