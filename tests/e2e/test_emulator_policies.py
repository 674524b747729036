"""IoT policies on Connect, Publish, Subscribe and Receive, with the stack's least-privilege device policy.

The fleet (a registered CA, the deployed stack, dev-1 and dev-2 enrolled) is made once for the module and
the tests leave it as they found it: each adds only its own policies and things, and looks only at the
archive objects that appeared while it ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.conftest import Jitr
from tests.e2e.conftest import (
    NOT_AUTHORIZED,
    Device,
    create_rule,
    deploy_stack,
    enroll,
    log_action,
    logged,
    mint,
    register_ca,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
DENIED = 0x80  # SUBACK failure


@dataclass
class Fleet:
    """Two things, dev-1 and dev-2, each with its certificate ACTIVE and the stack's device policy."""

    emulator: object
    aws: boto3.Session
    jitr: Jitr
    pki: Path
    devices: dict[str, Device]
    bucket: str

    def archived(self) -> dict[str, dict]:
        """The archive bucket's objects: key -> JSON body."""
        s3 = self.aws.client("s3")
        contents = s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: json.loads(s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()) for o in contents}

    def archived_since(self, before: dict, count: int) -> dict[str, dict]:
        """Wait for ``count`` objects more than ``before``; the new ones."""
        now = wait_for(lambda: len(found := self.archived()) >= len(before) + count and found)
        return {key: body for key, body in now.items() if key not in before}


@pytest.fixture(scope="module")
def fleet(local_iot, tmp_path_factory) -> Fleet:
    local_iot.api.reset()
    aws, jitr = boto3.Session(region_name=local_iot.info()["region"]), Jitr()
    pki = tmp_path_factory.mktemp("fleet") / "pki"
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--intermediate").exit_code == 0
    stack = deploy_stack(aws, register_ca(jitr, pki))
    devices = {}
    for thing in ("dev-1", "dev-2"):
        chain, key = mint(jitr, pki, thing)
        enroll(aws, chain, thing, stack["outputs"]["DevicePolicyName"])  # as the activation Lambda would
        devices[thing] = Device(local_iot, chain, key, thing)
    return Fleet(local_iot, aws, jitr, pki, devices, stack["outputs"]["ArchiveBucketName"])


def test_a_device_publishes_and_subscribes_on_its_own_topics(fleet):
    before = fleet.archived()
    dev1 = fleet.devices["dev-1"].session()
    assert dev1.subscribe("devices/jitr-test/dev-1/#") == [1]
    dev1.publish("devices/jitr-test/dev-1/telemetry", {"temperature": 20})
    assert dev1.received() == ("devices/jitr-test/dev-1/telemetry", {"temperature": 20})
    (key,) = fleet.archived_since(before, 1)
    assert key.startswith("devices/jitr-test/dev-1/telemetry/")
    dev1.close()


def test_a_publish_to_another_things_topic_disconnects_the_device_and_reaches_no_one(fleet):
    sql = "SELECT clientId, disconnectReason FROM '$aws/events/presence/disconnected/+'"
    create_rule(fleet.aws, "disconnects", sql, [log_action("/test/disconnects")])
    before = fleet.archived()
    dev2 = fleet.devices["dev-2"].session()
    assert dev2.subscribe("devices/jitr-test/dev-2/#") == [1]
    dev1 = fleet.devices["dev-1"].session()
    forged = dev1.send("devices/jitr-test/dev-2/telemetry", {"forged": True})
    assert dev1.disconnected.wait(10)
    assert not forged.is_published()  # closed without a PUBACK, as AWS IoT does: the client cannot think it delivered
    dev2.publish(
        "devices/jitr-test/dev-2/telemetry", {"genuine": True}
    )  # events run in order: the forgery would come first
    assert dev2.received() == ("devices/jitr-test/dev-2/telemetry", {"genuine": True})
    assert dev2.received_nothing()
    (body,) = fleet.archived_since(before, 1).values()
    assert body == {"genuine": True}  # no rule saw the forgery
    denied = {"clientId": "dev-1", "disconnectReason": "AUTHORIZATION_ERROR"}  # among earlier tests' disconnects
    wait_for(lambda: denied in logged(fleet.emulator, "/test/disconnects"))
    dev2.close()
    dev1.close()


def test_a_device_cannot_subscribe_to_another_things_topics_or_to_everything(fleet):
    dev1 = fleet.devices["dev-1"].session()
    codes = dev1.subscribe(
        "devices/jitr-test/dev-2/#", "#", "devices/jitr-test/+/telemetry", "devices/jitr-test/dev-1/#"
    )
    assert codes == [DENIED, DENIED, DENIED, 1]  # each filter decided on its own
    assert not dev1.disconnected.is_set()  # a refused subscription does not end the connection
    dev1.close()


@pytest.mark.parametrize(
    "client_id",
    [
        "dev-2",  # another thing's name
        "dev-1-debug",  # a name no thing has
    ],
)
def test_a_device_cannot_connect_with_a_client_id_other_than_its_thing_name(fleet, client_id):
    own = fleet.devices["dev-1"]
    impostor = Device(fleet.emulator, own.chain, own.key, client_id)
    assert impostor.connect_once() == (NOT_AUTHORIZED, None)
    client, history = own.connect_until_accepted()
    assert history == [0]
    client.disconnect()


MONITOR_POLICIES = {
    # allowed to subscribe to every device's topics, but to receive only dev-1's: default deny does the rest
    "no-receive-for-dev-2": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/devices/*"},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/devices/jitr-test/dev-1/*"},
    ],
    # allowed to receive everything, except dev-2's topics: the explicit deny wins
    "explicit-deny-for-dev-2": [
        {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"], "Resource": "*"},
        {"Effect": "Deny", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/devices/jitr-test/dev-2/*"},
    ],
}


@pytest.mark.parametrize("name", MONITOR_POLICIES)
def test_a_subscriber_receives_only_what_its_policy_lets_it_receive(fleet, name):
    document = {"Version": "2012-10-17", "Statement": MONITOR_POLICIES[name]}
    fleet.aws.client("iot").create_policy(policyName=name, policyDocument=json.dumps(document))
    thing = f"monitor-{name}"
    chain, key = mint(fleet.jitr, fleet.pki, thing)
    enroll(fleet.aws, chain, thing, name)
    before = fleet.archived()
    monitor = Device(fleet.emulator, chain, key, thing).session()
    assert monitor.subscribe("devices/jitr-test/+/telemetry") == [1]
    for sender in ("dev-2", "dev-1"):  # dev-2 first: what it sends would arrive first
        session = fleet.devices[sender].session()
        session.publish(f"devices/jitr-test/{sender}/telemetry", {"from": sender})
        session.close()
    assert monitor.received() == ("devices/jitr-test/dev-1/telemetry", {"from": "dev-1"})
    assert monitor.received_nothing()
    assert len(fleet.archived_since(before, 2)) == 2  # the rules saw both
    monitor.close()
