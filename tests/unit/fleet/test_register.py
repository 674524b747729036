"""The pure parts of `jitr fleet register`: the shared backoff, throttled calls retried for ever, the checks on a
request, thing attributes, what a re-run skips, and the registration task's template, input lines and reports."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from base.errors import AwsError, InvalidInputError
from base.keys import generate_key
from ca.issue import make_name
from cloud.iot import IotApi
from cloud.pacing import Pacer
from fleet.devices import FAILED, REGISTERED, SKIPPED, Device, thing_attributes
from fleet.register import split_done
from fleet.requests import RegisterRequest, Setup
from fleet.task import common_attributes, input_lines, outcomes_from_reports, task_template
from tests.certificates import certificate_with_subject


def throttle(operation: str = "RegisterCertificate") -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


# -- the pacer -------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def paced(successes_per_second: int, seconds: int = 2) -> tuple[Pacer, Clock]:
    """A pacer that saw RegisterCertificate go through at a steady rate, then one throttle."""
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.before("register_certificate")
    for _ in range(successes_per_second * seconds):
        clock.now += 1 / successes_per_second
        pacer.succeeded("register_certificate")
    pacer.throttled("register_certificate")
    return pacer, clock


def test_an_operation_nobody_was_throttled_on_runs_unpaced():
    pacer = Pacer()
    assert [pacer.before("create_thing") for _ in range(3)] == [0.0, 0.0, 0.0]


def test_a_throttled_operation_is_paced_at_the_rate_its_calls_went_through_threads_taking_turns():
    pacer, clock = paced(10)
    assert pacer.interval("register_certificate") == pytest.approx(0.1)
    waits = [pacer.before("register_certificate") for _ in range(3)]  # three threads, one slot each
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    assert pacer.before("create_thing") == 0.0  # operations are paced separately


def test_throttles_of_calls_already_in_flight_do_not_slow_the_pace_again():
    pacer, clock = paced(10)
    pacer.throttled("register_certificate")
    assert pacer.interval("register_certificate") == pytest.approx(0.1)
    clock.now += 1.0
    pacer.throttled("register_certificate")  # a throttle at the pace it already has: slower still
    assert pacer.interval("register_certificate") > 0.1
    assert pacer.throttles() == {"register_certificate": 3}


def test_calls_that_go_through_quicken_the_pace_a_little():
    pacer, clock = paced(10)
    for _ in range(10):
        pacer.succeeded("register_certificate")
    assert pacer.interval("register_certificate") == pytest.approx(0.1 * 0.99**10)


def test_without_any_call_through_the_pace_starts_slow_and_halves_each_time():
    clock = Clock()
    pacer = Pacer(base=0.05, cap=0.3, clock=clock)
    intervals = []
    for _ in range(4):
        clock.now += 1.0
        pacer.throttled("update_certificate")
        intervals.append(pacer.interval("update_certificate"))
    assert intervals == pytest.approx([0.05, 0.1, 0.2, 0.3])  # up to the cap


class FlakyClient:
    """A boto3-like client whose register_certificate is throttled ``times`` times, then answers."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def register_certificate(self, **params):
        self.calls += 1
        if self.calls <= self.times:
            raise throttle()
        return {"certificateId": "c" * 64, "certificateArn": "arn:aws:iot:us-east-1:1:cert/" + "c" * 64}


def test_with_a_pacer_a_throttled_call_is_retried_until_it_goes_through():
    client = FlakyClient(times=50)  # far more than max_attempts
    slept = []
    pacer = Pacer(base=0.01, cap=0.1, clock=lambda: 0.0)  # a clock that stands still: every slot is ahead
    api = IotApi(client, max_attempts=3, sleep=slept.append, pacer=pacer)
    assert api.call("register_certificate", certificatePem="x")["certificateId"] == "c" * 64
    assert client.calls == 51 and slept and max(slept) <= 50 * 0.1
    assert pacer.throttles() == {"register_certificate": 50}


def test_without_a_pacer_throttling_gives_up_after_max_attempts():
    api = IotApi(FlakyClient(times=50), max_attempts=3, sleep=lambda s: None)
    with pytest.raises(AwsError) as caught:  # a sentence with AWS's code, never botocore's ClientError
        api.call("register_certificate", certificatePem="x")
    assert caught.value.code == "ThrottlingException" and not isinstance(caught.value, ClientError)


# -- the request -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"method": "bulk"}, "Unknown method"),
        ({"concurrency": 0}, "at least 1"),
        ({"thing_type": "no spaces"}, "--thing-type"),
        ({"group": "x" * 129}, "--group"),  # over AWS's 128 characters
        ({"policy": "a/b"}, "--policy"),
        ({"method": "task"}, "--bucket"),  # the task needs an S3 bucket and a role
        ({"method": "task", "bucket": "b"}, "--role-arn"),
    ],
)
def test_a_request_aws_would_refuse_is_refused_up_front(tmp_path, options, message):
    with pytest.raises(InvalidInputError, match=message):
        RegisterRequest(manifest=tmp_path / "manifest.jsonl", **options)


