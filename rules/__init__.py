"""The kit's IoT topic rules, one JSON file each: the single source the SAM template and the emulator agree with.

A file holds ``name`` (the rule's base name), ``description``, ``parameters`` (each ``{{Placeholder}}`` the
payload uses, with what it stands for) and ``topicRulePayload``, written as CreateTopicRule takes it
(``sql``, ``awsIotSqlVersion``, ``actions``, ``errorAction``). ``${...}`` in an action field is an IoT
substitution template, kept as is; ``{{...}}`` is filled in at deploy time:

- :func:`render` fills the placeholders and gives the payload for ``iot.create_topic_rule`` (the emulator,
  ``jitr local deploy``);
- :func:`to_cloudformation` gives the ``TopicRulePayload`` of an ``AWS::IoT::TopicRule`` (keys capitalised,
  placeholders bound to ``Ref``/``Fn::GetAtt``, ``Fn::Sub`` where a placeholder sits inside text), which
  ``tests/unit/stack/test_template_rules.py`` compares with ``sam/template.yaml``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.errors import InvalidInputError

RULES_DIR = Path(__file__).resolve().parent
RULE_FILES = {
    "registration": "registration.json",
    "archive": "archive.json",
    "rotation": "rotation.json",
    "presence": "presence.json",
}
PLACEHOLDER_RE = re.compile(r"\{\{([A-Za-z][A-Za-z0-9]*)\}\}")
RULE_NAME_RE = re.compile(r"[a-zA-Z0-9_]{1,128}")


class RuleDefinitionError(InvalidInputError):
    """A rule file, or the values given to fill it, is not usable."""


@dataclass(frozen=True)
class RuleDefinition:
    """One rule as ``rules/<file>.json`` defines it."""

    key: str
    name: str
    description: str
    parameters: Mapping[str, str]
    payload: Mapping[str, Any]

    @property
    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER_RE.findall(json.dumps(self.payload)))


def load(key: str) -> RuleDefinition:
    """The rule ``key`` (``registration`` or ``archive``), checked to declare every placeholder it uses."""
    if key not in RULE_FILES:
        raise RuleDefinitionError(f"There is no rule {key!r}; the kit defines {', '.join(RULE_FILES)}.")
    path = RULES_DIR / RULE_FILES[key]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rule = RuleDefinition(key, data["name"], data["description"], data["parameters"], data["topicRulePayload"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuleDefinitionError(f"{path} is not a rule definition: {exc}.") from exc
    undeclared = rule.placeholders - set(rule.parameters)
    if undeclared or not RULE_NAME_RE.fullmatch(rule.name):
        raise RuleDefinitionError(f"{path} uses undeclared placeholders {sorted(undeclared)} or a bad name.")
    return rule


def load_all() -> dict[str, RuleDefinition]:
    return {key: load(key) for key in RULE_FILES}


def rule_name(rule: RuleDefinition, prefix: str = "") -> str:
    """A rule name IoT accepts (letters, digits, underscores), e.g. ``mystack_jitr_archive`` for prefix ``my-stack``."""
    name = f"{re.sub(r'[^a-zA-Z0-9_]', '', prefix)}_{rule.name}" if prefix else rule.name
    return name[:128]


def _map_strings(node, fn):
    if isinstance(node, Mapping):
        return {key: _map_strings(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(item, fn) for item in node]
    return fn(node) if isinstance(node, str) else copy.deepcopy(node)


def render(rule: RuleDefinition, values: Mapping[str, str]) -> dict:
    """The ``topicRulePayload`` for CreateTopicRule, with every ``{{placeholder}}`` filled from ``values``."""
    missing = sorted(rule.placeholders - set(values))
    if missing:
        raise RuleDefinitionError(f"Rule {rule.key} needs a value for {', '.join(missing)}.")
    return _map_strings(rule.payload, lambda text: PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]), text))


def _sub_name(binding: Mapping[str, Any]) -> str:
    """How ``Fn::Sub`` names a ``Ref`` (``Name``) or a ``Fn::GetAtt`` (``Resource.Attribute``)."""
    if isinstance(binding.get("Ref"), str):
        return binding["Ref"]
    if isinstance(binding.get("Fn::GetAtt"), list):
        return ".".join(binding["Fn::GetAtt"])
    raise RuleDefinitionError(f"Only Ref and Fn::GetAtt can stand inside text, not {binding}.")


def to_cloudformation(rule: RuleDefinition, bindings: Mapping[str, Mapping[str, Any]]) -> dict:
    """The CloudFormation ``TopicRulePayload``: ``bindings`` maps each placeholder to a ``Ref``/``Fn::GetAtt``."""
    missing = sorted(rule.placeholders - set(bindings))
    if missing:
        raise RuleDefinitionError(f"Rule {rule.key} needs a binding for {', '.join(missing)}.")

    def convert_string(text: str):
        whole = PLACEHOLDER_RE.fullmatch(text)
        if whole:
            return copy.deepcopy(dict(bindings[whole.group(1)]))
        if not PLACEHOLDER_RE.search(text):
            return text  # outside Fn::Sub, CloudFormation leaves IoT's ${...} templates alone
        escaped = text.replace("${", "${!")
        return {"Fn::Sub": PLACEHOLDER_RE.sub(lambda m: "${" + _sub_name(bindings[m.group(1)]) + "}", escaped)}

    def convert(node):
        if isinstance(node, Mapping):
            return {key[:1].upper() + key[1:]: convert(value) for key, value in node.items()}
        if isinstance(node, list):
            return [convert(item) for item in node]
        return convert_string(node) if isinstance(node, str) else node

    return convert(rule.payload)
