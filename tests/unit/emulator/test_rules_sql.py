"""AWS IoT SQL (2016-03-23) as the emulator's rules engine parses and evaluates it."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from base.errors import ExitStatus, InvalidInputError
from emulator.rules.sql import (
    UNDEFINED,
    InvalidRuleSqlError,
    MessageContext,
    Rule,
    RuleEvaluationError,
    parse_expression,
    topic_matches,
)

TOPIC = "devices/dev-1/telemetry"
NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
CERT_ID = "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373"
TELEMETRY = {
    "temp": 21.5,
    "color": "red",
    "flag": True,
    "nothing": None,
    "coords": {"latitude": 47.6, "longitude": -122.3},
    "readings": [1, 2, 3],
}


def message(payload: object = TELEMETRY, topic: str = TOPIC, **fields: object) -> MessageContext:
    """A message from dev-1; ``payload`` is JSON-encoded unless it is bytes already."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    defaults: dict[str, object] = {"client_id": "dev-1", "principal": CERT_ID, "timestamp_ms": NOW_MS}
    return MessageContext(topic, raw, **(defaults | fields))  # type: ignore[arg-type]


def value_of(expression: str, ctx: MessageContext | None = None) -> object:
    return parse_expression(expression)[0].evaluate(ctx or message())


# --- topic filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("devices/+/telemetry", "devices/dev-1/telemetry", True),  # + is exactly one level
        ("devices/+/telemetry", "devices/dev-1/status", False),  # the other levels must be equal
        ("devices/+", "devices/dev-1/telemetry", False),  # + does not span levels
        ("devices/+", "devices/", True),  # + matches an empty level
        ("devices/#", "devices/dev-1/telemetry", True),  # # is every level below
        ("devices/#", "devices", True),  # # includes the parent level (MQTT 3.1.1 4.7.1.2)
        ("Devices/#", "devices/dev-1", False),  # topics are case-sensitive
        ("#", "devices/dev-1/telemetry", True),  # # alone is every ordinary topic
        ("#", "$aws/events/presence/connected/dev-1", False),  # wildcards never match a leading $
        ("+/events/#", "$aws/events/presence/connected/dev-1", False),  # not even a leading +
        ("$aws/#", "$aws/events/certificates/registered/abc", True),  # name $aws explicitly instead
        ("$aws/events/certificates/registered/abc", "$aws/events/certificates/registered/abc", True),  # exact
        ("$aws/events/certificates/registered/abc", "$aws/events/certificates/registered/abd", False),  # other CA
        ("$aws/events/presence/connected/+", "$aws/events/presence/connected/dev-1", True),  # presence events
        ("$aws/events/presence/connected/+", "$aws/events/presence/disconnected/dev-1", False),  # other event
    ],
)
def test_topic_filters_match_like_mqtt(topic_filter, topic, expected):
    assert topic_matches(topic_filter, topic) is expected
    assert Rule.parse(f"SELECT * FROM '{topic_filter}'").matches_topic(topic) is expected


def test_a_rule_ignores_messages_on_other_topics():
    rule = Rule.parse("SELECT * FROM 'devices/+/telemetry'")
    assert rule.evaluate(message(topic="devices/dev-1/status")) is None


def test_the_registration_event_rule_forwards_the_event():
    event = {"certificateId": CERT_ID, "caCertificateId": "abc", "certificateStatus": "PENDING_ACTIVATION"}
    rule = Rule.parse("SELECT * FROM '$aws/events/certificates/registered/abc'")
    result = rule.evaluate(message(event, topic="$aws/events/certificates/registered/abc"))
    assert result is not None and result.values == event and json.loads(result.payload) == event


# --- SELECT -----------------------------------------------------------------------------------------


def test_select_star_returns_the_json_object():
    result = Rule.parse("SELECT * FROM 'devices/+/telemetry'").evaluate(message())
    assert result is not None and result.values == TELEMETRY and json.loads(result.payload) == TELEMETRY


