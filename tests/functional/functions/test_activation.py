"""The JITR activation Lambda against moto: activation, idempotence, fleet membership, failures and retries."""

from __future__ import annotations

import json
import threading
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.x509.oid import NameOID
from moto import mock_aws
from moto.iot.models import FakeCertificate

from base.certificates import to_pem
from base.keys import generate_key
from ca.issue import Issuer
from ca.jitp_template import device_policy
from tests.certificates import certificate_with_subject
from tests.conftest import NOW
from tests.functional.functions.loading import load_function

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "tests" / "events"
POLICY = "jitr-device-policy"
FLEET = "/jitr/fleet"


app: Any = load_function("jitr_activation")


def decisions(capsys) -> list[dict]:
    """The JSON log lines the function printed, in order."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def throttle(code: str = "ThrottlingException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "Operation")


class Wrapped:
    """A client whose operations can fail ``failures[name]`` times with ``code`` before calling through."""

    def __init__(self, client, failures: dict[str, int], code: str = "ThrottlingException") -> None:
        self.client, self.failures, self.code = client, dict(failures), code
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self.client, name)

        def call(**kwargs):
            with self.lock:
                self.calls.append(name)
                fail = self.failures.get(name, 0) > 0
                if fail:
                    self.failures[name] -= 1
            if fail:
                raise throttle(self.code)
            return target(**kwargs)

        call.__name__ = name
        return call


class AwsLikeThings(Wrapped):
    """CreateThing as AWS answers it: an existing thing with other attributes is ResourceAlreadyExists."""

    def create_thing(self, **kwargs):
        with self.lock:  # moto would silently replace the thing
            try:
                existing = self.client.describe_thing(thingName=kwargs["thingName"])
            except ClientError:
                return self.client.create_thing(**kwargs)
        if existing["attributes"] != kwargs.get("attributePayload", {}).get("attributes", {}):
            raise throttle("ResourceAlreadyExistsException")
        return {"thingName": existing["thingName"], "thingArn": existing["thingArn"]}


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    describe = FakeCertificate.to_description_dict

    def with_ca(self):  # AWS (and the kit's emulator) return caCertificateId; moto leaves it out
        return describe(self) | ({"caCertificateId": self.ca_certificate_id} if self.ca_certificate_id else {})

    monkeypatch.setattr(FakeCertificate, "to_description_dict", with_ca)
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        yield types.SimpleNamespace(iot=boto3.client("iot"), ssm=boto3.client("ssm"))


@dataclass
class Stack:
    """What the SAM stack and `jitr ca register` leave in the account: the CA, the device policy, the config."""

    iot: Any  # boto3 clients (moto)
    ssm: Any
    issuer: Issuer
    ca_pem: str
    config: Any  # the function's own Config

    def device(self, name: str = "dev-1", *, status: str = "PENDING_ACTIVATION", issuer=None, country="DE"):
        issuer = issuer or self.issuer
        cert = issuer.issue_device(generate_key("ec-p256").public_key(), name, country=country, now=NOW, days=365)
        return self.register(to_pem(cert).decode(), status=status, issuer=issuer)

    def register(self, pem: str, *, status: str = "PENDING_ACTIVATION", issuer=None) -> tuple[str, str]:
        ca_pem = to_pem(issuer.certificate).decode() if issuer else self.ca_pem
        registered = self.iot.register_certificate(certificatePem=pem, caCertificatePem=ca_pem, status=status)
        return registered["certificateId"], registered["certificateArn"]

    def event(self, certificate_id: str, name: str = "jitr_registration.json") -> dict:
        event = json.loads((EVENTS / name).read_text())
        return event | {"certificateId": certificate_id, "caCertificateId": self.config.ca_certificate_id}

    def handle(self, event, *, iot=None, config=None, sleeps: list | None = None):
        clients = app.Clients(iot=iot or self.iot, ssm=self.ssm)
        call = app.Retrier((config or self.config).max_attempts, sleep=(sleeps if sleeps is not None else []).append)
        return app.handle(event, config=config or self.config, clients=clients, call=call)

    def status(self, certificate_id: str) -> str:
        return self.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]

    def things(self) -> list[str]:
        return [thing["thingName"] for thing in self.iot.list_things()["things"]]

    def assert_untouched(self, certificate_id: str, arn: str, status: str = "PENDING_ACTIVATION") -> None:
        assert self.status(certificate_id) == status
        assert self.things() == []
        assert self.iot.list_attached_policies(target=arn)["policies"] == []


@pytest.fixture
def stack(aws, intermediate_issuer) -> Stack:
    ca_pem = to_pem(intermediate_issuer.certificate).decode()
    ca_id = aws.iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True, allowAutoRegistration=True)
    aws.iot.create_policy(policyName=POLICY, policyDocument=json.dumps(device_policy()))
    config = app.Config(ca_certificate_id=ca_id["certificateId"], policy_name=POLICY)
    return Stack(aws.iot, aws.ssm, intermediate_issuer, ca_pem, config)


def assert_activated(stack: Stack, certificate_id: str, arn: str, thing: str = "dev-1") -> None:
    assert stack.status(certificate_id) == "ACTIVE"
    assert stack.things() == [thing]
    owner = stack.config.ca_certificate_id
    assert stack.iot.describe_thing(thingName=thing)["attributes"] == {"country": "DE", "caCertificateId": owner}
    assert stack.iot.list_thing_principals(thingName=thing)["principals"] == [arn]
    assert [p["policyName"] for p in stack.iot.list_attached_policies(target=arn)["policies"]] == [POLICY]


# -- activation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_file",
    [
        "jitr_registration.json",  # certificateRegistrationTimestamp as a number
        "jitr_registration_string_timestamp.json",  # ... as a string of milliseconds
        "jitr_registration_null_timestamp_source_ip.json",  # ... as null, with an extra sourceIp
    ],
)
def test_a_pending_device_of_the_ca_is_activated_with_its_thing_and_policy(stack, capsys, event_file):
    certificate_id, arn = stack.device("dev-1")
    result = stack.handle(stack.event(certificate_id, event_file))
    assert result["outcome"] == "activated" and result["thingName"] == "dev-1"
    assert_activated(stack, certificate_id, arn)
    [line] = decisions(capsys)
    assert line["decision"] == "activated" and line["certificateId"] == certificate_id and line["level"] == "info"


def test_lambda_handler_reads_its_configuration_from_the_environment(stack, monkeypatch, capsys):
    certificate_id, arn = stack.device("dev-1")
    monkeypatch.setenv("CA_CERTIFICATE_ID", stack.config.ca_certificate_id)
    monkeypatch.setenv("POLICY_NAME", POLICY)
    monkeypatch.setattr(app, "_default_clients", app.Clients())  # boto3 clients made on first use, under moto
    context = types.SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 60_000)
    assert app.lambda_handler(stack.event(certificate_id), context)["outcome"] == "activated"
    assert_activated(stack, certificate_id, arn)
    assert decisions(capsys)[-1]["requestId"] == "req-1"


def test_concurrent_first_invocations_of_a_container_make_one_iot_client(stack, monkeypatch, capsys):
    devices = [stack.device(f"dev-{n}") for n in range(1, 9)]
    monkeypatch.setenv("CA_CERTIFICATE_ID", stack.config.ca_certificate_id)
    monkeypatch.setenv("POLICY_NAME", POLICY)
    monkeypatch.setattr(app, "_default_clients", app.Clients())
    made, make = [], app.Clients._make
    monkeypatch.setattr(app.Clients, "_make", lambda self, service: made.append(service) or make(self, service))
    context = types.SimpleNamespace(aws_request_id="req-1", get_remaining_time_in_millis=lambda: 60_000)
    barrier, outcomes = threading.Barrier(len(devices)), []

    def invoke(certificate_id: str) -> None:
        barrier.wait(10)
        outcomes.append(app.lambda_handler(stack.event(certificate_id), context)["outcome"])

    threads = [threading.Thread(target=invoke, args=(certificate_id,)) for certificate_id, _arn in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["activated"] * len(devices)
    assert made == ["iot"]  # a boto3 client costs tens of milliseconds of CPU: made once, not per invocation


def test_lambda_handler_without_its_configuration_fails_loudly(monkeypatch, capsys):
    monkeypatch.delenv("CA_CERTIFICATE_ID", raising=False)
    with pytest.raises(app.ConfigurationError, match="CA_CERTIFICATE_ID"):
        app.lambda_handler(json.loads((EVENTS / "jitr_registration.json").read_text()), None)
    assert decisions(capsys)[-1]["decision"] == "failed"


# -- idempotence -----------------------------------------------------------------------------------------


def test_a_duplicate_event_is_a_no_op(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    event = stack.event(certificate_id)
    assert stack.handle(event)["outcome"] == "activated"
    assert stack.handle(event)["outcome"] == "already-active"
    assert_activated(stack, certificate_id, arn)
    assert [line["decision"] for line in decisions(capsys)] == ["activated", "already-active"]


def test_concurrent_events_for_one_device_activate_it_once(stack):
    certificate_id, arn = stack.device("dev-1")
    iot, event, barrier, outcomes = AwsLikeThings(stack.iot, {}), stack.event(certificate_id), threading.Barrier(8), []

    def run():
        barrier.wait()
        outcomes.append(stack.handle(event, iot=iot)["outcome"])

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 8 and set(outcomes) <= {"activated", "already-active"} and "activated" in outcomes
    assert_activated(stack, certificate_id, arn)


def test_an_event_for_an_already_active_certificate_changes_nothing(stack, capsys):
    certificate_id, arn = stack.device("dev-1", status="ACTIVE")  # e.g. activated by hand before the event
    assert stack.handle(stack.event(certificate_id))["outcome"] == "already-active"
    stack.assert_untouched(certificate_id, arn, status="ACTIVE")


def test_an_event_for_a_deleted_certificate_is_ignored(stack):
    certificate_id, _arn = stack.device("dev-1")
    stack.iot.delete_certificate(certificateId=certificate_id)
    assert stack.handle(stack.event(certificate_id))["outcome"] == "ignored"
    assert stack.things() == []


def test_a_partial_failure_is_completed_by_the_next_event(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    failing = Wrapped(stack.iot, {"attach_thing_principal": 1}, code="InvalidRequestException")
    with pytest.raises(ClientError):
        stack.handle(stack.event(certificate_id), iot=failing)
    assert stack.status(certificate_id) == "PENDING_ACTIVATION"  # activation is last: nothing half-active
    assert stack.things() == ["dev-1"]
    assert stack.handle(stack.event(certificate_id), iot=AwsLikeThings(stack.iot, {}))["outcome"] == "activated"
    assert_activated(stack, certificate_id, arn)
    assert [line["decision"] for line in decisions(capsys)] == ["failed", "activated"]


def test_an_existing_thing_with_other_attributes_is_reused(stack):
    certificate_id, arn = stack.device("dev-1")
    stack.iot.create_thing(thingName="dev-1", attributePayload={"attributes": {"country": "DE"}})
    stack.iot.update_thing(thingName="dev-1", attributePayload={"attributes": {"model": "x1"}, "merge": True})
    result = stack.handle(stack.event(certificate_id), iot=AwsLikeThings(stack.iot, {}))
    assert result["outcome"] == "activated" and result["thingCreated"] is False
    assert stack.status(certificate_id) == "ACTIVE"


# -- a thing belongs to one CA: no device of another fleet takes it over (pain point 8) ----------------------


@pytest.fixture
def other_fleet(stack, root_issuer) -> Stack:
    """A second stack in the same account: its own CA (the root here) and its own activation config."""
    ca_pem = to_pem(root_issuer.certificate).decode()
    ca_id = stack.iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True, allowAutoRegistration=True)
    config = app.Config(ca_certificate_id=ca_id["certificateId"], policy_name=POLICY)
    return Stack(stack.iot, stack.ssm, root_issuer, ca_pem, config)


def test_a_device_of_another_ca_is_refused_the_thing_its_cn_names(stack, other_fleet, capsys):
    iot = AwsLikeThings(stack.iot, {})
    first_id, first_arn = stack.device("sensor-1")
    assert stack.handle(stack.event(first_id), iot=iot)["outcome"] == "activated"
    second_id, second_arn = other_fleet.device("sensor-1")
    result = other_fleet.handle(other_fleet.event(second_id), iot=iot)
    assert result["outcome"] == "refused" and "belongs to CA" in result["reason"]
    assert other_fleet.status(second_id) == "PENDING_ACTIVATION"  # not ACTIVE, and attached to nothing
    assert stack.iot.list_thing_principals(thingName="sensor-1")["principals"] == [first_arn]
    assert stack.iot.list_attached_policies(target=second_arn)["policies"] == []
    assert decisions(capsys)[-1]["decision"] == "refused"


def test_a_thing_made_without_an_owner_is_refused_to_a_ca_whose_certificate_is_not_on_it(stack, other_fleet):
    first_id, first_arn = stack.device("sensor-1", status="ACTIVE")
    stack.iot.create_thing(thingName="sensor-1")  # made by hand, or by an older kit: no owner attribute
    stack.iot.attach_thing_principal(thingName="sensor-1", principal=first_arn)
    second_id, second_arn = other_fleet.device("sensor-1")
    result = other_fleet.handle(other_fleet.event(second_id), iot=AwsLikeThings(stack.iot, {}))
    assert result["outcome"] == "refused" and first_id in result["reason"]
    assert other_fleet.status(second_id) == "PENDING_ACTIVATION"
    assert stack.iot.list_thing_principals(thingName="sensor-1")["principals"] == [first_arn]


def test_a_new_certificate_of_the_same_ca_for_its_thing_is_activated(stack):
    iot = AwsLikeThings(stack.iot, {})
    first_id, first_arn = stack.device("sensor-1")
    assert stack.handle(stack.event(first_id), iot=iot)["outcome"] == "activated"
    rotated_id, rotated_arn = stack.device("sensor-1")  # rotation: a new key and certificate, same CA
    assert stack.handle(stack.event(rotated_id), iot=iot)["outcome"] == "activated"
    assert stack.status(rotated_id) == "ACTIVE"
    assert sorted(stack.iot.list_thing_principals(thingName="sensor-1")["principals"]) == sorted(
        [first_arn, rotated_arn]
    )


def test_a_certificate_revoked_during_activation_is_not_activated(stack):
    certificate_id, _arn = stack.device("dev-1")
    iot = Wrapped(stack.iot, {"update_certificate": 1}, code="CertificateStateException")
    assert stack.handle(stack.event(certificate_id), iot=iot)["outcome"] == "ignored"
    assert stack.status(certificate_id) == "PENDING_ACTIVATION"


# -- what is not activated -------------------------------------------------------------------------------


def test_an_event_from_another_ca_is_ignored(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    event = stack.event(certificate_id) | {"caCertificateId": "ab" * 32}
    assert stack.handle(event)["outcome"] == "ignored"
    stack.assert_untouched(certificate_id, arn)
    assert "not the configured CA" in decisions(capsys)[-1]["reason"]


def test_a_certificate_of_another_ca_is_ignored_even_if_the_event_names_ours(stack, root_issuer):
    stack.iot.register_ca_certificate(caCertificate=to_pem(root_issuer.certificate).decode(), setAsActive=True)
    certificate_id, arn = stack.device("dev-1", issuer=root_issuer)
    assert stack.handle(stack.event(certificate_id))["outcome"] == "ignored"
    stack.assert_untouched(certificate_id, arn)


@pytest.mark.parametrize("status", ["REVOKED", "INACTIVE", "REGISTER_INACTIVE"])
def test_a_certificate_that_is_not_pending_is_left_alone(stack, capsys, status):
    certificate_id, arn = stack.device("dev-1", status=status)
    assert stack.handle(stack.event(certificate_id))["outcome"] == "ignored"
    stack.assert_untouched(certificate_id, arn, status=status)
    assert decisions(capsys)[-1]["status"] == status


def test_malformed_events_create_nothing(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    samples = json.loads((EVENTS / "jitr_registration_malformed.json").read_text())
    for sample in samples.values():
        event = sample["event"]
        if isinstance(event, dict) and "certificateId" in event and "caCertificateId" in event:
            event = event | {"certificateId": certificate_id, "caCertificateId": stack.config.ca_certificate_id}
            if sample["reason"].startswith(("certificateId", "caCertificateId")):
                event = sample["event"]  # keep the malformed id
        assert stack.handle(event)["outcome"] == "rejected"
    stack.assert_untouched(certificate_id, arn)
    assert {line["decision"] for line in decisions(capsys)} == {"rejected"}


@pytest.mark.parametrize(
    "attributes, reason",
    [
        ([x509.NameAttribute(NameOID.COMMON_NAME, "dev 1!")], "not a thing name"),  # a space and a '!'
        ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")], "0 common names"),  # no CN at all
        ([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in ("dev-1", "dev-2")], "2 common names"),  # ambiguous
    ],
)
def test_a_certificate_without_one_valid_thing_name_is_refused(stack, capsys, attributes, reason):
    pem = to_pem(certificate_with_subject(stack.issuer, x509.Name(attributes))).decode()
    certificate_id, arn = stack.register(pem)
    assert stack.handle(stack.event(certificate_id))["outcome"] == "refused"
    stack.assert_untouched(certificate_id, arn)
    assert reason in decisions(capsys)[-1]["reason"]


@pytest.mark.parametrize(
    "value, thing, outcome",
    [
        ("dev-1,dev-2", "dev-1", "activated"),  # in a comma-separated allow-list
        ("dev-2\ndev-3", "dev-1", "refused"),  # not in a newline-separated allow-list
        ("re:dev-[0-9]+", "dev-7", "activated"),  # matches the pattern
        ("re:dev-[0-9]+", "dev-7x", "refused"),  # the pattern must match the whole name
        ("re:dev-(", "dev-1", "refused"),  # an invalid pattern admits nobody
        (None, "dev-1", "refused"),  # a missing parameter admits nobody
    ],
)
def test_fleet_membership_comes_from_ssm(stack, capsys, value, thing, outcome):
    if value is not None:
        stack.ssm.put_parameter(Name=FLEET, Value=value, Type="String")
    certificate_id, arn = stack.device(thing)
    config = replace(stack.config, fleet_parameter_name=FLEET)
    assert stack.handle(stack.event(certificate_id), config=config)["outcome"] == outcome
    if outcome == "refused":
        stack.assert_untouched(certificate_id, arn)
        assert decisions(capsys)[-1]["thingName"] == thing
    else:
        assert_activated(stack, certificate_id, arn, thing)


# -- throttling ------------------------------------------------------------------------------------------


def test_throttled_calls_are_retried_with_backoff_until_they_succeed(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    operations = ("describe_certificate", "create_thing", "attach_policy", "attach_thing_principal")
    iot = Wrapped(stack.iot, dict.fromkeys(operations + ("update_certificate",), 3))
    sleeps: list[float] = []
    assert stack.handle(stack.event(certificate_id), iot=iot, sleeps=sleeps)["outcome"] == "activated"
    assert_activated(stack, certificate_id, arn)
    assert len(sleeps) == 15 and all(0 <= delay <= 0.4 for delay in sleeps)  # full jitter under 0.1 * 2**n
    retries = [line for line in decisions(capsys) if line["decision"] == "retry"]
    assert len(retries) == 15 and {line["code"] for line in retries} == {"ThrottlingException"}


def test_a_throttled_activation_stops_once_another_invocation_has_activated_the_certificate(stack, capsys):
    certificate_id, arn = stack.device("dev-1")
    iot = Wrapped(stack.iot, {"update_certificate": 100})

    def another_invocation_activates(_delay: float) -> None:
        stack.iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")

    call = app.Retrier(8, sleep=another_invocation_activates)
    clients = app.Clients(iot=iot, ssm=stack.ssm)
    result = app.handle(stack.event(certificate_id), config=stack.config, clients=clients, call=call)
    assert result["outcome"] == "already-active"
    assert iot.calls.count("update_certificate") == 1  # no second UpdateCertificate spent on an ACTIVE certificate
    assert iot.calls[-1] == "describe_certificate"
    assert [line["decision"] for line in decisions(capsys)] == ["retry", "already-active"]


def test_a_status_check_that_is_itself_throttled_lets_the_activation_retry(stack):
    certificate_id, _arn = stack.device("dev-1")
    iot = Wrapped(stack.iot, {"describe_certificate": 1})
    assert app.certificate_is_active(iot, certificate_id) is False and iot.calls == ["describe_certificate"]
    stack.iot.update_certificate(certificateId=certificate_id, newStatus="ACTIVE")
    assert app.certificate_is_active(iot, certificate_id) is True


def test_throttling_that_outlasts_the_retries_fails_without_activating(stack, capsys):
    certificate_id, _arn = stack.device("dev-1")
    iot = Wrapped(stack.iot, {"update_certificate": 100})
    with pytest.raises(ClientError, match="Rate exceeded"):
        stack.handle(stack.event(certificate_id), iot=iot, config=replace(stack.config, max_attempts=4))
    assert iot.calls.count("update_certificate") == 4
    assert stack.status(certificate_id) == "PENDING_ACTIVATION"
    failed = decisions(capsys)[-1]
    assert failed["decision"] == "failed" and failed["error"] == "ThrottlingException" and failed["level"] == "error"
    assert failed["thingName"] == "dev-1" and failed["certificateId"] == certificate_id
