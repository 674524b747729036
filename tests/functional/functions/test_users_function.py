"""The users function's own rules, without the stack: who the caller is, what the credentials allow, and
the refusals that need no AWS call (the routes against the emulator are in tests/e2e/test_users.py)."""

from __future__ import annotations

import json

import pytest

from tests.functional.functions.loading import load_function

users = load_function("provisioning", "users")
ENV = {
    "BINDINGS_TABLE": "bindings",
    "FLEET_TABLE": "fleet",
    "USER_DEVICE_ROLE_ARN": "arn:aws:iam::123456789012:role/stack-UserDeviceRole-1",
    "TOPIC_ROOT": "devices/stack",
    "AWS_REGION": "eu-central-1",
    "ARCHIVE_BUCKET": "archive",
    "PRESENCE_TABLE": "presence",
}


class Context:
    aws_request_id = "request-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def event(route: str, sub: str | None = "user-1", body: str | None = None, thing: str | None = None) -> dict:
    context = {"authorizer": {"jwt": {"claims": {"sub": sub}}}} if sub else {}
    return {"routeKey": route, "requestContext": context, "body": body, "pathParameters": {"thing": thing}}


def answer(result: dict) -> tuple[int, dict]:
    return result["statusCode"], json.loads(result["body"])


def test_the_session_policy_allows_the_users_client_ids_and_each_devices_topics_only():
    config = users.Config.from_env(ENV)
    policy = users.session_policy(config, "user-1", ["dev-a", "dev-b"])
    arn = "arn:aws:iot:*:*"  # region and account: the role's policy pins them (the rights are the intersection)
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/user-1-*"},
        {
            "Effect": "Allow",
            "Action": ["iot:Subscribe", "iot:Receive"],
            "Resource": [f"{arn}:topicfilter/devices/stack/{t}/telemetry" for t in ("dev-a", "dev-b")]
            + [f"{arn}:topic/devices/stack/{t}/telemetry" for t in ("dev-a", "dev-b")],
        },
        {
            "Effect": "Allow",
            "Action": "iot:Publish",
            "Resource": [f"{arn}:topic/devices/stack/{t}/commands/*" for t in ("dev-a", "dev-b")],
        },
    ]
    # eight devices of usual names fit a session policy (2,048 characters); eight of 128 characters do not,
    # which the function answers with 400 rather than letting STS refuse it
    longest = ["x" * 128 for _ in range(users.MAX_THINGS)]
    assert len(json.dumps(users.session_policy(config, "u" * 36, longest), separators=(",", ":"))) > 2048
    typical = [f"sensor-{n:06d}" for n in range(users.MAX_THINGS)]
    assert len(json.dumps(users.session_policy(config, "u" * 36, typical), separators=(",", ":"))) <= 2048


def test_a_request_without_the_authorizers_subject_is_401(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    result = users.lambda_handler(event("GET /bindings", sub=None), Context())
    assert answer(result) == (401, {"message": "Unauthorized"})


@pytest.mark.parametrize(
    ("route", "body", "thing", "message"),
    [
        ("POST /bindings", '{"thingName": "dev-a"}', None, "code must be the binding code"),  # no code
        ("POST /bindings", '{"thingName": "a/b", "code": "AAAA"}', None, "A thing name is"),  # not a thing name
        ("POST /bindings", "[1]", None, "must be a JSON object"),
        ("POST /credentials", '{"things": "dev-a"}', None, "things must be a non-empty list"),
        ("GET /devices/{thing}/registration", None, "bad name!", "A thing name is"),
        ("GET /devices/{thing}/telemetry", None, "bad name!", "A thing name is"),
    ],
)
def test_malformed_requests_are_400_before_any_aws_call(monkeypatch, route, body, thing, message):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(users, "_clients", None)  # any AWS call would fail loudly
    status, answered = answer(users.lambda_handler(event(route, body=body, thing=thing), Context()))
    assert status == 400 and message in answered["message"]


def test_a_missing_setting_is_a_500_that_says_nothing_of_it_to_the_caller(monkeypatch, capsys):
    monkeypatch.delenv("BINDINGS_TABLE", raising=False)
    status, answered = answer(users.lambda_handler(event("GET /bindings"), Context()))
    assert (status, answered) == (500, {"message": "The request failed; try again later."})
    assert "BINDINGS_TABLE" in capsys.readouterr().out  # the operator reads it in the log
