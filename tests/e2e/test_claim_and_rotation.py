"""``jitr fleet claim`` and ``jitr device provision`` against a stack deployed in the emulator: the factory's
one step, then devices that ship with the claim certificate provisioning themselves and publishing into the
stack's archive; re-runs, a refusing hook, a takeover attempt and a bad template name. Then ``jitr fleet claim
--rotation`` and ``jitr device rotate``: the new certificate proved before the old one is retired, a device
that asks for another's thing refused by the stack's hook, a refused rotation leaving the old one working."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import boto3
import pytest

from base.keys import generate_key
from cloud.functions import allow_iot_hook
from device.client import open_session
from device.endpoint import parse_endpoint
from device.enroll import make_csr
from device.errors import ProvisioningRejectedError
from device.identity import identity_from_files
from device.provision import CREATE_FROM_CSR, Requests, provision_topic
from emulator.cloudformation.deploy import StackDeployer
from fleet.claim import rotation_policy
from tests.e2e.conftest import TEMPLATE, create_function, wait_for

pytestmark = pytest.mark.timeout(120)
STACK = "claim-e2e"
CA_ID = "b" * 64  # the stack's JITR half needs a CA id; provisioning by claim needs none
ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012"
HOOK = """
def lambda_handler(event, context):
    return {"allowProvisioning": event["parameters"].get("SerialNumber", "").startswith("ok-")}
