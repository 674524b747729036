"""Per-API quotas: past the rate the emulator answers ThrottlingException as AWS does, and retrying clients get through.

This module starts its own emulator with ``UpdateCertificate`` limited to 5 calls a second (a burst of 5, then
one every 200 ms). It overrides the shared ``local_iot`` fixture, so ``emulator`` and ``aws`` use it; the
shared one of the previous module is torn down before this one starts (one emulator per process at a time).
"""

from __future__ import annotations

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.conftest import (
    Device,
    certificate_id_of,
    deploy_stack,
    function_decisions,
    mint,
    register_ca,
    running_emulator,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)
RATE = 5  # UpdateCertificate calls a second, and the burst the bucket holds
NO_RETRIES = Config(retries={"total_max_attempts": 1})
STANDARD_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 10})


@pytest.fixture(scope="module")
def local_iot(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("local-iot-quotas"), quotas={"UpdateCertificate": RATE}) as iot:
        yield iot


@pytest.fixture
def certificate_id(aws) -> str:
    """An ACTIVE certificate to update."""
    return aws.client("iot").create_keys_and_certificate(setAsActive=True)["certificateId"]


def update(iot, cert_id: str, n: int) -> None:
    iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE" if n % 2 else "ACTIVE")


def test_calls_past_the_quota_are_throttled_when_the_client_does_not_retry(aws, certificate_id):
    iot = aws.client("iot", config=NO_RETRIES)
    time.sleep(1.0)  # the UpdateCertificate bucket is full again, whatever ran before
    outcomes = []
    for n in range(3 * RATE):  # far quicker than 200 ms apart
        try:
            update(iot, certificate_id, n)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert exc.response["Error"]["Message"] == "Rate exceeded"
    assert outcomes[:RATE] == ["ok"] * RATE  # the burst
    assert set(outcomes[RATE:]) <= {"ok", "ThrottlingException"}
    assert outcomes.count("ThrottlingException") >= 3  # most of the rest: a token comes back every 200 ms only
    time.sleep(1.0 / RATE)
    update(iot, certificate_id, 0)  # and a call that waits its turn passes


def test_a_client_with_standard_retries_gets_every_call_through_at_the_quota_rate(aws, certificate_id):
    iot = aws.client("iot", config=STANDARD_RETRIES)
    calls = 3 * RATE
    started = time.monotonic()
    for n in range(calls):
        update(iot, certificate_id, n)  # raises if retries ran out
    elapsed = time.monotonic() - started
    assert elapsed >= (calls - RATE) / RATE * 0.9  # the burst, then no faster than the quota allows
    status = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
    assert status == ("INACTIVE" if (calls - 1) % 2 else "ACTIVE")


def test_operations_without_a_quota_are_never_throttled(aws):
    iot = aws.client("iot", config=NO_RETRIES)
    cert_id = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    for _ in range(6 * RATE):
        iot.describe_certificate(certificateId=cert_id)


def test_throttled_jitr_activations_lose_no_device(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki)
    deploy_stack(aws, ca_id)
    things = [f"dev-{n}" for n in range(1, 3 * RATE + 1)]
    devices = [Device(emulator, *mint(jitr, pki, thing), thing) for thing in things]
    for device in devices:  # one first connect each: 15 registration events, 15 activations at once
        assert device.connect_once() == (None, None)
    registry = emulator.api.registry()
    cert_ids = [certificate_id_of(device.chain) for device in devices]

    def all_active():
        return all(registry.certificate(cert_id).status == "ACTIVE" for cert_id in cert_ids)

    wait_for(all_active, timeout=30)
    retries = [d for d in function_decisions(emulator) if d["decision"] == "retry"]
    assert any(r["code"] == "ThrottlingException" and r["operation"] == "update_certificate" for r in retries)
    assert sorted(registry.things_for(registry.certificate(c).arn)[0] for c in cert_ids) == sorted(things)
    client, history = devices[-1].connect_until_accepted()
    assert history == [0]
    client.disconnect()
