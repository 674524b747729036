"""AWS IoT Core policy evaluation, asked by the emulator's broker on connect, publish, subscribe and receive.

All the policies attached to the client's certificate are evaluated together, the IAM way: a statement that
denies wins, else a statement that allows grants, else the request is implicitly denied. As the AWS IoT
Developer Guide says (iot-policy-variables, pub-sub-policy, iot-action-resources):

- actions match case-insensitively with ``*``/``?`` wildcards; resources match the whole ARN case-sensitively,
  ``*`` being any run of characters (``/`` and ``:`` too) and ``?`` one. MQTT's ``+`` and ``#`` are plain
  characters, so a ``topicfilter/`` resource matches the filter the client sent literally;
- ``${...}`` variables are replaced in Resource and Condition values under Version ``2012-10-17`` (IAM reads
  them literally under ``2008-10-17``, its default). Values go in literally: a client id ``*`` is no wildcard.
  ``${*}``, ``${?}``, ``${$}`` stand for those characters. A variable with no value (no thing attached, an
  attribute the certificate lacks) makes its resource match nothing, for Allow and Deny alike; a NotResource
  list with one makes its statement not apply.

Our choice where AWS leaves it open: Condition supports ``String[Not]Equals[IgnoreCase]``, ``String[Not]Like``,
``Bool`` and ``Null`` (each ``...IfExists``) on the ``iot:`` keys above. A condition the emulator cannot
evaluate (``IpAddress``, ``aws:SourceIp``...) fails closed: its Allow statement never grants, its Deny statement
always applies, so the emulator may refuse what AWS allows but never allows what AWS refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from base.errors import InvalidInputError


class InvalidPolicyError(InvalidInputError):
    """An AWS IoT policy document is malformed."""


class Action(StrEnum):
    """The data-plane actions the broker authorizes."""

    CONNECT = "iot:Connect"
    PUBLISH = "iot:Publish"
    RETAIN_PUBLISH = "iot:RetainPublish"
    SUBSCRIBE = "iot:Subscribe"
    RECEIVE = "iot:Receive"


class Decision(StrEnum):
    """The outcome of an evaluation, worth logging as is."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


# X.509 name attributes as AWS IoT names them in iot:Certificate.Subject.* and iot:Certificate.Issuer.*.
CERTIFICATE_ATTRIBUTES = {
    NameOID.COUNTRY_NAME: "Country",
    NameOID.ORGANIZATION_NAME: "Organization",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OrganizationalUnit",
    NameOID.DN_QUALIFIER: "DistinguishedNameQualifier",
    NameOID.STATE_OR_PROVINCE_NAME: "State",
    NameOID.COMMON_NAME: "CommonName",
    NameOID.SERIAL_NUMBER: "SerialNumber",
    NameOID.TITLE: "Title",
    NameOID.SURNAME: "Surname",
    NameOID.GIVEN_NAME: "GivenName",
    NameOID.INITIALS: "Initials",
    NameOID.PSEUDONYM: "Pseudonym",
    NameOID.GENERATION_QUALIFIER: "GenerationQualifier",
}


def certificate_attributes(name: x509.Name) -> dict[str, str]:
    """A certificate subject or issuer as policy-variable attributes (the first value of each)."""
    attributes: dict[str, str] = {}
    for attribute in name:
        key = CERTIFICATE_ATTRIBUTES.get(attribute.oid)
        if key and key not in attributes:
            attributes[key] = str(attribute.value)
    return attributes


@dataclass(frozen=True)
class RequestContext:
    """Who is asking: what the broker knows about the connection when it evaluates a policy.

    ``thing_name`` is the thing attached to the client's certificate (the one named like the client id
    when several are), or None when no thing is attached.
    """

    region: str
    account_id: str
    client_id: str
    thing_name: str | None = None
    certificate_subject: Mapping[str, str] = field(default_factory=dict)
    certificate_issuer: Mapping[str, str] = field(default_factory=dict)
    thing_type: str | None = None
    thing_attributes: Mapping[str, str] = field(default_factory=dict)

    def variable(self, name: str) -> str | None:
        """The value of policy variable (or condition key) ``name``, or None if it has none here."""
        key = name.strip()
        lower = key.lower()
        if lower == "iot:clientid":
            return self.client_id
        if lower == "iot:connection.thing.isattached":
            return "true" if self.thing_name is not None else "false"
        if lower == "iot:connection.thing.thingname":
            return self.thing_name
        if self.thing_name is not None and lower == "iot:connection.thing.thingtypename":
            return self.thing_type
        if self.thing_name is not None and lower.startswith("iot:connection.thing.attributes[") and key[-1] == "]":
            return self.thing_attributes.get(key[len("iot:connection.thing.attributes[") : -1])
        for prefix, attributes in (
            ("iot:certificate.subject.", self.certificate_subject),
            ("iot:certificate.issuer.", self.certificate_issuer),
        ):
            if lower.startswith(prefix):
                wanted = lower[len(prefix) :]
                return next((v for k, v in attributes.items() if k.lower() == wanted), None)
        return None


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _arn(ctx: RequestContext, kind: str, name: str) -> str:
    return f"arn:{_partition(ctx.region)}:iot:{ctx.region}:{ctx.account_id}:{kind}/{name}"