def test_star_with_aliases_adds_topic_and_timestamp_to_the_message():
    sql = "SELECT *, topic() AS topic, timestamp() AS ts FROM 'devices/+/telemetry'"
    result = Rule.parse(sql).evaluate(message())
    assert result is not None
    assert result.values == TELEMETRY | {"topic": TOPIC, "ts": NOW_MS}


def test_aliases_rename_selected_fields():
    sql = "SELECT color AS my_color, temp AS celsius FROM 'devices/+/telemetry'"
    result = Rule.parse(sql).evaluate(message())
    assert result is not None and result.values == {"my_color": "red", "celsius": 21.5}


def test_items_without_alias_are_named_after_their_field_or_function():
    sql = "SELECT temp, coords.latitude, readings[1], topic(2), 'x', 15 AS speed FROM 'devices/+/telemetry'"
    result = Rule.parse(sql).evaluate(message())
    assert result is not None
    assert result.values == {"temp": 21.5, "latitude": 47.6, "readings": 2, "topic": "dev-1", "_5": "x", "speed": 15}


def test_missing_fields_are_left_out_of_the_output():
    result = Rule.parse("SELECT temp, humidity, coords.altitude, readings[9] FROM '#'").evaluate(message())
    assert result is not None and result.values == {"temp": 21.5}


def test_keywords_and_function_names_are_case_insensitive():
    result = Rule.parse("select TOPIC(2) as device from '#' Where temp > 20 aNd NOT flag = false").evaluate(message())
    assert result is not None and result.values == {"device": "dev-1"}


def test_string_literals_take_either_quote_and_escapes():
    assert value_of("""concat("it's", ' ', 'a ''quoted'' \\"word\\"')""") == """it's a 'quoted' "word\""""


# --- functions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("topic()", TOPIC),  # the whole topic
        ("topic(1)", "devices"),  # segments count from 1
        ("topic(3)", "telemetry"),  # the last segment
        ("topic(4)", UNDEFINED),  # past the end
        ("topic(0)", UNDEFINED),  # there is no segment 0
        ("timestamp()", NOW_MS),  # epoch milliseconds of receipt
        ("clientid()", "dev-1"),  # the MQTT client id
        ("principal()", CERT_ID),  # the certificate id for X.509 clients
        ("lower('AbC')", "abc"),
        ("upper(color)", "RED"),
        ("lower(flag)", "true"),  # non-strings are converted first
        ("concat('dev', '-', 1)", "dev-1"),  # numbers join as text when a string is present
        ("concat(readings, 4)", [1, 2, 3, 4]),  # an array absorbs the other arguments
        ("concat()", UNDEFINED),
        ("abs(-5)", 5),
        ("abs('-2.5')", 2.5),  # numeric strings convert
        ("abs(color)", UNDEFINED),  # other strings do not
        ("encode('hello', 'base64')", "aGVsbG8="),
        ("decode('eyJ0IjogMzN9', 'base64').t", 33),  # a decoded JSON document is addressable
        ("parse_time('yyyy-MM-dd HH:mm:ss.SSS z', timestamp())", "2023-11-14 22:13:20.000 UTC"),
        ("parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", 100000000, 'America/Belize')", "1970.01.01 AD at 21:46:40 CST"),
    ],
)
def test_functions_evaluate_like_aws(expression, expected):
    assert value_of(expression) == expected


def test_functions_without_a_value_are_undefined_or_as_documented():
    ctx = message(client_id=None, principal=None)
    assert value_of("clientid()", ctx) == "n/a"  # AWS: not sent over MQTT
    assert value_of("principal()", ctx) is UNDEFINED
    assert value_of("traceid()", ctx) is UNDEFINED
    assert value_of("traceid()", message(trace_id="t-1")) == "t-1"


def test_newuuid_is_random_unless_injected():
    first, second = value_of("newuuid()"), value_of("newuuid()")
    assert first != second and uuid.UUID(str(first)).version == 4
    assert value_of("newuuid()", message(new_uuid=lambda: "fixed")) == "fixed"


