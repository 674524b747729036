"""CreateTopicRule and ReplaceTopicRule: the rule's SQL parsed first, as AWS IoT does.

AWS answers a statement that does not parse with ``SqlParseException`` (HTTP 400) and creates
nothing; moto stores any text. Here the statement is compiled by the rules engine's parser
(:mod:`emulator.rules.sql`) before moto stores the rule, so a rule the engine could not run is
refused at once instead of sitting silently unused. The engine reads every ``awsIotSqlVersion`` with
the grammar of 2016-03-23, which the older versions share for the statement's syntax.
"""

from __future__ import annotations

from typing import Any

from emulator.api.calls import DELEGATE, Call
from emulator.rules.expressions import InvalidRuleSqlError
from emulator.rules.sql import Rule
from emulator.store.errors import InvalidRequest, SqlParse


def check_rule_payload(call: Call) -> object:
    payload: Any = call.body
    if not isinstance(payload, dict) or not isinstance(payload.get("sql"), str):
        raise InvalidRequest("topicRulePayload.sql is required.")
    try:
        Rule.parse(payload["sql"])
    except InvalidRuleSqlError as exc:
        raise SqlParse(str(exc).rstrip(".") + ".") from exc
    return DELEGATE


HANDLERS = {"CreateTopicRule": check_rule_payload, "ReplaceTopicRule": check_rule_payload}
