"""``jitr fleet claim`` and ``jitr device provision`` against a stack deployed in the emulator: the factory's
one step, then devices that ship with the claim certificate provisioning themselves and publishing into the
stack's archive; re-runs, a refusing hook, a takeover attempt and a bad template name."""

from __future__ import annotations

import json
import stat

import boto3
import pytest

from emulator.cloudformation.deploy import StackDeployer
from tests.e2e.conftest import TEMPLATE, create_function, wait_for

pytestmark = pytest.mark.timeout(120)
STACK = "claim-e2e"
CA_ID = "b" * 64  # the stack's JITR half needs a CA id; provisioning by claim needs none
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
