"""A standard MQTT client that is not the kit's own: Debian's mosquitto_pub and mosquitto_sub, over TLS with a chain."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.e2e.conftest import JITP_ROLE, certificate_id_of, deploy_stack, mint, register_ca, wait_for

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
        reason="mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)",
    ),
]


def tls_options(emulator, chain, key, client_id: str) -> list[str]:
    """What a user passes: the endpoint, its CA (Amazon Root CA 1 on AWS), the device's chain and key."""
    info = emulator.info()
    return [
        *("-h", info["mqtt_host"], "-p", str(info["mqtt_port"]), "-V", "mqttv311"),
        *("--cafile", info["endpoint_ca"], "--cert", str(chain), "--key", str(key), "-i", client_id),
    ]


def mosquitto_pub(emulator, chain, key, client_id: str, topic: str, payload: dict) -> subprocess.CompletedProcess:
    command = ["mosquitto_pub", *tls_options(emulator, chain, key, client_id), "-t", topic, "-q", "1"]
    return subprocess.run([*command, "-m", json.dumps(payload)], capture_output=True, text=True, timeout=10)


def archived(aws, bucket: str) -> dict[str, dict]:
    s3 = aws.client("s3")
    contents = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in contents}


def test_mosquitto_pub_is_provisioned_by_jitp_on_its_first_connect_and_its_message_archived(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE, "--topic-root", "devices/jitr-test")
    bucket = deploy_stack(aws, ca_id)["outputs"]["ArchiveBucketName"]
    chain, key = mint(jitr, pki, "dev-3")
    done = mosquitto_pub(emulator, chain, key, "dev-3", "devices/jitr-test/dev-3/telemetry", {"temperature": 19.5})
    assert done.returncode == 0, done.stderr
    assert emulator.api.registry().certificate(certificate_id_of(chain)).status == "ACTIVE"
    ((key_name, body),) = wait_for(lambda: archived(aws, bucket)).items()
    assert key_name.startswith("devices/jitr-test/dev-3/telemetry/") and body == {"temperature": 19.5}


def test_mosquitto_pub_retried_by_a_shell_loop_gets_through_jitr(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki)
    bucket = deploy_stack(aws, ca_id)["outputs"]["ArchiveBucketName"]
    chain, key = mint(jitr, pki, "dev-5")
    attempts = []
    for _ in range(40):  # what `until mosquitto_pub ...; do sleep 0.25; done` does
        done = mosquitto_pub(emulator, chain, key, "dev-5", "devices/jitr-test/dev-5/telemetry", {"ok": True})
        attempts.append(done.returncode)
        if done.returncode == 0:
            break
        time.sleep(0.25)
    assert attempts[0] != 0 and attempts[-1] == 0  # dropped first (JITR), then accepted once activated
    (body,) = wait_for(lambda: archived(aws, bucket)).values()
    assert body == {"ok": True}


def test_mosquitto_sub_receives_what_is_published_to_its_own_topic(jitr, pki, emulator):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-3")
    topic = "devices/dev-3/commands"
    command = ["mosquitto_sub", *tls_options(emulator, chain, key, "dev-3"), "-t", topic, "-C", "1", "-W", "15"]
    sub = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while sub.poll() is None and time.monotonic() < deadline:
            # what the AWS IoT console's MQTT client (or iot-data Publish) does: publish until the subscription is in
            emulator.broker.publish(topic, json.dumps({"command": "reboot"}).encode(), qos=1)
            time.sleep(0.2)
        out, err = sub.communicate(timeout=5)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    assert json.loads(out) == {"command": "reboot"}
