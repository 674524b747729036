"""What AWS IoT Core refuses on connect, what it registers, and the events it publishes about connections."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from base.certificates import to_pem
from base.keys import generate_key, private_key_pem
from ca.issue import Issuer, issue_root
from ca.store import PkiStore
from tests.e2e.conftest import (
    JITP_ROLE,
    NOT_AUTHORIZED,
    Device,
    certificate_id_of,
    create_rule,
    log_action,
    logged,
    mint,
    register_ca,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def log_registrations(session, ca_id: str) -> str:
    """A rule logging the CA's registration events; its log group."""
    sql = f"SELECT * FROM '$aws/events/certificates/registered/{ca_id}'"
    create_rule(session, "log_registrations", sql, [log_action("/test/registrations")])
    return "/test/registrations"


def assert_refused(emulator, chain: Path, key: Path, client_id: str, *, host: str | None = None) -> None:
    """CONNACK 5 (not authorized) and AWS IoT did not register the certificate on the way."""
    rc, client = Device(emulator, chain, key, client_id, host=host).connect_once()
    assert (rc, client) == (NOT_AUTHORIZED, None)
    assert emulator.api.registry().certificate(certificate_id_of(chain)) is None


def write_device(folder: Path, issuer: Issuer, thing: str, *, now: dt.datetime, days: int, ca_pem: bytes):
    """A device certificate from ``issuer`` written with ``ca_pem`` as its chain; (chain, key)."""
    key = generate_key("ec-p256")
    cert = issuer.issue_device(key.public_key(), thing, country="DE", now=now, days=days)
    folder.mkdir(parents=True, exist_ok=True)
    chain, key_file = folder / f"{thing}.chain.pem", folder / f"{thing}.key"
    chain.write_bytes(to_pem(cert) + ca_pem)
    key_file.write_bytes(private_key_pem(key))
    return chain, key_file


# -- refused on connect --------------------------------------------------------------------------------


def test_a_device_of_a_ca_that_was_never_registered_is_refused(jitr, pki, emulator, tmp_path):
    register_ca(jitr, pki)  # another CA is registered and auto-registering: it must not matter
    other = tmp_path / "other-pki"
    assert jitr("ca", "init", "--dir", other, "--country", "DE").exit_code == 0
    assert_refused(emulator, *mint(jitr, other, "dev-1"), "dev-1")


@pytest.mark.parametrize(
    "change",
    [
        {"newStatus": "INACTIVE"},  # the CA is deactivated
        {"newAutoRegistrationStatus": "DISABLE"},  # the CA is active but no longer auto-registers
    ],
    ids=["ca-inactive", "auto-registration-disabled"],
)
def test_a_new_device_of_a_ca_that_does_not_auto_register_is_refused(jitr, pki, emulator, aws, change):
    ca_id = register_ca(jitr, pki)
    aws.client("iot").update_ca_certificate(certificateId=ca_id, **change)
    assert_refused(emulator, *mint(jitr, pki, "dev-1"), "dev-1")


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED"])
def test_a_certificate_deactivated_after_activation_is_refused(jitr, pki, emulator, aws, status):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    chain, key = mint(jitr, pki, "dev-1")
    device = Device(emulator, chain, key, "dev-1")
    client, history = device.connect_until_accepted()
    assert history == [0]  # JITP: provisioned and accepted
    client.disconnect()
    cert_id = certificate_id_of(chain)
    aws.client("iot").update_certificate(certificateId=cert_id, newStatus=status)
    assert device.connect_once() == (NOT_AUTHORIZED, None)
    assert emulator.api.registry().certificate(cert_id).status == status  # not re-registered, not re-provisioned


