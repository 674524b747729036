"""Substitution templates ``${...}`` in rule actions, such as the S3 key of the archive rule."""

from __future__ import annotations

import json

import pytest

from base.errors import InvalidInputError
from emulator.rules.sql import MessageContext, Rule
from emulator.rules.substitution import InvalidSubstitutionTemplateError, Template, compile_template, render

TOPIC = "devices/dev-1/telemetry"
NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
CERT_ID = "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373"
TELEMETRY = {"temp": 21.5, "whole": 20.0, "flag": True, "nothing": None, "device": {"id": "d-1"}, "tags": ["a", 1]}


def message(payload: bytes = json.dumps(TELEMETRY).encode(), **fields: object) -> MessageContext:
    defaults: dict[str, object] = {"client_id": "dev-1", "principal": CERT_ID, "timestamp_ms": NOW_MS}
    return MessageContext(TOPIC, payload, **(defaults | fields))  # type: ignore[arg-type]


def test_the_archive_key_is_the_topic_then_the_timestamp():
    assert render("${topic()}/${timestamp()}", message()) == "devices/dev-1/telemetry/1700000000000"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${topic(2)}", "dev-1"),  # one topic segment, counted from 1
        ("raw/${topic(2)}/${timestamp()}.json", "raw/dev-1/1700000000000.json"),  # text around expressions
        ("${clientid()}", "dev-1"),
        ("${principal()}", CERT_ID),  # the certificate id
        ("${device.id}", "d-1"),  # a nested field of the incoming payload
        ("${temp}", "21.5"),  # numbers render as text
        ("${whole}", "20"),  # a whole decimal renders as an Int (SQL 2016-03-23)
        ("${flag}", "true"),  # Booleans in lower case
        ("${nothing}", "null"),  # a null field
        ("${missing}", ""),  # an Undefined value renders as nothing
        ("${tags}", '["a",1]'),  # arrays and objects as compact JSON
        ("${upper(topic(3))}", "TELEMETRY"),  # functions nest
        ("${concat(topic(2), '-', timestamp() % 1000)}", "dev-1-0"),  # operators work too
        ('${parse_time("yyyy/MM/dd", timestamp())}/${newuuid()}', "2023/11/14/fixed-uuid"),  # date-partitioned keys
        ("${concat('a}', \"b\")}", "a}b"),  # a brace inside a string does not close the expression
        ("$aws/things/${topic(2)}", "$aws/things/dev-1"),  # a $ without { is plain text
        ("static/key.json", "static/key.json"),  # no template at all
        ("", ""),
    ],
)
def test_templates_expand_expressions_of_the_original_message(template, expected):
    assert render(template, message(new_uuid=lambda: "fixed-uuid")) == expected


def test_templates_cannot_see_select_aliases():
    ctx = message()
    result = Rule.parse("SELECT *, timestamp() AS ts FROM 'devices/+/telemetry'").evaluate(ctx)
    assert result is not None and result.values is not None and result.values["ts"] == NOW_MS
    assert render("${ts}", ctx) == ""  # the alias is not a field of the original message


def test_templates_work_on_binary_payloads_without_fields():
    ctx = message(b"\x00\x01binary")
    assert render("${topic(2)}/${timestamp()}${temp}", ctx) == "dev-1/1700000000000"


def test_a_template_without_expressions_is_static():
    assert Template.parse("archive/latest.json").is_static
    assert not Template.parse("archive/${timestamp()}.json").is_static


def test_templates_are_parsed_once():
    assert compile_template("${topic()}/${timestamp()}") is compile_template("${topic()}/${timestamp()}")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("${topic()", "character 10: expected '}' but found the end of the input"),  # never closed
        ("key/${}", "character 7: expected an expression but found '}'"),  # empty expression
        ("${tpoic()}", "character 3: unknown function tpoic\\(\\)"),  # typo in a function
        ("${topic() timestamp()}", "character 11: expected '}' but found 'timestamp'"),  # two expressions
        ("${'open}", "character 3: expected an expression but found an unterminated string"),  # quote not closed
    ],
)
def test_malformed_templates_are_refused_with_the_position(template, problem):
    with pytest.raises(InvalidSubstitutionTemplateError, match=f"^Invalid substitution template .* at {problem}\\.$"):
        Template.parse(template)


def test_template_errors_are_input_errors_of_the_kit():
    with pytest.raises(InvalidInputError):
        render("${", message())
