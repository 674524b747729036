"""The rules engine over real device messages: S3 keys, SQL filtering, $aws topics, errorAction, Lambda permission."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import (
    JITP_ROLE,
    Device,
    certificate_id_of,
    create_function,
    create_rule,
    deploy_stack,
    log_action,
    logged,
    mint,
    register_ca,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
TELEMETRY = "devices/dev-1/telemetry"


@dataclass
class Provisioned:
    ca_id: str
    cert_id: str
    device: Device


@pytest.fixture
def provisioned(jitr, pki, emulator) -> Provisioned:
    """dev-1 of a JITP CA: its first connect provisions it with the kit's device policy."""
    ca_id = register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-1")
    return Provisioned(ca_id, certificate_id_of(chain), Device(emulator, chain, key, "dev-1"))


@pytest.fixture
def dev1(provisioned):
    session = provisioned.device.session()
    yield session
    session.close()


def objects(s3, bucket: str) -> dict[str, dict]:
    contents = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in contents}


def s3_action(bucket: str, key: str) -> dict:
    return {"s3": {"bucketName": bucket, "key": key, "roleArn": "arn:aws:iam::123456789012:role/RuleRole"}}


# -- S3 keys from substitution templates ---------------------------------------------------------------


def test_the_archive_rule_gives_each_message_of_a_burst_its_own_timestamped_key(jitr, pki, emulator, aws):
    # JITP for the stack: the template's policy lets dev-1 publish under the stack's topic root
    ca_id = register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE, "--topic-root", "devices/jitr-test")
    bucket = deploy_stack(aws, ca_id)["outputs"]["ArchiveBucketName"]
    dev1 = Device(emulator, *mint(jitr, pki, "dev-1"), "dev-1").session()
    telemetry = "devices/jitr-test/dev-1/telemetry"
    for n in range(5):  # well within one millisecond of each other for some: the uuid keeps them apart
        dev1.send(telemetry, {"n": n})
    archived = wait_for(lambda: len(objects(aws.client("s3"), bucket)) == 5 and objects(aws.client("s3"), bucket))
    dev1.close()
    assert all(re.fullmatch(rf"{telemetry}/\d{{13}}_[0-9a-f-]{{36}}", key) for key in archived)
    assert sorted(body["n"] for body in archived.values()) == [0, 1, 2, 3, 4]


def test_a_key_template_with_topic_segments_and_client_id_names_one_object_per_device(dev1, aws):
    aws.client("s3").create_bucket(Bucket="latest")
    create_rule(
        aws, "latest", "SELECT * FROM 'devices/+/telemetry'", [s3_action("latest", "${topic(2)}/${clientid()}.json")]
    )
    dev1.publish(TELEMETRY, {"n": 1})
    dev1.publish(TELEMETRY, {"n": 2})
    wait_for(lambda: objects(aws.client("s3"), "latest").get("dev-1/dev-1.json") == {"n": 2})
    assert list(objects(aws.client("s3"), "latest")) == ["dev-1/dev-1.json"]  # the same key: overwritten


# -- SQL ----------------------------------------------------------------------------------------------------


def test_where_filters_messages_and_select_shapes_what_the_action_gets(provisioned, dev1, aws, emulator):
    sql = (
        "SELECT temperature, topic(2) AS device, clientid() AS client, principal() AS principal "
        "FROM 'devices/+/telemetry' WHERE temperature > 30"
    )
    create_rule(aws, "hot", sql, [log_action("/test/hot")])
    dev1.publish(TELEMETRY, {"temperature": 25, "humidity": 40})
    dev1.publish(TELEMETRY, {"temperature": 35, "humidity": 41})
    (hot,) = wait_for(lambda: logged(emulator, "/test/hot"))  # rules run in order: 25 was decided before 35
    assert hot == {"temperature": 35, "device": "dev-1", "client": "dev-1", "principal": provisioned.cert_id}


def test_a_rule_on_hash_does_not_see_aws_events_but_a_rule_on_the_event_topic_does(provisioned, aws, emulator):
    create_rule(aws, "everything", "SELECT topic() AS topic FROM '#'", [log_action("/test/everything")])
    create_rule(aws, "connected", "SELECT clientId FROM '$aws/events/presence/connected/+'", [log_action("/test/on")])
    dev1 = provisioned.device.session()
    dev1.publish(TELEMETRY, {"n": 1})
    assert wait_for(lambda: logged(emulator, "/test/everything")) == [{"topic": TELEMETRY}]
    assert logged(emulator, "/test/on") == [{"clientId": "dev-1"}]  # published on connect, before the message
    dev1.close()


