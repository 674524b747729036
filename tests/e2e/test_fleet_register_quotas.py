"""`jitr fleet register` against an emulator with per-API quotas (`jitr local up --quota`): throttled calls back
off and are retried, and every device of the batch is registered, by either method.

This module starts its own emulator with quotas low enough that the run is throttled; it overrides the shared
``local_iot`` fixture (one emulator per process at a time).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import register_ca, running_emulator
from tests.e2e.fleet_batches import ROLE, assert_registered, mint_batch, records

pytestmark = pytest.mark.timeout(120)
COUNT = 100
QUOTAS = {
    "RegisterCertificate": 20,
    "UpdateCertificate": 20,
    "CreateThing": 30,
    "AttachPolicy": 30,
    "AttachThingPrincipal": 30,
    "DescribeThingRegistrationTask": 5,
}


@pytest.fixture(scope="module")
def local_iot(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("local-iot-register-quotas"), quotas=QUOTAS) as iot:
        yield iot


@pytest.mark.parametrize(
    "method",
    [(), ("--method", "task", "--bucket", "bulk-input", "--role-arn", ROLE, "--poll-interval", "0.05")],
    ids=["api", "task"],
)
def test_a_throttled_run_registers_every_device_and_loses_none(jitr, emulator, pki, method):
    ca_id = register_ca(jitr, pki)
    manifest = mint_batch(jitr, pki, count=COUNT)
    result = jitr("fleet", "register", "--manifest", manifest, "--concurrency", 16, "--json", *method)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["registered"], report["failed"]) == (COUNT, 0)
    if not method:  # the api method saw the quota and backed off; the task waits for its quota in the emulator
        assert report["throttles"].get("register_certificate", 0) > 0
    else:  # the kit polls the task faster than DescribeThingRegistrationTask's quota allows
        assert report["throttles"].get("describe_thing_registration_task", 0) > 0
    assert_registered(emulator, records(manifest), ca_id=ca_id)