def client_arn(ctx: RequestContext, client_id: str) -> str:
    """The resource of iot:Connect."""
    return _arn(ctx, "client", client_id)


def topic_arn(ctx: RequestContext, topic: str) -> str:
    """The resource of iot:Publish, iot:RetainPublish and iot:Receive."""
    return _arn(ctx, "topic", topic)


def topicfilter_arn(ctx: RequestContext, topic_filter: str) -> str:
    """The resource of iot:Subscribe: the filter as the client sent it, ``+`` and ``#`` included."""
    return _arn(ctx, "topicfilter", topic_filter)


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_KNOWN_KEY = re.compile(
    r"^iot:(ClientId|Connection\.Thing\.(ThingName|ThingTypeName|IsAttached|Attributes\[[^\]]+\])"
    r"|Certificate\.(Subject|Issuer)\.[A-Za-z]+)$",
    re.IGNORECASE,
)
_OPERATOR = re.compile(r"^(String(?:Not)?Equals(?:IgnoreCase)?|String(?:Not)?Like|Bool|Null)(IfExists)?$")
_VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}


@dataclass(frozen=True)
class _Pattern:
    """A policy string split once into regex text alternating with the names of its policy variables."""

    parts: tuple[str, ...]  # text, variable, text, ..., text
    ignore_case: bool
    static: re.Pattern[str] | None  # compiled up front when there is no variable

    def resolve(self, ctx: RequestContext) -> re.Pattern[str] | None:
        """The regex with this context's values inserted literally; None if a variable has no value."""
        if self.static is not None:
            return self.static
        source = [self.parts[0]]
        for i in range(1, len(self.parts), 2):
            value = ctx.variable(self.parts[i])
            if value is None:
                return None
            source += (re.escape(value), self.parts[i + 1])
        return _compile("".join(source), self.ignore_case)


@lru_cache(maxsize=4096)
def _pattern(text: str, *, wildcards: bool, variables: bool, ignore_case: bool = False) -> _Pattern:
    parts: list[str] = []
    literal: list[str] = []
    position = 0
    for match in _VARIABLE.finditer(text) if variables else ():
        literal.append(_regex_text(text[position : match.start()], wildcards))
        name = match.group(1).strip()
        if name in ("*", "?", "$"):
            literal.append(re.escape(name))
        else:
            parts += ("".join(literal), name)
            literal = []
        position = match.end()
    literal.append(_regex_text(text[position:], wildcards))
    parts.append("".join(literal))
    static = _compile(parts[0], ignore_case) if len(parts) == 1 else None
    return _Pattern(tuple(parts), ignore_case, static)