def test_received_stamps_the_message_with_the_clock_in_milliseconds():
    ctx = MessageContext.received(TOPIC, b"{}", client_id="dev-1", clock=lambda: 1_700_000_000.123)
    assert ctx.timestamp_ms == 1_700_000_000_123 and value_of("timestamp()", ctx) == 1_700_000_000_123


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),  # * binds tighter than +
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3),  # Int / Int is an Int
        ("-7 / 2", -3),  # truncated toward zero
        ("7.0 / 2", 3.5),
        ("-7 % 3", -1),  # the remainder takes the dividend's sign
        ("1 / 0", UNDEFINED),
        ("'a' + 1", "a1"),  # + concatenates when a side is a string
        ("'2' * 3", 6),  # other operators convert numeric strings
        ("-temp", -21.5),
        ("temp + humidity", UNDEFINED),  # a missing operand
    ],
)
def test_arithmetic_follows_the_aws_operator_tables(expression, expected):
    assert value_of(expression) == expected


# --- WHERE ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "fires"),
    [
        ("temp > 20", True),
        ("temp > 30", False),
        ("temp >= 21.5 AND temp <= 21.5", True),
        ("color = 'red'", True),
        ("color = 'RED'", False),  # strings compare case-sensitively
        ("color <> 'red'", False),
        ("color != 'blue'", True),
        ("temp = '21.5'", False),  # = never converts: a string is not a number
        ("'30' > temp", True),  # ordering converts numeric strings
        ("1 = 1.0", True),  # an Int equals the same Decimal
        ("humidity > 50", False),  # a missing field is Undefined: the rule does not fire
        ("humidity < 50", False),  # ...whichever way it is compared
        ("NOT humidity = 50", False),  # NOT Undefined is Undefined
        ("humidity = 50 OR temp > 20", True),  # true OR Undefined is true
        ("humidity = 50 AND temp > 20", False),
        ("NOT (temp > 30)", True),
        ("temp > 30 OR color = 'red' AND flag", True),  # AND binds tighter than OR
        ("(temp > 30 OR color = 'red') AND NOT flag", False),
        ("flag", True),  # a Boolean field is a condition
        ("color", False),  # a string that is not "true" is not
        ("'TRUE'", True),  # but "true" in any case is
        ("humidity IS NULL", True),  # IS NULL is true for a missing field
        ("nothing IS NULL", True),  # and for null
        ("temp IS NOT NULL", True),
        ("topic(2) = 'dev-1'", True),
        ("timestamp() % 1000 = 0", True),
        ("coords.latitude > 47 AND readings[0] = 1", True),
    ],
)
def test_where_fires_only_when_the_condition_is_true(condition, fires):
    sql = f"SELECT temp FROM 'devices/+/telemetry' WHERE {condition}"
    assert (Rule.parse(sql).evaluate(message()) is not None) is fires


def test_where_cannot_see_select_aliases():
    rule = Rule.parse("SELECT temp AS celsius FROM '#' WHERE celsius > 0")
    assert rule.evaluate(message()) is None


# --- payloads that are not JSON objects ------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x01\xfe binary",  # not UTF-8
        b"80",  # JSON, but not an object
        b"[1, 2]",  # an array is not an object either
        b"",  # empty
    ],
)
def test_select_star_forwards_a_non_object_payload_unchanged(payload):
    result = Rule.parse("SELECT * FROM 'devices/#'").evaluate(message(payload))
    assert result is not None and result.payload == payload and result.values is None


def test_fields_of_a_binary_payload_are_undefined():
    ctx = message(b"\x00binary")
    assert Rule.parse("SELECT * FROM '#' WHERE temp > 0").evaluate(ctx) is None
    result = Rule.parse("SELECT temp, topic(2) AS device FROM '#'").evaluate(ctx)
    assert result is not None and result.values == {"device": "dev-1"}


