"""The activation function's claim per certificate (CLAIMS_TABLE): a repeated registration event costs no
IoT call, a refused or failed activation gives its claim up, and a claim left by an invocation that died
is taken over once its lease has passed, so every device ends ACTIVE with one thing and one policy."""

from __future__ import annotations

import time
from dataclasses import replace

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.functional.functions.test_activation import (
    FLEET,
    POLICY,
    Wrapped,
    app,
    assert_activated,
    aws,  # noqa: F401  # the fixtures, shared
    stack,  # noqa: F401
)

TABLE = "claims"


@pytest.fixture
def claimed(stack):  # noqa: F811
    """The stack with its claim table, as sam/template.yaml makes it."""
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "certificateId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "certificateId", "KeyType": "HASH"}],
    )
    stack.config = replace(stack.config, claims_table=TABLE)
    stack.dynamodb = dynamodb
    return stack


def handle(kit, event, *, iot=None, request_id: str = "req-1", dynamodb=None, config=None):
    clients = app.Clients(iot=iot or kit.iot, ssm=kit.ssm, dynamodb=dynamodb or kit.dynamodb)
    call = app.Retrier(kit.config.max_attempts, sleep=lambda _seconds: None)
    return app.handle(event, config=config or kit.config, clients=clients, call=call, request_id=request_id)


def claim_of(kit, certificate_id: str) -> dict | None:
    return kit.dynamodb.get_item(TableName=TABLE, Key={"certificateId": {"S": certificate_id}}).get("Item")


def test_a_repeated_event_while_the_claim_is_held_makes_no_iot_call(claimed):
    certificate_id, arn = claimed.device("dev-1")
    first = handle(claimed, claimed.event(certificate_id), request_id="first")
    counted = Wrapped(claimed.iot, {})

    again = handle(claimed, claimed.event(certificate_id), iot=counted, request_id="second")

    assert first["outcome"] == "activated" and again["outcome"] == "duplicate"
    assert counted.calls == []
    assert_activated(claimed, certificate_id, arn)
    item = claim_of(claimed, certificate_id)
    assert item is not None and item["owner"]["S"] == "first"
    assert int(item["leaseUntil"]["N"]) == int(item["expiresAt"]["N"]) > time.time()  # the TTL removes it later


def test_a_refused_device_gives_its_claim_up_so_its_next_connect_is_decided_afresh(claimed):
    claimed.ssm.put_parameter(Name=FLEET, Value="someone-else", Type="String")
    config = replace(claimed.config, fleet_parameter_name=FLEET)
    certificate_id, arn = claimed.device("dev-1")

    refused = handle(claimed, claimed.event(certificate_id), config=config)
    assert refused["outcome"] == "refused" and claim_of(claimed, certificate_id) is None
    claimed.ssm.put_parameter(Name=FLEET, Value="dev-1", Type="String", Overwrite=True)  # the operator admits it
    admitted = handle(claimed, claimed.event(certificate_id), config=config, request_id="req-2")

    assert admitted["outcome"] == "activated"
    assert_activated(claimed, certificate_id, arn)


def test_an_activation_that_fails_releases_its_claim_and_the_next_event_activates(claimed):
    certificate_id, arn = claimed.device("dev-1")
    failing = Wrapped(claimed.iot, {"attach_policy": 1}, code="InvalidRequestException")  # not retried

    with pytest.raises(ClientError):
        handle(claimed, claimed.event(certificate_id), iot=failing)
    assert claim_of(claimed, certificate_id) is None

    assert handle(claimed, claimed.event(certificate_id), request_id="req-2")["outcome"] == "activated"
    assert_activated(claimed, certificate_id, arn)


class Died(BaseException):
    """The invocation's process ends here (a timeout, a crash): nothing after it runs, the claim stays."""


class DiesAt:
    """The IoT client of an invocation whose process ends right after ``step`` is done (``claim``: before
    its first IoT call)."""

    def __init__(self, client, step: str) -> None:
        self.client, self.step = client, step

    def __getattr__(self, name):
        target = getattr(self.client, name)

        def call(**kwargs):
            if self.step == "claim":
                raise Died(name)
            result = target(**kwargs)
            if name == self.step:
                raise Died(name)
            return result

        return call


@pytest.mark.parametrize(
    "step", ["claim", "create_thing", "attach_policy", "attach_thing_principal", "update_certificate"]
)
def test_a_claim_left_by_an_invocation_that_died_at_any_step_is_taken_over_after_its_lease(claimed, step, monkeypatch):
    certificate_id, arn = claimed.device("dev-1")
    with monkeypatch.context() as dead:
        dead.setattr(app.Claims, "release", lambda *args: None)  # a dead process releases nothing
        with pytest.raises(Died):
            handle(claimed, claimed.event(certificate_id), iot=DiesAt(claimed.iot, step), request_id="dead")
    assert claim_of(claimed, certificate_id)["owner"]["S"] == "dead"

    during = handle(claimed, claimed.event(certificate_id), request_id="during-lease")
    assert during["outcome"] == "duplicate"  # the lease is fresh: the device's reconnect waits
    claimed.dynamodb.update_item(  # the lease runs out
        TableName=TABLE,
        Key={"certificateId": {"S": certificate_id}},
        UpdateExpression="SET leaseUntil = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    after = handle(claimed, claimed.event(certificate_id), request_id="after-lease")

    assert after["outcome"] == ("already-active" if step == "update_certificate" else "activated")
    assert_activated(claimed, certificate_id, arn)  # ACTIVE, one thing, one principal, one policy


def test_lambdas_retry_of_an_invocation_that_timed_out_takes_its_claim_over_at_once(claimed, monkeypatch):
    certificate_id, arn = claimed.device("dev-1")
    with monkeypatch.context() as dead:
        dead.setattr(app.Claims, "release", lambda *args: None)
        with pytest.raises(Died):
            handle(claimed, claimed.event(certificate_id), iot=DiesAt(claimed.iot, "attach_policy"), request_id="r-1")

    retried = handle(claimed, claimed.event(certificate_id), request_id="r-1")  # the same request id, lease fresh

    assert retried["outcome"] == "activated"
    assert_activated(claimed, certificate_id, arn)


def test_a_throttled_claim_write_is_retried_like_any_aws_call(claimed):
    certificate_id, arn = claimed.device("dev-1")
    dynamodb = Wrapped(claimed.dynamodb, {"put_item": 2}, code="ProvisionedThroughputExceededException")

    assert handle(claimed, claimed.event(certificate_id), dynamodb=dynamodb)["outcome"] == "activated"
    assert dynamodb.calls.count("put_item") == 3
    assert_activated(claimed, certificate_id, arn)


def test_a_lease_that_is_not_a_positive_number_is_a_configuration_error():
    env = {"CA_CERTIFICATE_ID": "a" * 64, "POLICY_NAME": POLICY, "CLAIMS_TABLE": TABLE}
    with pytest.raises(app.ConfigurationError, match="CLAIM_LEASE_SECONDS must be a positive whole number"):
        app.Config.from_env(env | {"CLAIM_LEASE_SECONDS": "0"})
    assert app.Config.from_env(env).claims_table == TABLE and app.Config.from_env(env).claim_lease_seconds == 90
