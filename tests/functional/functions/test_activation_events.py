"""The activation Lambda's event validation: the registration event's variants pass, anything else is rejected."""

from __future__ import annotations

import json

import pytest

from tests.functional.functions.test_activation import EVENTS, app, decisions

MALFORMED = json.loads((EVENTS / "jitr_registration_malformed.json").read_text())
CONFIG = app.Config(ca_certificate_id="00" * 31 + "ca", policy_name="jitr-device-policy")


class NoAws:
    """Clients that fail the test if the function reaches for AWS."""

    @property
    def iot(self):
        raise AssertionError("a rejected event must not reach AWS")

    ssm = iot


def test_there_are_at_least_ten_malformed_samples():
    assert len(MALFORMED) >= 10


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_event_is_rejected_and_logged_without_calling_aws(case, capsys):
    result = app.handle(MALFORMED[case]["event"], config=CONFIG, clients=NoAws())
    assert result["outcome"] == "rejected"
    [line] = decisions(capsys)
    assert line["decision"] == "rejected" and line["level"] == "warning"
    assert MALFORMED[case]["reason"] in line["reason"], line["reason"]


@pytest.mark.parametrize(
    "name",
    [
        "jitr_registration.json",
        "jitr_registration_string_timestamp.json",
        "jitr_registration_null_timestamp_source_ip.json",
    ],
)
def test_the_documented_variants_of_the_event_are_accepted(name):
    event = app.parse_event(json.loads((EVENTS / name).read_text()))
    assert event.certificate_id == "0" * 63 + "1" and event.timestamp == 1795348800000


def test_a_missing_registration_timestamp_and_unknown_fields_are_tolerated():
    event = json.loads((EVENTS / "jitr_registration.json").read_text())
    del event["certificateRegistrationTimestamp"]
    assert app.parse_event(event | {"eventType": "REGISTERED"}).account_id == "123456789012"


def test_a_log_line_is_one_json_object_even_for_hostile_input(capsys):
    event = {"certificateId": 'x\n{"decision": "activated"}' * 10}
    app.handle(event, config=CONFIG, clients=NoAws())
    [line] = decisions(capsys)
    assert line["decision"] == "rejected" and len(line["certificateId"]) == 64


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"POLICY_NAME": "p"}, "CA_CERTIFICATE_ID"),
        ({"CA_CERTIFICATE_ID": "ab" * 32}, "POLICY_NAME"),
        ({"CA_CERTIFICATE_ID": "ab" * 32, "POLICY_NAME": "p", "MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS"),
        ({"CA_CERTIFICATE_ID": "ab" * 32, "POLICY_NAME": "p", "MAX_ATTEMPTS": "many"}, "MAX_ATTEMPTS"),
    ],
)
def test_configuration_problems_are_named(env, problem):
    with pytest.raises(app.ConfigurationError, match=problem):
        app.Config.from_env(env)


def test_configuration_from_the_environment():
    env = {"CA_CERTIFICATE_ID": "AB" * 32, "POLICY_NAME": "p", "FLEET_PARAMETER_NAME": "", "MAX_ATTEMPTS": "3"}
    assert app.Config.from_env(env) == app.Config("ab" * 32, "p", None, 3)