def test_results_go_beside_the_manifest_unless_told_otherwise(tmp_path):
    assert RegisterRequest(manifest=tmp_path / "m.jsonl").results_path == tmp_path / "registration.json"
    assert (
        RegisterRequest(manifest=tmp_path / "m.jsonl", results=tmp_path / "r.json").results_path == tmp_path / "r.json"
    )


# -- devices -------------------------------------------------------------------------------------------------------


def test_thing_attributes_come_from_the_subject_with_characters_aws_refuses_replaced(root_issuer, now):
    cert = root_issuer.issue_device(generate_key("ec-p256").public_key(), "dev-1", country="DE", now=now, days=1)
    assert thing_attributes(cert) == {"country": "DE", "serial": format(cert.serial_number, "x")}
    subject = make_name("dev-2", org="Acme Corp (EU)", country="FR")
    other = certificate_with_subject(root_issuer, subject, now=now, days=1)
    assert thing_attributes(other)["organization"] == "Acme_Corp__EU_"  # no spaces or brackets in a value


def device(line: int, thing: str, cert_id: str, **attributes) -> Device:
    return Device(line, thing, f"PEM of {thing}", cert_id, attributes or {"serial": f"{line:x}"})


def test_a_rerun_skips_only_devices_recorded_as_registered_whose_certificate_is_still_active():
    devices = [device(1, "a", "id-a"), device(2, "b", "id-b"), device(3, "c", "id-c"), device(4, "d", "id-d")]
    done = {"a": "id-a", "b": "id-b", "c": "id-other"}  # c was registered with another certificate
    pending, skipped = split_done(devices, done, active={"id-a", "id-c", "id-d"})
    assert [d.thing_name for d in pending] == ["b", "c", "d"]  # b's certificate is gone; d was never done
    assert [(o.thing_name, o.status) for o in skipped] == [("a", SKIPPED)]


def test_with_a_shared_certificate_the_shared_one_decides():
    devices = [device(1, "a", "id-a"), device(2, "b", "id-b")]
    pending, skipped = split_done(devices, {"a": "shared", "b": "shared"}, active={"shared"}, shared_id="shared")
    assert pending == [] and len(skipped) == 2


# -- the registration task ---------------------------------------------------------------------------------------------


SETUP = Setup(ca_pem="CA PEM", policy="device", thing_type="sensor", group="line-1")


def test_the_template_registers_with_the_ca_as_a_default_so_lines_stay_short():
    template = task_template(SETUP, ["country", "serial"])
    assert template["Parameters"]["CACertificatePem"] == {"Type": "String", "Default": "CA PEM"}
    certificate = template["Resources"]["certificate"]["Properties"]
    assert certificate == {
        "Status": "ACTIVE",
        "CertificatePem": {"Ref": "CertificatePem"},
        "CACertificatePem": {"Ref": "CACertificatePem"},
    }
    thing = template["Resources"]["thing"]["Properties"]
    assert thing["ThingTypeName"] == "sensor" and thing["ThingGroups"] == ["line-1"]
    assert thing["AttributePayload"] == {"country": {"Ref": "Attribute_country"}, "serial": {"Ref": "Attribute_serial"}}
    assert template["Resources"]["policy"]["Properties"] == {"PolicyName": "device"}


def test_without_a_ca_or_with_a_shared_certificate_the_template_says_so():
    without = task_template(Setup(ca_pem=None, policy="p", thing_type=None, group=None), [])
    assert "CACertificatePem" not in without["Parameters"]
    assert "CACertificatePem" not in without["Resources"]["certificate"]["Properties"]
    shared = task_template(Setup(ca_pem="CA", policy="p", thing_type=None, group=None, shared=("id", "arn")), [])
    assert shared["Resources"]["certificate"]["Properties"] == {"Status": "ACTIVE", "CertificateId": "id"}
    assert set(shared["Parameters"]) == {"ThingName"}


def test_input_lines_carry_the_parameters_every_device_has():
    devices = [device(1, "a", "id-a", country="DE", serial="1"), device(2, "b", "id-b", serial="2")]
    names = common_attributes(devices)
    assert names == ["serial"]
    lines = [json.loads(line) for line in input_lines(devices, SETUP, names).splitlines()]
    assert lines == [
        {"ThingName": "a", "CertificatePem": "PEM of a", "Attribute_serial": "1"},
        {"ThingName": "b", "CertificatePem": "PEM of b", "Attribute_serial": "2"},
    ]


def test_report_lines_are_matched_to_devices_by_offset_and_unreported_devices_fail():
    devices = [device(n, f"t{n}", f"id{n}") for n in range(1, 5)]
    results = [{"offset": 0, "response": {}}, {"offset": 2, "response": {}}]
    errors = [{"offset": 1, "errorMessage": "Thing name is not valid."}, {"Offset": "not a number"}]
    outcomes = outcomes_from_reports(devices, results, errors, "the task was stopped")
    assert [(o.status, o.reason) for o in outcomes] == [
        (REGISTERED, None),
        (FAILED, "Thing name is not valid"),
        (REGISTERED, None),
        (FAILED, "the task was stopped"),
    ]


def test_a_report_link_that_is_not_http_is_refused():
    from cloud.s3 import fetch_url

    with pytest.raises(AwsError, match="not an HTTP"):
        fetch_url("file:///etc/passwd")
