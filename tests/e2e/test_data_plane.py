"""`aws iot-data publish` (the data plane's HTTP Publish) delivers like a device's publish: subscribers and rules."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import JITP_ROLE, Device, create_rule, mint, register_ca, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def subscriber(jitr, pki, emulator):
    """dev-1 of a JITP CA, connected and subscribed to its own topics (the kit's device policy)."""
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    session = Device(emulator, *mint(jitr, pki, "dev-1"), "dev-1").session()
    assert session.subscribe("devices/dev-1/#") == [1]
    yield session
    session.close()


def data_client(aws, emulator):
    return aws.client("iot-data", endpoint_url=emulator.info()["aws_endpoint_url"])


def test_an_http_publish_reaches_the_subscriber_and_the_rules(aws, emulator, subscriber):
    aws.client("s3").create_bucket(Bucket="http-archive")
    action = {"s3": {"bucketName": "http-archive", "key": "${topic()}", "roleArn": "arn:aws:iam::123456789012:role/r"}}
    create_rule(aws, "http_archive", "SELECT * FROM 'devices/+/commands'", [action])
    answer = data_client(aws, emulator).publish(topic="devices/dev-1/commands", qos=1, payload=b'{"blink": 3}')
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert subscriber.received() == ("devices/dev-1/commands", {"blink": 3})
    s3 = aws.client("s3")
    wait_for(lambda: s3.list_objects_v2(Bucket="http-archive").get("KeyCount"))
    body = s3.get_object(Bucket="http-archive", Key="devices/dev-1/commands")["Body"].read()
    assert json.loads(body) == {"blink": 3}


def test_a_subscriber_whose_policy_denies_receive_gets_nothing_from_an_http_publish(aws, emulator, subscriber):
    data_client(aws, emulator).publish(topic="devices/dev-2/commands", payload=b"{}")  # dev-1 may not receive it
    data_client(aws, emulator).publish(topic="devices/dev-1/commands", payload=b'{"n": 1}')
    assert subscriber.received() == ("devices/dev-1/commands", {"n": 1})
    assert subscriber.received_nothing()


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("$aws/events/presence/connected/dev-1", b"{}", "ForbiddenException"),  # only AWS IoT publishes there
        ("devices/dev-1/big", b"x" * (128 * 1024 + 1), "RequestEntityTooLargeException"),
    ],
    ids=["reserved-topic", "too-large"],
)
def test_an_http_publish_aws_refuses_is_refused_with_its_error_code(aws, emulator, topic, payload, code):
    with pytest.raises(ClientError) as raised:
        data_client(aws, emulator).publish(topic=topic, payload=payload)
    assert raised.value.response["Error"]["Code"] == code


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_publishes_through_the_emulator(emulator, subscriber, tmp_path):
    env = {"PATH": "/usr/bin:/bin:" + str(shutil.which("aws")).rsplit("/", 1)[0], "HOME": str(tmp_path)}
    env |= emulator.environment()
    command = ["aws", "iot-data", "publish", "--topic", "devices/dev-1/commands"]
    version = subprocess.run(["aws", "--version"], env=env, capture_output=True, text=True, timeout=60)
    if "aws-cli/2" in version.stdout + version.stderr:  # v2 reads blobs as base64 unless told otherwise
        command += ["--cli-binary-format", "raw-in-base64-out"]
    done = subprocess.run(
        [*command, "--payload", '{"from": "cli"}'], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert subscriber.received() == ("devices/dev-1/commands", {"from": "cli"})
