"""`jitr fleet register` against the emulator: a minted batch registered up front, by API calls or by one
thing registration task; re-runs, bad lines, a shared certificate, registration without a CA, and
`jitr fleet reset --manifest` taking the batch away again. The emulator's side of it (RegisterCertificate
that checks the CA's signature, the registration tasks) is tested here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ca.jitp_template import template_body
from cloud.s3 import fetch_url
from emulator.store import devices as device_registry
from tests.e2e.conftest import register_ca, wait_for
from tests.e2e.fleet_batches import ROLE, assert_registered, mint_batch, records

pytestmark = pytest.mark.timeout(120)
COUNT = 200
TASK = ("--method", "task", "--bucket", "jitr-bulk-input", "--role-arn", ROLE, "--poll-interval", "0.05")


def register(jitr, manifest: Path, *args, exit_code: int = 0) -> dict:
    result = jitr("fleet", "register", "--manifest", manifest, "--json", *args)
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ca_id(jitr, pki, emulator) -> str:
    return register_ca(jitr, pki)


@pytest.fixture
def batch(jitr, pki, ca_id) -> Path:
    return mint_batch(jitr, pki, count=COUNT)


# -- the two methods -----------------------------------------------------------------------------------------

REGISTERING = ("register_certificate", "create_thing", "attach_policy", "attach_thing_principal", "update_certificate")


def count_registering_calls(monkeypatch) -> list[str]:
    """What the emulator's API handlers and registration tasks register with, from now on."""
    calls: list[str] = []

    def counted(name: str, original):
        def call(*args):
            calls.append(name)
            return original(*args)

        return call

    for name in REGISTERING:
        monkeypatch.setattr(device_registry, name, counted(name, getattr(device_registry, name)))
    return calls


def test_the_api_method_registers_every_device_and_a_second_run_changes_nothing(
    jitr, emulator, batch, ca_id, monkeypatch
):
    report = register(jitr, batch, "--thing-type", "sensor", "--group", "line-1")
    assert (report["registered"], report["skipped"], report["failed"]) == (COUNT, 0, 0)
    assert report["created"] == {"thingType": True, "thingGroup": True, "policy": True}
    assert_registered(emulator, records(batch), ca_id=ca_id, thing_type="sensor", group="line-1")
    results = json.loads((batch.parent / "registration.json").read_text())
    assert [d["status"] for d in results["devices"]] == ["registered"] * COUNT
    assert [d["thingName"] for d in results["devices"]] == [r["thingName"] for r in records(batch)]

    calls = count_registering_calls(monkeypatch)
    again = register(jitr, batch, "--thing-type", "sensor", "--group", "line-1")
    assert (again["registered"], again["skipped"], again["failed"]) == (0, COUNT, 0)
    assert calls == []


def test_the_task_method_registers_every_device_with_one_task_and_a_second_run_starts_none(
    jitr, emulator, aws, batch, ca_id, monkeypatch
):
    report = register(jitr, batch, *TASK, "--thing-type", "sensor", "--group", "line-1")
    assert (report["registered"], report["skipped"], report["failed"]) == (COUNT, 0, 0)
    assert_registered(emulator, records(batch), ca_id=ca_id, thing_type="sensor", group="line-1")
    iot = aws.client("iot")
    described = iot.describe_thing_registration_task(taskId=report["taskId"])
    assert (described["status"], described["successCount"], described["failureCount"]) == ("Completed", COUNT, 0)
    lines = (batch.parent / "registration-task-input.jsonl").read_text().splitlines()
    assert [json.loads(line)["ThingName"] for line in lines] == [r["thingName"] for r in records(batch)]

    calls = count_registering_calls(monkeypatch)
    again = register(jitr, batch, *TASK, "--thing-type", "sensor", "--group", "line-1")
    assert (again["registered"], again["skipped"], again["failed"], again["taskId"]) == (0, COUNT, 0, None)
    assert calls == [] and iot.list_thing_registration_tasks()["taskIds"] == [report["taskId"]]


@pytest.fixture
def small_batch(jitr, pki, ca_id) -> Path:
    return mint_batch(jitr, pki, prefix="meter-", count=20)


def test_a_run_after_the_batch_was_reset_registers_it_again(jitr, emulator, small_batch, ca_id):
    register(jitr, small_batch)
    assert jitr("fleet", "reset", "--manifest", small_batch, "--yes").exit_code == 0
    again = register(jitr, small_batch)  # the results file says registered, but AWS IoT no longer has them
    assert (again["registered"], again["skipped"]) == (20, 0)
    assert_registered(emulator, records(small_batch), ca_id=ca_id)


# -- bad lines -----------------------------------------------------------------------------------------------