def test_a_binary_payload_can_be_forwarded_base64_encoded():
    ctx = message(b"\x00\xffraw")
    result = Rule.parse("SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM '#'").evaluate(ctx)
    assert result is not None
    assert result.values == {"data": base64.b64encode(b"\x00\xffraw").decode(), "ts": NOW_MS}


def test_a_text_payload_can_be_decoded_into_a_value():
    value = "decode(encode(*, 'base64'), 'base64')"  # the AWS example for a text payload
    sql = f"SELECT {value} AS value FROM '#' WHERE {value} > 50"
    result = Rule.parse(sql).evaluate(message(b"80"))
    assert result is not None and result.payload == b'{"value":80}'


def test_star_beside_other_items_needs_a_json_object_payload():
    rule = Rule.parse("SELECT *, topic() AS topic FROM '#'")
    with pytest.raises(RuleEvaluationError, match="needs a JSON object payload"):
        rule.evaluate(message(b"\x00binary"))
    result = rule.evaluate(message(b""))  # an empty payload counts as {}
    assert result is not None and result.values == {"topic": TOPIC}


def test_raw_bytes_under_an_alias_cannot_be_serialized():
    with pytest.raises(RuleEvaluationError, match="JSON cannot hold"):
        Rule.parse("SELECT * AS raw FROM '#'").evaluate(message(b"\x00binary"))


# --- malformed SQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("", "character 1: expected SELECT but found the end of the input"),  # nothing at all
        ("SELECT FROM 'a'", "character 8: expected an expression but found 'FROM'"),  # empty select list
        ("SELECT temp 'a'", "character 13: expected FROM but found \"'a'\""),  # FROM forgotten
        ("SELECT temp FROM a/b", "expected a topic filter in quotes after FROM"),  # unquoted topic
        ("SELECT temp FROM 'a/#/b'", "'a/#/b' is not a valid MQTT topic filter"),  # # must be last
        ("SELECT temp FROM 'a/b+'", "'a/b\\+' is not a valid MQTT topic filter"),  # + must fill a level
        ("SELECT temp FROM ''", "'' is not a valid MQTT topic filter"),  # empty filter
        ("SELECT temp FROM 'a/b", "found an unterminated string"),  # quote not closed
        ("SELECT tpoic() FROM 'a'", "character 8: unknown function tpoic\\(\\)"),  # typo in a function
        ("SELECT topic(1, 2) FROM 'a'", "topic\\(\\) takes 0 to 1 argument\\(s\\), not 2"),  # too many arguments
        ("SELECT temp AS FROM 'a'", "expected a name after AS but found 'FROM'"),  # alias forgotten
        ("SELECT temp FROM 'a' WHERE", "expected an expression but found the end of the input"),  # no condition
        ("SELECT temp FROM 'a' WHERE (temp > 1", "expected '\\)' but found the end of the input"),  # unbalanced
        ("SELECT temp FROM 'a' WHERE temp > 1 x", "unexpected 'x' after the WHERE condition"),  # trailing text
        ("SELECT temp FROM 'a' WHERE temp IS 1", "expected NULL but found '1'"),  # IS takes only NULL
        ("SELECT a.'b' FROM 'a'", "expected a field name after '.' but found \"'b'\""),  # quoted member
        ("SELECT temp FROM 'a' WHERE temp @ 1", "unexpected '@' after the WHERE condition"),  # unknown operator
        ("SELECT temp FROM 'a' WHERE readings = [1]", "expected an expression but found '\\['"),  # no array literals
    ],
)
def test_malformed_sql_is_refused_with_the_problem_and_its_position(sql, problem):
    with pytest.raises(InvalidRuleSqlError, match=problem):
        Rule.parse(sql)


def test_sql_errors_are_one_sentence_usage_errors_of_the_kit():
    with pytest.raises(InvalidInputError) as caught:
        Rule.parse("SELECT")
    assert (
        str(caught.value) == "Invalid rule SQL at character 7: expected an expression but found the end of the input."
    )
    assert caught.value.exit_code is ExitStatus.USAGE and caught.value.position == 6
