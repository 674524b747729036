"""``jitr ca revoke --aws`` against the emulator: a revoked device is refused at connect, and a revoked
intermediate's registration goes INACTIVE with its still-ACTIVE devices counted."""

from __future__ import annotations

import json
import threading

import pytest

from tests.e2e.conftest import JITP_ROLE, NOT_AUTHORIZED, Device, certificate_id_of, mint, register_ca

pytestmark = pytest.mark.timeout(60)


def test_a_device_revoked_with_aws_is_refused_at_connect(jitr, pki, emulator, aws):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-1")
    device = Device(emulator, chain, key, "dev-1")
    client, history = device.connect_until_accepted()
    assert history == [0]  # JITP: provisioned, ACTIVE
    client.disconnect()
    result = jitr("ca", "revoke", pki / "devices/certs/dev-1.pem", "--dir", pki, "--aws", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["aws"] == "REVOKED"
    described = aws.client("iot").describe_certificate(certificateId=certificate_id_of(chain))
    assert described["certificateDescription"]["status"] == "REVOKED"
    assert device.connect_once() == (NOT_AUTHORIZED, None)


def test_revoking_the_intermediate_with_aws_makes_its_registration_inactive_and_counts_its_active_devices(
    jitr, pki, emulator, aws
):
    ca_id = register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    for thing in ("dev-1", "dev-2"):
        chain, key = mint(jitr, pki, thing)
        client, _history = Device(emulator, chain, key, thing).connect_until_accepted()
        client.disconnect()
    result = jitr("ca", "revoke", pki / "certs/intermediate-ca.pem", "--dir", pki, "--aws", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["aws"], report["activeDevices"]) == ("CA INACTIVE", 2)
    ca = aws.client("iot").describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    assert (ca["status"], ca["autoRegistrationStatus"]) == ("INACTIVE", "DISABLE")
    chain, key = mint(jitr, pki, "dev-3")  # a new device of the revoked CA: refused, not registered
    assert Device(emulator, chain, key, "dev-3").connect_once() == (NOT_AUTHORIZED, None)


def test_a_certificate_aws_iot_does_not_know_is_revoked_locally_and_said_so(jitr, pki, emulator):
    cert = mint(jitr, pki, "dev-9")[0].with_name("dev-9.pem")
    result = jitr("ca", "revoke", cert, "--dir", pki, "--aws")
    assert result.exit_code == 0 and "AWS IoT does not know it" in result.output
    assert (pki / "revocations.json").exists()


@pytest.mark.parametrize("status", ["REVOKED", "INACTIVE"])
def test_a_connected_device_whose_certificate_leaves_active_is_disconnected(jitr, pki, emulator, aws, status):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-1")
    keeper_chain, keeper_key = mint(jitr, pki, "dev-2")
    client, _history = Device(emulator, chain, key, "dev-1").connect_until_accepted()
    keeper, _ = Device(emulator, keeper_chain, keeper_key, "dev-2").connect_until_accepted()
    gone = threading.Event()
    client.on_disconnect = lambda *_args: gone.set()
    aws.client("iot").update_certificate(certificateId=certificate_id_of(chain), newStatus=status)
    assert gone.wait(10)  # AWS IoT closes the connections of a certificate that is no longer ACTIVE
    assert keeper.is_connected()  # and no other
    client.loop_stop()
    keeper.disconnect()
    keeper.loop_stop()