# -- errorAction ----------------------------------------------------------------------------------------------


def assert_error_payload(payload: dict, rule: str, sent: dict, action: str, resource: str) -> None:
    """AWS's errorAction message: the rule, topic, client, original payload and each failed action."""
    assert payload["ruleName"] == rule and payload["topic"] == TELEMETRY and payload["clientId"] == "dev-1"
    assert json.loads(base64.b64decode(payload["base64OriginalPayload"])) == sent
    (failure,) = payload["failures"]
    assert failure["failedAction"] == action and failure["failedResource"] == resource
    assert failure["errorMessage"]


def test_an_s3_action_on_a_missing_bucket_sends_aws_error_payload_to_a_logs_error_action(dev1, aws, emulator):
    actions = [s3_action("no-such-bucket", "${topic()}/${newuuid()}")]
    create_rule(aws, "broken", "SELECT * FROM 'devices/+/telemetry'", actions, log_action("/test/errors"))
    dev1.publish(TELEMETRY, {"n": 1})
    (error,) = wait_for(lambda: logged(emulator, "/test/errors"))
    assert_error_payload(error, "broken", {"n": 1}, "S3Action", "no-such-bucket")


def test_an_s3_error_action_stores_the_error_payload_in_another_bucket(dev1, aws):
    aws.client("s3").create_bucket(Bucket="rule-errors")
    actions = [s3_action("no-such-bucket", "${topic()}/${newuuid()}")]
    error_action = s3_action("rule-errors", "${topic(2)}/${newuuid()}.json")
    create_rule(aws, "broken", "SELECT * FROM 'devices/+/telemetry'", actions, error_action)
    dev1.publish(TELEMETRY, {"n": 2})
    ((key, error),) = wait_for(lambda: objects(aws.client("s3"), "rule-errors")).items()
    assert key.startswith("dev-1/")
    assert_error_payload(error, "broken", {"n": 2}, "S3Action", "no-such-bucket")


# -- Lambda actions need iot.amazonaws.com's permission (pain point 4) --------------------------------------


def invocations_of(emulator, function_arn: str) -> list:
    return [i for i in list(emulator.lambdas.invocations) if i.function == function_arn]


@pytest.mark.parametrize(
    "source_arn",
    [
        None,  # no permission at all: the stack forgot AWS::Lambda::Permission
        "arn:aws:iot:us-east-1:123456789012:rule/another_rule",  # a permission for another rule only
    ],
    ids=["no-permission", "permission-for-another-rule"],
)
def test_a_lambda_action_iot_may_not_invoke_never_runs_and_goes_to_the_error_action(dev1, aws, emulator, source_arn):
    function = create_function(aws, "echo")
    if source_arn:
        aws.client("lambda").add_permission(
            FunctionName="echo",
            StatementId="iot",
            Action="lambda:InvokeFunction",
            Principal="iot.amazonaws.com",
            SourceArn=source_arn,
        )
    actions = [{"lambda": {"functionArn": function}}]
    create_rule(aws, "invoke", "SELECT * FROM 'devices/+/telemetry'", actions, log_action("/test/errors"))
    dev1.publish(TELEMETRY, {"n": 1})
    (error,) = wait_for(lambda: logged(emulator, "/test/errors"))
    assert_error_payload(error, "invoke", {"n": 1}, "LambdaAction", function)
    assert invocations_of(emulator, function) == []


@pytest.mark.parametrize(
    "source_arn",
    [
        "{rule}",  # this rule
        "arn:aws:iot:us-east-1:123456789012:rule/*",  # any rule of the account (ArnLike takes wildcards)
    ],
    ids=["this-rule", "any-rule"],
)
def test_a_lambda_action_runs_the_function_once_iot_may_invoke_it(dev1, aws, emulator, source_arn):
    function = create_function(aws, "echo")
    actions = [{"lambda": {"functionArn": function}}]
    rule = create_rule(aws, "invoke", "SELECT * FROM 'devices/+/telemetry'", actions, log_action("/test/errors"))
    aws.client("lambda").add_permission(
        FunctionName="echo",
        StatementId="iot",
        Action="lambda:InvokeFunction",
        Principal="iot.amazonaws.com",
        SourceArn=source_arn.format(rule=rule),
    )
    dev1.publish(TELEMETRY, {"n": 1})
    (invocation,) = wait_for(lambda: invocations_of(emulator, function))
    assert invocation.result == {"n": 1} and invocation.attempts == 1
    assert logged(emulator, "/test/errors") == []