@pytest.fixture
def bad_batch(jitr, tmp_path, small_batch) -> tuple[Path, int]:
    """The batch with five lines that cannot be registered appended; how many good lines it has."""
    other = tmp_path / "other-ca"
    assert jitr("ca", "init", "--dir", other, "--country", "DE").exit_code == 0
    assert jitr("device", "mint", "--dir", other, "--thing", "stranger-1").exit_code == 0
    batch = small_batch
    good = records(batch)
    stranger = {"thingName": "stranger-1", "certificate": str(other / "devices/certs/stranger-1.pem")}
    renamed = dict(good[1], thingName="renamed-2")  # its certificate's CN is another name
    lines = [json.dumps(r) for r in good] + [
        "this is not JSON",
        json.dumps({"thingName": "bad name!", "certificate": good[2]["certificate"]}),
        json.dumps(stranger),
        json.dumps(good[0]),  # the same device again
        json.dumps(renamed),
    ]
    batch.write_text("\n".join(lines) + "\n")
    return batch, len(good)


@pytest.mark.parametrize("method", [(), TASK], ids=["api", "task"])
def test_bad_lines_are_reported_with_their_reason_and_the_good_ones_registered(
    jitr, emulator, bad_batch, ca_id, method
):
    manifest, good = bad_batch
    report = register(jitr, manifest, *method, exit_code=1)
    assert (report["registered"], report["failed"]) == (good, 5)
    reasons = {failure["line"]: failure["reason"] for failure in report["failures"]}
    assert "not a device record" in reasons[good + 1]
    assert "Invalid thing name" in reasons[good + 2]
    assert "not signed by the CA" in reasons[good + 3]
    assert "also on line 1" in reasons[good + 4]
    assert "CN is 'meter-02'" in reasons[good + 5]
    assert_registered(emulator, records(manifest, good), ca_id=ca_id)
    assert emulator.api.registry().thing("stranger-1") is None


# -- a shared certificate, registration without a CA ---------------------------------------------------------


def test_a_shared_certificate_is_registered_once_and_attached_to_every_thing_with_a_warning(
    jitr, emulator, small_batch
):
    manifest = small_batch
    result = jitr("fleet", "register", "--manifest", manifest, "--shared-certificate", "--json")
    assert result.exit_code == 0, result.output
    assert "Device Defender" in result.stderr
    report = json.loads(result.stdout)
    assert report["registered"] == 20 and any("Device Defender" in w for w in report["warnings"])
    entries = records(manifest)
    shared = emulator.api.registry().certificate(entries[0]["certificateId"])
    assert shared.status == "ACTIVE"
    assert sorted(emulator.api.registry().things_for(shared.arn)) == [e["thingName"] for e in entries]
    assert all(emulator.api.registry().certificate(e["certificateId"]) is None for e in entries[1:])


def test_without_a_ca_the_certificates_are_registered_outside_any_ca_and_reset_by_manifest(jitr, emulator, pki):
    manifest = mint_batch(jitr, pki, prefix="edge-", count=20)  # the CA is never registered
    report = register(jitr, manifest, "--without-ca")
    assert report["registered"] == 20
    assert_registered(emulator, records(manifest), ca_id=None)
    reset = jitr("fleet", "reset", "--manifest", manifest, "--yes", "--json")
    assert reset.exit_code == 0, reset.output
    assert len(json.loads(reset.stdout)["certificatesDeleted"]) == 20
    registry = emulator.api.registry()
    assert all(registry.certificate(e["certificateId"]) is None for e in records(manifest))
    assert all(registry.thing(e["thingName"]) is None for e in records(manifest))


# -- reset ---------------------------------------------------------------------------------------------------


def test_reset_by_manifest_removes_the_batch_and_keeps_the_ca_and_other_things(jitr, emulator, aws, small_batch, ca_id):
    batch = small_batch
    register(jitr, batch)
    aws.client("iot").create_thing(thingName="not-of-the-batch")
    result = jitr("fleet", "reset", "--manifest", batch, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (len(report["certificatesDeleted"]), len(report["thingsDeleted"])) == (20, 20)
    registry = emulator.api.registry()
    assert registry.ca(ca_id).status == "ACTIVE" and registry.thing("not-of-the-batch") is not None
    assert all(registry.certificate(e["certificateId"]) is None for e in records(batch))
    again = jitr("fleet", "reset", "--manifest", batch, "--yes", "--json")
    assert json.loads(again.stdout)["certificatesDeleted"] == []  # a no-op


def test_the_stack_reset_finds_a_registered_batch_under_its_ca(jitr, emulator, pki, small_batch, ca_id):
    register(jitr, small_batch)
    result = jitr("fleet", "reset", "--stack", "never-deployed", "--dir", pki, "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["certificatesDeleted"]) == 20


def test_reset_wants_a_stack_or_a_manifest(jitr, tmp_path):
    for args in ((), ("--stack", "s", "--manifest", tmp_path / "manifest.jsonl")):
        result = jitr("fleet", "reset", *args, "--yes")
        assert result.exit_code == 2 and "one of the two" in result.stderr


# -- the emulator's side -------------------------------------------------------------------------------------


def test_the_emulator_refuses_a_certificate_the_named_ca_did_not_sign(jitr, aws, pki, tmp_path, ca_id):
    other = tmp_path / "other-ca"
    assert jitr("ca", "init", "--dir", other).exit_code == 0
    assert jitr("device", "mint", "--dir", other, "--thing", "stranger-1").exit_code == 0
    iot = aws.client("iot")
    stranger = (other / "devices/certs/stranger-1.pem").read_text()
    with pytest.raises(ClientError, match="CertificateValidationException"):
        iot.register_certificate(
            certificatePem=stranger, caCertificatePem=(pki / "certs/intermediate-ca.pem").read_text()
        )
    registered = iot.register_certificate_without_ca(certificatePem=stranger, status="ACTIVE")
    with pytest.raises(ClientError) as exists:
        iot.register_certificate_without_ca(certificatePem=stranger, status="ACTIVE")
    assert exists.value.response["resourceArn"] == registered["certificateArn"]


def _task_input(aws, lines: list[dict]) -> tuple[str, str]:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="bulk")
    s3.put_object(Bucket="bulk", Key="input.jsonl", Body="\n".join(json.dumps(line) for line in lines).encode())
    return "bulk", "input.jsonl"


THING_ONLY = template_body(
    {
        "Parameters": {"ThingName": {"Type": "String"}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}}},
    }
)