@pytest.mark.parametrize(
    "days_ago",
    [
        10,  # issued for one day, ten days ago: expired
        -10,  # issued for one day, ten days from now: not yet valid
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_certificate_outside_its_validity_is_refused(jitr, pki, emulator, tmp_path, days_ago):
    register_ca(jitr, pki)
    signer = PkiStore(pki).signer(None)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    chain, key = write_device(tmp_path / "devices", signer, "dev-1", now=now, days=1, ca_pem=to_pem(signer.certificate))
    assert_refused(emulator, chain, key, "dev-1")


def test_a_certificate_naming_the_registered_ca_but_signed_by_another_key_is_refused(jitr, pki, emulator, tmp_path):
    register_ca(jitr, pki)
    real = PkiStore(pki).signer(None)
    now = dt.datetime.now(dt.UTC)
    impostor_key = generate_key("ec-p256")
    impostor = Issuer(issue_root(impostor_key, real.certificate.subject, now=now, days=30), impostor_key)
    chain, key = write_device(
        tmp_path / "forged", impostor, "dev-1", now=now, days=1, ca_pem=to_pem(real.certificate)
    )  # the chain even carries the genuine CA certificate: only the signature gives the forgery away
    assert_refused(emulator, chain, key, "dev-1")


# -- leaf only: the chain or SNI (pain point 3) -------------------------------------------------------


def test_a_device_sending_only_its_certificate_and_no_sni_is_refused(jitr, pki, emulator):
    register_ca(jitr, pki)
    _, key = mint(jitr, pki, "dev-1")
    leaf = pki / "devices/certs/dev-1.pem"
    assert_refused(emulator, leaf, key, "dev-1", host="127.0.0.1")  # an IP address: the client sends no SNI


def test_a_device_sending_only_its_certificate_with_sni_is_registered_by_jitr(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki)
    group = log_registrations(aws, ca_id)
    _, key = mint(jitr, pki, "dev-1")
    leaf = pki / "devices/certs/dev-1.pem"
    assert Device(emulator, leaf, key, "dev-1").connect_once() == (None, None)  # dropped: JITR's first connect
    cert_id = certificate_id_of(leaf)
    assert emulator.api.registry().certificate(cert_id).status == "PENDING_ACTIVATION"
    assert wait_for(lambda: logged(emulator, group))[0]["certificateId"] == cert_id


def test_a_device_of_an_sni_only_ca_must_send_sni_even_with_the_full_chain(jitr, pki, emulator):
    register_ca(jitr, pki, "--mode", "sni-only")
    chain, key = mint(jitr, pki, "dev-1")
    assert_refused(emulator, chain, key, "dev-1", host="127.0.0.1")
    assert Device(emulator, chain, key, "dev-1").connect_once() == (None, None)  # with SNI: JITR registers it
    assert emulator.api.registry().certificate(certificate_id_of(chain)).status == "PENDING_ACTIVATION"


# -- events AWS IoT publishes ------------------------------------------------------------------------


def test_the_registration_event_is_published_again_on_every_connect_while_pending(jitr, pki, emulator, aws):
    ca_id = register_ca(jitr, pki)  # no stack: nothing activates the certificate
    group = log_registrations(aws, ca_id)
    chain, key = mint(jitr, pki, "dev-1")
    device = Device(emulator, chain, key, "dev-1")
    for attempt in range(1, 4):
        assert device.connect_once() == (None, None)
        wait_for(lambda n=attempt: len(logged(emulator, group)) == n)
    events = logged(emulator, group)
    cert_id = certificate_id_of(chain)
    assert {e["certificateId"] for e in events} == {cert_id}
    assert all(e["caCertificateId"] == ca_id and e["certificateStatus"] == "PENDING_ACTIVATION" for e in events)
    assert all(e["awsAccountId"] == emulator.info()["account_id"] for e in events)
    assert len({e["certificateRegistrationTimestamp"] for e in events}) == 1  # registered once, announced thrice
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert emulator.api.registry().certificate(cert_id).status == "PENDING_ACTIVATION"


def test_presence_events_are_published_on_connect_and_disconnect(jitr, pki, emulator, aws):
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE)
    create_rule(aws, "presence", "SELECT * FROM '$aws/events/presence/+/+'", [log_action("/test/presence")])
    chain, key = mint(jitr, pki, "dev-1")
    client, _ = Device(emulator, chain, key, "dev-1").connect_until_accepted()
    client.disconnect()
    connected, disconnected = wait_for(
        lambda: len(logged(emulator, "/test/presence")) == 2 and logged(emulator, "/test/presence")
    )
    assert connected["eventType"] == "connected" and disconnected["eventType"] == "disconnected"
    for event in (connected, disconnected):
        assert event["clientId"] == "dev-1"
        assert event["principalIdentifier"] == certificate_id_of(chain)
        assert event["ipAddress"] == "127.0.0.1"
        assert isinstance(event["timestamp"], int) and "versionNumber" in event
    assert connected["sessionIdentifier"] == disconnected["sessionIdentifier"]
    assert disconnected["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert disconnected["clientInitiatedDisconnect"] is True


def test_a_refused_connection_publishes_no_presence_event(jitr, pki, emulator, aws):
    create_rule(aws, "presence", "SELECT * FROM '$aws/events/presence/+/+'", [log_action("/test/presence")])
    assert_refused(emulator, *mint(jitr, pki, "dev-1"), "dev-1")  # the CA is not registered yet
    ca_id = register_ca(jitr, pki)
    group = log_registrations(aws, ca_id)
    chain, key = mint(jitr, pki, "dev-2")
    assert Device(emulator, chain, key, "dev-2").connect_once() == (None, None)  # dropped by JITR
    wait_for(lambda: logged(emulator, group))  # events run in order: presence would have come before
    assert logged(emulator, "/test/presence") == []


def test_a_jitp_template_that_fails_drops_the_device_and_logs_why_with_its_cause(jitr, pki, emulator, tmp_path, caplog):
    template = {
        "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "no-such-policy"}},
        },
    }
    template["Parameters"]["AWS::IoT::Certificate::Id"] = {"Type": "String"}
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    register_ca(jitr, pki, "--jitp", "--role-arn", JITP_ROLE, "--template", path)
    chain, key = mint(jitr, pki, "jitp-broken")
    with caplog.at_level("WARNING", logger="jitr.emulator"):
        assert Device(emulator, chain, key, "jitp-broken").connect_once() == (None, None)  # dropped, as on AWS
    failures = [r for r in caplog.records if r.getMessage().startswith("JITP failed for certificate")]
    assert failures and certificate_id_of(chain) in failures[0].getMessage()
    assert failures[0].exc_info is not None  # the cause, with its traceback, not only a disconnect reason
