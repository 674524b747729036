"""fleet/audit.py: each check fires on what it names, and stays quiet on what the kit makes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca.jitp_template import device_policy
from fleet import audit
from fleet.claim import claim_policy, rotation_policy

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
ARN = "arn:aws:iot:us-east-1:123456789012"


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(key=None, *, days: int = 365, issuer=None, issuer_key=None, serial: int = 1000, cn: str = "dev"):
    key = key or ec.generate_private_key(ec.SECP256R1())
    issuer_key = issuer_key or key
    return (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer or name(cn))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .sign(issuer_key, hashes.SHA256())
    )


def checks(findings) -> list[str]:
    return [finding.check for finding in findings]


def test_a_good_device_certificate_has_no_finding():
    assert audit.device_certificate_findings("c", certificate(), now=NOW, days=30, crls=audit.CrlIndex()) == []


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        (lambda: certificate(days=10), [audit.DEVICE_EXPIRING]),
        (
            lambda: certificate(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            [audit.DEVICE_KEY_QUALITY],
        ),
        (lambda: certificate(ec.generate_private_key(ec.SECP256K1())), [audit.DEVICE_KEY_QUALITY]),
    ],
)
def test_expiring_and_weak_device_certificates_are_findings(cert, expected):
    assert checks(audit.device_certificate_findings("c", cert(), now=NOW, days=30, crls=audit.CrlIndex())) == expected


def crl_of(issuer_cert, issuer_key, *serials: int) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=30))
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
        )
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_certificate_on_its_issuers_verified_crl_is_a_finding_and_an_unverified_crl_counts_for_nothing():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate(ca_key, cn="ca", serial=1)
    device = certificate(issuer=ca.subject, issuer_key=ca_key, serial=77)
    forged = crl_of(ca, ec.generate_private_key(ec.SECP256R1()), 77)  # names the CA, signed by another key

    index = audit.CrlIndex([crl_of(ca, ca_key, 77), forged])
    assert index.trust([ca]) == [forged]

    found = audit.device_certificate_findings("c", device, now=NOW, days=30, crls=index)
    assert checks(found) == [audit.REVOKED_DEVICE_ACTIVE]
    assert "4d" in found[0].why  # the serial, in hex
    assert audit.CrlIndex([forged]).trust([ca]) == [forged]


def ca_description(status="ACTIVE", auto="ENABLE", config=None) -> dict:
    return {
        "certificateId": "ca1",
        "status": status,
        "autoRegistrationStatus": auto,
        "registrationConfig": config or {},
    }


def test_an_auto_registering_ca_needs_a_template_or_a_rule():
    ca = certificate(cn="ca")
    plain = audit.ca_certificate_findings(ca_description(), ca, now=NOW, days=30, crls=audit.CrlIndex(), handled=False)
    assert checks(plain) == [audit.CA_UNHANDLED]
    rule = "SELECT * FROM '$aws/events/certificates/registered/ca1'"
    assert audit.ca_handled(ca_description(), [rule])
    assert audit.ca_handled(ca_description(config={"templateBody": "{}"}), [])
    assert not audit.ca_handled(ca_description(), ["SELECT * FROM 'devices/#'"])
    none = audit.CrlIndex()
    off = audit.ca_certificate_findings(ca_description(auto="DISABLE"), ca, now=NOW, days=30, crls=none, handled=False)
    assert off == []
    inactive = audit.ca_certificate_findings(ca_description(status="INACTIVE"), certificate(days=3), now=NOW, days=30,
                                             crls=audit.CrlIndex(), handled=False)  # fmt: skip
    assert inactive == []


def test_the_kits_own_policies_are_not_overly_permissive():
    for document in (
        json.dumps(device_policy("devices/fleet-a")),
        claim_policy(ARN, "factory"),
        rotation_policy(ARN, "rotate"),
    ):
        assert audit.policy_findings("p", document) == []


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "Resource": f"{ARN}:topic/a"},
        {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": f"{ARN}:client/*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/*"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{ARN}:topicfilter/a", f"{ARN}:topicfilter/#"]},
    ],
)
def test_wildcard_actions_and_mqtt_actions_on_everything_are_overly_permissive(statement):
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    assert checks(audit.policy_findings("p", document)) == [audit.POLICY_PERMISSIVE]


def test_a_deny_on_a_topic_with_an_mqtt_wildcard_is_a_potential_misconfiguration():
    statements = [
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/a/${{iot:ClientId}}"},
        {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/a/+/admin"},
    ]
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    assert checks(audit.policy_findings("p", document)) == [audit.POLICY_MISCONFIGURED]
    assert audit.policy_findings("p", "not json") == []


def test_logging_off_in_any_way_is_a_finding():
    assert audit.logging_finding(None) is not None
    assert audit.logging_finding({"disableAllLogs": True, "defaultLogLevel": "ERROR"}) is not None
    assert audit.logging_finding({"disableAllLogs": False, "defaultLogLevel": "DISABLED"}) is not None
    assert audit.logging_finding({"disableAllLogs": False, "defaultLogLevel": "ERROR", "roleArn": "r"}) is None


def test_pending_is_a_finding_only_after_the_grace_period():
    summary = {"certificateId": "c", "status": "PENDING_ACTIVATION", "creationDate": NOW - dt.timedelta(minutes=11)}
    assert audit.pending_finding(summary, now=NOW, pending_minutes=10) is not None
    assert audit.pending_finding(summary, now=NOW, pending_minutes=20) is None
    assert audit.pending_finding({**summary, "status": "ACTIVE"}, now=NOW, pending_minutes=0) is None


def test_shared_needs_two_things_and_findings_sort_by_severity():
    assert audit.shared_finding("c", ["a"]) is None
    shared = audit.shared_finding("c", ["a", "b"])
    assert shared is not None and shared.severity == audit.CRITICAL
    ordered = audit.sort_findings([audit.thing_finding("t"), shared])
    assert [f.severity for f in ordered] == [audit.CRITICAL, audit.LOW]
    assert set(shared.as_dict()) == {"check", "severity", "resourceType", "resource", "why", "fix"}
