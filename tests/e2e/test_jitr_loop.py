"""The kit's whole loop against the emulator: register, deploy, first connect, activate, publish, archive."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import (
    JITP_ROLE,
    Device,
    certificate_id_of,
    deploy_stack,
    function_decisions,
    mint,
    publish,
    register_ca,
    wait_for,
)


@pytest.fixture
def pki(tmp_path, jitr, emulator):
    directory = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", directory, "--country", "DE", "--intermediate").exit_code == 0
    return directory


def test_jitr_first_connect_is_dropped_then_the_lambda_activates_and_messages_are_archived(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki)
    stack = deploy_stack(aws, ca_id)
    chain, key = mint(jitr, pki, "dev-1")
    device = Device(emulator, chain, key, "dev-1")

    rc, client = device.connect_once()
    assert client is None and rc is None  # dropped without CONNACK: JITR's first connect
    registry = emulator.api.registry()
    cert_id = json.loads(jitr("ca", "show", "--json", chain).stdout)[0]["certificateId"]
    wait_for(lambda: (registry.certificate(cert_id) or None) and registry.certificate(cert_id).status == "ACTIVE")
    assert registry.things_for(registry.certificate(cert_id).arn) == ["dev-1"]
    activated = wait_for(lambda: [d for d in function_decisions(emulator) if d["decision"] == "activated"])
    assert [(d["certificateId"], d["thingName"]) for d in activated] == [(cert_id, "dev-1")]  # in its log group

    client, _ = device.connect_until_accepted()
    publish(client, "devices/jitr-test/dev-1/telemetry", {"temperature": 21.5})  # the stack's topic root
    client.disconnect()

    s3 = aws.client("s3")
    bucket = stack["outputs"]["ArchiveBucketName"]
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert len(keys) == 1 and keys[0].startswith("devices/jitr-test/dev-1/telemetry/")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert json.loads(body) == {"temperature": 21.5}


def test_jitp_provisions_on_first_connect_without_a_lambda(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-2")
    client, history = Device(emulator, chain, key, "dev-2").connect_until_accepted()
    assert history == [0]  # provisioned and accepted on the first connect
    registry = emulator.api.registry()
    cert_id = json.loads(jitr("ca", "show", "--json", chain).stdout)[0]["certificateId"]
    assert registry.certificate(cert_id).status == "ACTIVE"
    assert registry.thing("dev-2").attributes == {"country": "DE", "caCertificateId": ca_id}  # the thing's owner
    publish(client, "devices/dev-2/telemetry", {"ok": True})
    client.disconnect()


def test_two_stacks_minting_one_thing_name_leave_the_thing_to_the_first_fleet(jitr, tmp_path, emulator, aws):
    """Two stacks, each with its own CA, both mint sensor-1: the second fleet's device never gets the thing."""
    fleets = {}
    for name in ("reg-a", "reg-b"):
        directory = tmp_path / name
        assert jitr("ca", "init", "--dir", directory, "--country", "DE", "--intermediate").exit_code == 0
        deploy_stack(aws, register_ca(jitr, directory), stack=name)
        fleets[name] = mint(jitr, directory, "sensor-1")
    first = Device(emulator, *fleets["reg-a"], "sensor-1")
    client, _ = first.connect_until_accepted()
    client.disconnect()
    registry = emulator.api.registry()
    first_id, second_id = (certificate_id_of(chain) for chain, _key in fleets.values())

    second = Device(emulator, *fleets["reg-b"], "sensor-1")
    assert second.connect_once() == (None, None)  # JITR's first connect: registered, dropped
    refused = wait_for(
        lambda: [
            d for d in function_decisions(emulator) if d["decision"] == "refused" and d["certificateId"] == second_id
        ]
    )
    assert "belongs to CA" in refused[0]["reason"]
    assert second.connect_once() == (None, None)  # still not active: dropped again, not accepted
    assert registry.certificate(second_id).status == "PENDING_ACTIVATION"
    assert registry.things_for(registry.certificate(first_id).arn) == ["sensor-1"]
    assert registry.things_for(registry.certificate(second_id).arn) == []