"""


@pytest.fixture
def stack(emulator):
    return StackDeployer(boto3.Session(region_name="us-east-1")).deploy(TEMPLATE, STACK, {"CaCertificateId": CA_ID})


def claim(jitr, tmp_path, *extra: str):
    result = jitr("fleet", "claim", "--stack", STACK, "--template", "factory", "--out", tmp_path / "claim", "--json",
                  *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def provision(jitr, emulator, setup: dict, out, *args: str):
    info = emulator.info()
    return jitr(
        "device", "provision", "--claim-cert", setup["certificate"], "--claim-key", setup["key"],
        "--template", "factory", "--endpoint", f"localhost:{info['mqtt_port']}", "--root-ca", info["endpoint_ca"],
        "--out", out, "--json", *args,
    )  # fmt: skip


def test_claim_then_provision_a_device_that_publishes_into_the_stacks_archive(emulator, stack, jitr, tmp_path):
    setup = claim(jitr, tmp_path)
    assert setup["created"] == ["template", "policy", "certificate"]
    assert stat.S_IMODE((tmp_path / "claim" / "claim.private.key").stat().st_mode) == 0o600

    result = provision(jitr, emulator, setup, tmp_path / "devices", "--parameter", "SerialNumber=sensor-1", "--csr")

    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["thingName"] == "sensor-1" and done["proved"] == "published"
    assert done["deviceConfiguration"] == {"topicRoot": f"devices/{STACK}"}
    assert stat.S_IMODE((tmp_path / "devices" / "private" / "sensor-1.key").stat().st_mode) == 0o600
    iot = boto3.client("iot", region_name="us-east-1")
    assert iot.describe_thing(thingName="sensor-1")["attributes"] == {"provisioningStack": STACK}
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = wait_for(lambda: s3.list_objects_v2(Bucket=stack["outputs"]["ArchiveBucketName"]).get("Contents"))
    assert keys[0]["Key"].startswith(f"devices/{STACK}/sensor-1/telemetry/")

    again = claim(jitr, tmp_path)  # a re-run reuses everything
    assert again["created"] == [] and again["certificateId"] == setup["certificateId"]
    keys_made = provision(jitr, emulator, setup, tmp_path / "devices", "--parameter", "SerialNumber=sensor-2")
    assert keys_made.exit_code == 0, keys_made.output  # AWS IoT made the key this time


def test_a_claim_certificate_cannot_take_over_a_thing_that_exists(emulator, stack, jitr, tmp_path):
    setup = claim(jitr, tmp_path)
    assert provision(jitr, emulator, setup, tmp_path / "a", "--parameter", "SerialNumber=sensor-1").exit_code == 0

    second = provision(jitr, emulator, setup, tmp_path / "b", "--parameter", "SerialNumber=sensor-1")

    assert second.exit_code == 19, second.output
    assert "rejected the request" in second.output and "FAIL" in second.output
    iot = boto3.client("iot", region_name="us-east-1")
    assert len(iot.list_thing_principals(thingName="sensor-1")["principals"]) == 1
    assert not (tmp_path / "b" / "certs").exists()


def test_a_hook_decides_which_serials_provision(emulator, stack, jitr, tmp_path):
    create_function(boto3.Session(region_name="us-east-1"), "allow-ok", HOOK)
    setup = claim(jitr, tmp_path, "--hook", "allow-ok")
    assert setup["hook"].endswith(":function:allow-ok")

    assert provision(jitr, emulator, setup, tmp_path / "d", "--parameter", "SerialNumber=ok-1").exit_code == 0
    refused = provision(jitr, emulator, setup, tmp_path / "d", "--parameter", "SerialNumber=stranger")
    assert refused.exit_code == 19
    assert "403 AccessDenied" in refused.output and "refused" in refused.output


def test_a_missing_stack_or_a_bad_template_name_is_one_sentence_and_makes_nothing(emulator, jitr, tmp_path):
    missing = jitr("fleet", "claim", "--stack", "nope", "--template", "t", "--out", tmp_path / "c")
    assert missing.exit_code == 3 and "There is no stack nope" in missing.output
    bad = jitr("fleet", "claim", "--stack", STACK, "--template", "has space", "--out", tmp_path / "c")
    assert bad.exit_code == 2 and "Invalid template name" in bad.output
    assert not (tmp_path / "c").exists()
    assert boto3.client("iot", region_name="us-east-1").list_provisioning_templates()["templates"] == []


def claimed_device(jitr, emulator, tmp_path, serial: str) -> tuple[dict, str, str]:
    """A device provisioned by claim with a key of its own (its certificate's CN is its serial)."""
    setup = json.loads((tmp_path / "claim" / "claim.json").read_text()) if (tmp_path / "claim").exists() else None
    setup = claim(jitr, tmp_path) if setup is None else {**setup, **_claim_files(tmp_path)}
    result = provision(jitr, emulator, setup, tmp_path / "devices", "--parameter", f"SerialNumber={serial}", "--csr")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    return done, done["certificate"], done["key"]


def _claim_files(tmp_path) -> dict:
    folder = tmp_path / "claim"
    return {"certificate": str(folder / "claim.cert.pem"), "key": str(folder / "claim.private.key")}


def rotate(jitr, emulator, cert: str, key: str, out, *args: str, template: str = "rotate"):
    info = emulator.info()
    return jitr(
        "device", "rotate", "--cert", cert, "--key", key, "--template", template,
        "--endpoint", f"localhost:{info['mqtt_port']}", "--root-ca", info["endpoint_ca"], "--out", out, "--json",
        *args,
    )  # fmt: skip


def set_up_rotation(jitr) -> dict:
    result = jitr("fleet", "claim", "--stack", STACK, "--template", "rotate", "--rotation", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_device_rotates_its_certificate_and_the_old_one_is_retired_only_after_the_new_one_works(
    emulator, stack, jitr, tmp_path
):
    device, cert, key = claimed_device(jitr, emulator, tmp_path, "sensor-1")
    setup = set_up_rotation(jitr)
    assert setup["certificates"] == 1 and set(setup["created"]) == {"policy", "template"}

    result = rotate(jitr, emulator, cert, key, tmp_path / "rotated")

    assert result.exit_code == 0, result.output
    rotated = json.loads(result.stdout)
    assert rotated["oldRetired"] is True and rotated["oldCertificateId"] == device["certificateId"]
    iot = boto3.client("iot", region_name="us-east-1")
    old = iot.describe_certificate(certificateId=device["certificateId"])["certificateDescription"]
    new = iot.describe_certificate(certificateId=rotated["newCertificateId"])["certificateDescription"]
    assert (old["status"], new["status"]) == ("INACTIVE", "ACTIVE")
    assert iot.list_thing_principals(thingName="sensor-1")["principals"] == [new["certificateArn"]]
    assert stat.S_IMODE((tmp_path / "rotated" / "private" / "sensor-1.key").stat().st_mode) == 0o600
    again = rotate(jitr, emulator, rotated["certificate"], rotated["key"], tmp_path / "rotated-again")
    assert again.exit_code == 0, again.output  # the new certificate has the rotation policy: it can rotate too


def test_a_device_cannot_register_a_certificate_for_another_devices_thing(emulator, stack, jitr, tmp_path):
    claimed_device(jitr, emulator, tmp_path, "sensor-1")
    _, cert, key = claimed_device(jitr, emulator, tmp_path, "sensor-2")
    set_up_rotation(jitr)
    info = emulator.info()
    endpoint = parse_endpoint(f"localhost:{info['mqtt_port']}")
    connection = open_session(identity_from_files(Path(cert), Path(key)), endpoint, root_ca=Path(info["endpoint_ca"]))
    try:
        requests = Requests(connection, str(endpoint))
        requests.subscribe(CREATE_FROM_CSR)
        requests.subscribe(provision_topic("rotate"))
        csr = make_csr("sensor-1", generate_key("ec-p256")).decode()
        made = requests.ask(CREATE_FROM_CSR, {"certificateSigningRequest": csr})
        takeover = {
            "certificateOwnershipToken": made["certificateOwnershipToken"],
            "parameters": {"ThingName": "sensor-1"},
        }
        with pytest.raises(ProvisioningRejectedError, match="403 AccessDenied"):  # the stack's rotation hook
            requests.ask(provision_topic("rotate"), takeover)
    finally:
        connection.close()
    iot = boto3.client("iot", region_name="us-east-1")
    assert len(iot.list_thing_principals(thingName="sensor-1")["principals"]) == 1


def test_a_rotation_that_is_rejected_leaves_the_old_certificate_working(emulator, stack, jitr, tmp_path):
    device, cert, key = claimed_device(jitr, emulator, tmp_path, "sensor-1")
    no_policy = rotate(jitr, emulator, cert, key, tmp_path / "r1")  # rotation not set up: no rotation policy
    assert no_policy.exit_code == 19, no_policy.output
    iot = boto3.client("iot", region_name="us-east-1")
    assert iot.describe_certificate(certificateId=device["certificateId"])["certificateDescription"]["status"] == (
        "ACTIVE"
    )
    info = emulator.info()
    still = jitr("device", "connect", "--endpoint", f"localhost:{info['mqtt_port']}", "--cert", cert, "--key", key,
                 "--root-ca", info["endpoint_ca"], "--topic-root", f"devices/{STACK}")  # fmt: skip
    assert still.exit_code == 0, still.output
    set_up_rotation(jitr)
    later = rotate(jitr, emulator, cert, key, tmp_path / "r2", "--thing", "sensor-1")
    assert later.exit_code == 0, later.output  # the same device rotates once rotation is set up
    old = iot.describe_certificate(certificateId=device["certificateId"])["certificateDescription"]
    assert old["status"] == "INACTIVE"
    assert not (tmp_path / "r1" / "certs").exists()


def test_a_rotation_whose_new_certificate_is_refused_leaves_the_old_one_working(emulator, stack, jitr, tmp_path):
    device, cert, key = claimed_device(jitr, emulator, tmp_path, "sensor-1")
    set_up_rotation(jitr)
    session = boto3.Session(region_name="us-east-1")
    iot = session.client("iot")
    good = iot.describe_provisioning_template(templateName="rotate")
    body = json.loads(good["templateBody"])
    body["Resources"]["certificate"]["Properties"]["Status"] = "INACTIVE"  # a template that leaves it unusable
    hook = allow_iot_hook(session, good["preProvisioningHook"]["targetArn"], "rotate-bad")
    iot.create_provisioning_template(
        templateName="rotate-bad", templateBody=json.dumps(body), provisioningRoleArn=good["provisioningRoleArn"],
        enabled=True, type="FLEET_PROVISIONING", preProvisioningHook={"targetArn": hook},
    )  # fmt: skip
    iot.create_policy(policyName="rotate-bad-rotation", policyDocument=rotation_policy(ARN_PREFIX, "rotate-bad"))
    iot.attach_policy(policyName="rotate-bad-rotation", target=f"{ARN_PREFIX}:cert/{device['certificateId']}")

    refused = rotate(jitr, emulator, cert, key, tmp_path / "bad", template="rotate-bad")

    assert refused.exit_code == 12, refused.output  # the new certificate's proof: refused
    old = iot.describe_certificate(certificateId=device["certificateId"])["certificateDescription"]
    assert old["status"] == "ACTIVE"
    info = emulator.info()
    still = jitr("device", "connect", "--endpoint", f"localhost:{info['mqtt_port']}", "--cert", cert, "--key", key,
                 "--root-ca", info["endpoint_ca"], "--topic-root", f"devices/{STACK}")  # fmt: skip
    assert still.exit_code == 0, still.output


def test_fleet_reset_removes_what_claim_and_rotation_made_for_the_stack(emulator, stack, jitr, tmp_path):
    _, cert, key = claimed_device(jitr, emulator, tmp_path, "sensor-1")
    set_up_rotation(jitr)
    assert rotate(jitr, emulator, cert, key, tmp_path / "rotated").exit_code == 0
    iot = boto3.client("iot", region_name="us-east-1")
    iot.create_policy(policyName="foreign", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))

    reset = jitr("fleet", "reset", "--stack", STACK, "--yes", "--json")

    assert reset.exit_code == 0, reset.output
    removed = json.loads(reset.stdout)["claims"]
    assert sorted(removed["templates"]) == ["factory", "rotate"]
    assert len(removed["certificates"]) == 2  # the claim certificate, and the one the rotation retired
    assert iot.list_provisioning_templates()["templates"] == []
    names = {policy["policyName"] for policy in iot.list_policies()["policies"]}
    assert "foreign" in names and not {name for name in names if name.startswith(("factory-", "rotate-"))}
    assert iot.list_things()["things"] == [] and iot.list_certificates()["certificates"] == []
    again = jitr("fleet", "reset", "--stack", STACK, "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout).get("claims") is None