def _regex_text(text: str, wildcards: bool) -> str:
    if not wildcards:
        return re.escape(text)
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@lru_cache(maxsize=8192)
def _compile(source: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(source, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: conditions hold dicts
class _Statement:
    deny: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[_Pattern, ...]
    not_resource: bool
    condition: Mapping[str, Mapping[str, tuple[str, ...]]] | None
    variables: bool  # policy variables are substituted (Version 2012-10-17)

    def applies(self, action: str, resource: str, ctx: RequestContext) -> bool:
        if any(p.fullmatch(action) for p in self.actions) == self.not_action:
            return False
        if self.not_resource:
            patterns = [p.resolve(ctx) for p in self.resources]
            if None in patterns or any(p.fullmatch(resource) for p in patterns if p is not None):
                return False
        elif not any((r := p.resolve(ctx)) is not None and r.fullmatch(resource) for p in self.resources):
            return False
        if self.condition is None:
            return True
        holds = _condition_holds(self.condition, ctx, self.variables)
        return self.deny if holds is None else holds


def _condition_holds(
    condition: Mapping[str, Mapping[str, tuple[str, ...]]], ctx: RequestContext, variables: bool
) -> bool | None:
    """Whether a Condition block holds (operators and keys AND, values OR), None if it cannot be evaluated."""
    unknown = False
    for operator, entries in condition.items():
        match = _OPERATOR.match(operator)
        for key, values in entries.items():
            if match is None or not _KNOWN_KEY.match(key):
                unknown = True
                continue
            base, if_exists = match.group(1), match.group(2) is not None
            actual = ctx.variable(key)
            if base == "Null":
                holds = any((v.lower() == "true") == (actual is None) for v in values)
            elif actual is None:
                holds = if_exists or "Not" in base  # IAM: an absent key fails a test, passes a negated one
            else:
                matched = any(_value_matches(base, v, actual, ctx, variables) for v in values)
                holds = not matched if "Not" in base else matched  # negated operators: NOR of the values
            if not holds:
                return False
    return None if unknown else True


def _value_matches(operator: str, expected: str, actual: str, ctx: RequestContext, variables: bool) -> bool:
    if operator == "Bool":
        return expected.lower() == actual.lower()
    wildcards, ignore_case = operator.endswith("Like"), operator.endswith("IgnoreCase")
    pattern = _pattern(expected, wildcards=wildcards, variables=variables, ignore_case=ignore_case).resolve(ctx)
    return pattern is not None and pattern.fullmatch(actual) is not None


@dataclass(frozen=True)
class Policy:
    """A parsed AWS IoT policy document, ready to evaluate many times."""

    name: str
    statements: tuple[_Statement, ...] = field(repr=False)

    @classmethod
    def parse(cls, document: str | bytes | Mapping[str, Any], name: str = "") -> Policy:
        """Parse a policy document (JSON text or a decoded object) named ``name``, or raise InvalidPolicyError."""
        label = f"IoT policy {name!r}" if name else "The IoT policy"
        if isinstance(document, str | bytes):
            try:
                document = json.loads(document)
            except json.JSONDecodeError as exc:
                raise InvalidPolicyError(f"{label} is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
        if not isinstance(document, Mapping):
            raise InvalidPolicyError(f"{label} must be a JSON object with a Statement.")
        version = document.get("Version", "2008-10-17")  # IAM's default when Version is absent
        if version not in _VERSIONS:
            raise InvalidPolicyError(f"{label} has Version {version!r}; use '2012-10-17'.")
        raw = document.get("Statement")
        statements = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(statements, list) or not statements:
            raise InvalidPolicyError(f"{label} needs a Statement: an object or a non-empty list of objects.")
        variables = version == "2012-10-17"
        return cls(
            name, tuple(_parse_statement(s, f"{label} statement {i}", variables) for i, s in enumerate(statements, 1))
        )


def _parse_statement(raw: Any, where: str, variables: bool) -> _Statement:
    if not isinstance(raw, Mapping):
        raise InvalidPolicyError(f"{where} must be a JSON object.")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise InvalidPolicyError(f"{where} has unknown element(s) {', '.join(unknown)}.")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidPolicyError(f"{where} has Effect {effect!r}; use 'Allow' or 'Deny'.")
    action_key, actions = _one_of(raw, "Action", where)
    for action in actions:
        if action != "*" and not re.fullmatch(r"[\w*?-]+:[\w*?-]+", action):
            raise InvalidPolicyError(f"{where} has Action {action!r}; write actions as 'iot:Publish' or '*'.")
    resource_key, resources = _one_of(raw, "Resource", where)
    for resource in resources:
        if resource != "*" and not resource.startswith("arn:"):
            raise InvalidPolicyError(f"{where} has Resource {resource!r}; use an ARN or '*'.")
    return _Statement(
        deny=effect == "Deny",
        actions=tuple(_compile(_regex_text(a, True), True) for a in actions),
        not_action=action_key == "NotAction",
        resources=tuple(_pattern(r, wildcards=True, variables=variables) for r in resources),
        not_resource=resource_key == "NotResource",
        condition=_parse_condition(raw.get("Condition"), where),
        variables=variables,
    )


def _one_of(raw: Mapping[str, Any], element: str, where: str) -> tuple[str, list[str]]:
    present = [k for k in (element, f"Not{element}") if k in raw]
    if len(present) != 1:
        raise InvalidPolicyError(f"{where} needs exactly one of {element} or Not{element}.")
    value = raw[present[0]]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise InvalidPolicyError(f"{where} has a {present[0]} that is not a string or list of strings.")
    return present[0], values


def _parse_condition(raw: Any, where: str) -> dict[str, dict[str, tuple[str, ...]]] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(e, Mapping) for e in raw.values()):
        raise InvalidPolicyError(f"{where} has a Condition that is not an object of operator objects.")
    parsed: dict[str, dict[str, tuple[str, ...]]] = {}
    for operator, entries in raw.items():
        parsed[operator] = {}
        for key, value in entries.items():
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str | bool | int | float) for v in values):
                raise InvalidPolicyError(f"{where} has a Condition value for {key} that is not a string.")
            parsed[operator][key] = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return parsed


def decide(policies: Iterable[Policy], action: str, resource: str, ctx: RequestContext) -> Decision:
    """Evaluate ``action`` on ``resource`` (a full ARN) against every policy attached to the client."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if statement.applies(action, resource, ctx):
                if statement.deny:
                    return Decision.EXPLICIT_DENY
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def is_allowed(policies: Iterable[Policy], action: str, resource: str, ctx: RequestContext) -> bool:
    """Whether the policies grant ``action`` on ``resource`` with nothing denying it."""
    return decide(policies, action, resource, ctx) is Decision.ALLOW