def test_a_registration_task_reports_each_line_by_its_offset(aws, emulator):
    iot = aws.client("iot")
    bucket, key = _task_input(aws, [{"ThingName": "t-1"}, {"ThingName": "bad name!"}, {"Other": "x"}])
    task = iot.start_thing_registration_task(
        templateBody=THING_ONLY, inputFileBucket=bucket, inputFileKey=key, roleArn=ROLE
    )
    done = wait_for(
        lambda: iot.describe_thing_registration_task(taskId=task["taskId"])["status"] == "Completed" or None
    )
    assert done
    described = iot.describe_thing_registration_task(taskId=task["taskId"])
    assert (described["successCount"], described["failureCount"], described["percentageProgress"]) == (1, 2, 100)

    def report(kind):
        links = iot.list_thing_registration_task_reports(taskId=task["taskId"], reportType=kind)["resourceLinks"]
        return [json.loads(line) for link in links for line in fetch_url(link).splitlines()]

    [result] = report("RESULTS")
    assert result["offset"] == 0 and result["response"]["ResourceArns"]["thing"].endswith(":thing/t-1")
    errors = report("ERRORS")
    assert [e["offset"] for e in errors] == [1, 2] and "ThingName" in errors[1]["errorMessage"]
    assert emulator.api.registry().thing("t-1") is not None


def test_only_one_registration_task_runs_at_a_time_and_a_stopped_one_is_cancelled(aws, emulator, monkeypatch):
    iot = aws.client("iot")
    monkeypatch.setitem(emulator.api.quotas.limits, "CreateThing", 1e-9)  # one thing, then the task waits for ever
    bucket, key = _task_input(aws, [{"ThingName": f"t-{n}"} for n in range(3)])
    first = iot.start_thing_registration_task(
        templateBody=THING_ONLY, inputFileBucket=bucket, inputFileKey=key, roleArn=ROLE
    )["taskId"]
    with pytest.raises(ClientError, match="only one runs at a time"):
        iot.start_thing_registration_task(
            templateBody=THING_ONLY, inputFileBucket=bucket, inputFileKey=key, roleArn=ROLE
        )
    assert iot.list_thing_registration_tasks(status="InProgress")["taskIds"] == [first]
    iot.stop_thing_registration_task(taskId=first)
    wait_for(lambda: iot.describe_thing_registration_task(taskId=first)["status"] == "Cancelled")
    assert iot.list_thing_registration_tasks(status="Cancelled")["taskIds"] == [first]


def test_a_task_whose_input_file_is_missing_fails_with_a_message(aws, emulator):
    iot = aws.client("iot")
    aws.client("s3").create_bucket(Bucket="bulk")
    task = iot.start_thing_registration_task(
        templateBody=THING_ONLY, inputFileBucket="bulk", inputFileKey="missing.jsonl", roleArn=ROLE
    )["taskId"]
    wait_for(lambda: iot.describe_thing_registration_task(taskId=task)["status"] == "Failed")
    assert "missing.jsonl" in iot.describe_thing_registration_task(taskId=task)["message"]


def test_a_batch_of_another_ca_is_refused_the_things_a_first_batch_registered(jitr, emulator, pki, tmp_path, ca_id):
    first = mint_batch(jitr, pki, count=3)
    assert register(jitr, first)["registered"] == 3
    other = tmp_path / "other-pki"
    assert jitr("ca", "init", "--dir", other, "--country", "DE", "--intermediate").exit_code == 0
    register_ca(jitr, other)
    second = mint_batch(jitr, other, count=3)  # the same thing names, sensor-0 ... sensor-2, under another CA
    report = register(jitr, second, exit_code=1)
    assert (report["registered"], report["failed"]) == (0, 3)
    results = json.loads((second.parent / "registration.json").read_text())["devices"]
    assert all(d["status"] == "failed" and d["reason"].startswith("refused: the thing") for d in results)
    registry = emulator.api.registry()
    for mine, theirs in zip(records(first), records(second), strict=True):
        assert registry.certificate(theirs["certificateId"]).status == "INACTIVE"
        assert registry.things_for(registry.certificate(theirs["certificateId"]).arn) == []
        assert registry.things_for(registry.certificate(mine["certificateId"]).arn) == [mine["thingName"]]
