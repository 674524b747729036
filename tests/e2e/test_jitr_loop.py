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
    publish(client, "devices/dev-1/telemetry", {"temperature": 21.5})
    client.disconnect()

    s3 = aws.client("s3")
    bucket = stack["outputs"]["ArchiveBucketName"]
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert len(keys) == 1 and keys[0].startswith("devices/dev-1/telemetry/")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert json.loads(body) == {"temperature": 21.5}


def test_jitp_provisions_on_first_connect_without_a_lambda(jitr, pki, emulator, aws):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-2")
    client, history = Device(emulator, chain, key, "dev-2").connect_until_accepted()
    assert history == [0]  # provisioned and accepted on the first connect
    registry = emulator.api.registry()
    cert_id = json.loads(jitr("ca", "show", "--json", chain).stdout)[0]["certificateId"]
    assert registry.certificate(cert_id).status == "ACTIVE"
    assert registry.thing("dev-2").attributes == {"country": "DE"}
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
