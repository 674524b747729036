"""functions/rotation against the emulator's AWS API: the hook allows only a thing's own ACTIVE certificate of
this stack, and the retire handler retires only another certificate of the same thing, for its ACTIVE one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.functions.loading import load_function
from tests.functional.functions.provisioning_stack import Failing

POLICY = "rot-test-device-policy"


app: Any = load_function("rotation")


@pytest.fixture
def iot(fresh_iot, monkeypatch):
    client = fresh_iot
    client.create_policy(policyName=POLICY, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    monkeypatch.setenv(app.ENV_POLICY_NAME, POLICY)
    monkeypatch.setattr(app, "_client", client)
    return client


def device(iot, thing: str, *, policy: bool = True, status: bool = True) -> dict:
    """A certificate attached to ``thing`` (created if need be), with the stack's policy unless told not to."""
    made = iot.create_keys_and_certificate(setAsActive=status)
    if thing not in [t["thingName"] for t in iot.list_things()["things"]]:
        iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
    if policy:
        iot.attach_policy(policyName=POLICY, target=made["certificateArn"])
    return made


def hook_event(requester: str, thing: Any) -> dict:
    return {
        "claimCertificateId": requester,
        "certificateId": "c" * 64,
        "certificatePem": "",
        "templateArn": "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/rotate",
        "clientId": "x",
        "parameters": {"ThingName": thing} if thing is not None else {},
    }


def test_the_hook_allows_the_things_own_active_certificate(iot):
    own = device(iot, "sensor-1")
    assert app.hook_handler(hook_event(own["certificateId"], "sensor-1")) == {"allowProvisioning": True}


@pytest.mark.parametrize(
    "case",
    ["another-thing", "inactive", "not-this-stack", "no-thing-name", "bad-thing-name", "unknown-certificate", "junk"],
)
def test_the_hook_refuses_everything_else(iot, case):
    device(iot, "sensor-1")
    other = device(iot, "sensor-2")
    inactive = device(iot, "sensor-3", status=False)
    foreign = device(iot, "sensor-4", policy=False)
    event = {
        "another-thing": hook_event(other["certificateId"], "sensor-1"),
        "inactive": hook_event(inactive["certificateId"], "sensor-3"),
        "not-this-stack": hook_event(foreign["certificateId"], "sensor-4"),
        "no-thing-name": hook_event(other["certificateId"], None),
        "bad-thing-name": hook_event(other["certificateId"], "sensor 2/#"),
        "unknown-certificate": hook_event("d" * 64, "sensor-2"),
        "junk": ["not", "an", "event"],
    }[case]
    assert app.hook_handler(event) == {"allowProvisioning": False}


def retire_event(thing: str, new: str, old: Any) -> dict:
    return {"thingName": thing, "principal": new, "retire": old}


def test_the_retire_handler_sets_the_old_certificate_inactive_then_detaches_it(iot):
    old = device(iot, "sensor-1")
    new = device(iot, "sensor-1")

    outcome = app.retire_handler(retire_event("sensor-1", new["certificateId"], old["certificateId"]))

    assert outcome["outcome"] == "retired"
    assert (
        iot.describe_certificate(certificateId=old["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    )
    assert iot.list_thing_principals(thingName="sensor-1")["principals"] == [new["certificateArn"]]


@pytest.mark.parametrize("case", ["itself", "other-things-certificate", "publisher-not-attached", "inactive-publisher",
                                  "no-old", "junk"])  # fmt: skip
def test_the_retire_handler_refuses_and_changes_nothing(iot, case):
    old = device(iot, "sensor-1")
    new = device(iot, "sensor-1")
    other = device(iot, "sensor-2")
    inactive = device(iot, "sensor-1", status=False)
    event = {
        "itself": retire_event("sensor-1", new["certificateId"], new["certificateId"]),
        "other-things-certificate": retire_event("sensor-1", new["certificateId"], other["certificateId"]),
        "publisher-not-attached": retire_event("sensor-1", other["certificateId"], old["certificateId"]),
        "inactive-publisher": retire_event("sensor-1", inactive["certificateId"], old["certificateId"]),
        "no-old": retire_event("sensor-1", new["certificateId"], None),
        "junk": "retire everything",
    }[case]
    before = sorted(iot.list_thing_principals(thingName="sensor-1")["principals"])

    assert app.retire_handler(event)["outcome"] == "refused"

    assert sorted(iot.list_thing_principals(thingName="sensor-1")["principals"]) == before
    for made in (old, new, other):
        assert iot.describe_certificate(certificateId=made["certificateId"])["certificateDescription"]["status"] == (
            "ACTIVE"
        )


def test_a_failing_update_raises_so_the_rule_retries_and_nothing_is_detached(iot, monkeypatch):
    old = device(iot, "sensor-1")
    new = device(iot, "sensor-1")
    monkeypatch.setattr(app, "_client", Failing(iot, {"update_certificate": "ThrottlingException"}))

    with pytest.raises(ClientError):
        app.retire_handler(retire_event("sensor-1", new["certificateId"], old["certificateId"]))

    assert len(iot.list_thing_principals(thingName="sensor-1")["principals"]) == 2