def test_a_jitp_device_of_another_ca_is_provisioned_but_refused_the_thing_of_the_first_ca(jitr, tmp_path, emulator):
    """A JITP template cannot see the registry: CA B's template attaches its jitp-sensor to CA A's thing, but
    leaves the thing's owner attribute alone, and B's policy admits only a thing that B owns. So B's
    device never connects, A's device keeps its thing, and A rotating jitp-sensor still works."""
    fleets, ids = {}, {}
    for name in ("reg-a", "reg-b"):
        directory = tmp_path / name
        assert jitr("ca", "init", "--dir", directory, "--country", "DE", "--intermediate").exit_code == 0
        ids[name] = register_ca(jitr, directory, "--jitp", "--role-arn", JITP_ROLE)
        fleets[name] = directory
    first = Device(emulator, *mint(jitr, fleets["reg-a"], "jitp-sensor"), "jitp-sensor")
    client, _ = first.connect_until_accepted()
    registry = emulator.api.registry()
    assert registry.thing("jitp-sensor").attributes["caCertificateId"] == ids["reg-a"]

    second_files = mint(jitr, fleets["reg-b"], "jitp-sensor")
    second = Device(emulator, *second_files, "jitp-sensor")
    assert [second.connect_once()[1] for _ in range(3)] == [None, None, None]  # refused every time
    assert client.is_connected()  # the first fleet's device was not knocked off by client id
    client.disconnect()
    assert registry.thing("jitp-sensor").attributes["caCertificateId"] == ids["reg-a"]
    assert registry.certificate(certificate_id_of(second_files[0])).status == "ACTIVE"  # what JITP does

    out = fleets["reg-a"] / "rotated"
    assert jitr("device", "mint", "--dir", fleets["reg-a"], "--thing", "jitp-sensor", "--out", out).exit_code == 0
    rotated = Device(emulator, out / "certs/jitp-sensor.chain.pem", out / "private/jitp-sensor.key", "jitp-sensor")
    rotated.connect_until_accepted()[0].disconnect()  # a new certificate of the same CA: the same thing


def test_two_stacks_in_one_account_archive_only_their_own_devices_messages(jitr, tmp_path, emulator, aws):
    """Each stack's devices publish under devices/<stack>/: their policy allows no other root, and each
    stack's archive rule hears only its own, so one fleet's telemetry never lands in another's bucket."""
    buckets, sessions = {}, {}
    for stack in ("fleet-a", "fleet-b"):
        directory = tmp_path / stack
        assert jitr("ca", "init", "--dir", directory, "--country", "DE", "--intermediate").exit_code == 0
        outputs = deploy_stack(aws, register_ca(jitr, directory), stack=stack)["outputs"]
        assert outputs["DeviceTopicRoot"] == f"devices/{stack}"
        buckets[stack] = outputs["ArchiveBucketName"]
        thing = f"sensor-{stack[-1]}"
        device = Device(emulator, *mint(jitr, directory, thing), thing)
        assert device.connect_once() == (None, None)  # JITR: registered, dropped, then activated
        sessions[stack] = device.session()
    sessions["fleet-a"].publish("devices/fleet-a/sensor-a/telemetry", {"from": "a"})
    sessions["fleet-b"].publish("devices/fleet-b/sensor-b/telemetry", {"from": "b"})
    s3 = aws.client("s3")

    def keys(stack: str) -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=buckets[stack]).get("Contents", [])]

    wait_for(lambda: keys("fleet-a") and keys("fleet-b"))
    [key_a], [key_b] = keys("fleet-a"), keys("fleet-b")
    assert key_a.startswith("devices/fleet-a/sensor-a/telemetry/") and key_b.startswith("devices/fleet-b/sensor-b/")
    # fleet a's device cannot write into fleet b's root (nor the old account-wide devices/<thing>/)
    forged = sessions["fleet-a"].send("devices/fleet-b/sensor-a/telemetry", {"forged": True})
    assert sessions["fleet-a"].disconnected.wait(10) and not forged.is_published()
    sessions["fleet-b"].publish("devices/fleet-b/sensor-b/telemetry", {"from": "b", "n": 2})
    wait_for(lambda: len(keys("fleet-b")) == 2)
    assert len(keys("fleet-a")) == 1
    bodies = [json.loads(s3.get_object(Bucket=buckets["fleet-b"], Key=k)["Body"].read()) for k in keys("fleet-b")]
    assert {"forged": True} not in bodies
    for session in sessions.values():
        session.close()
