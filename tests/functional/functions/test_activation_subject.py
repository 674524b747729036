"""The activation Lambda's DER reader: the subject it finds equals what ``cryptography`` finds."""

from __future__ import annotations

import contextlib
import random
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from base.certificates import to_pem
from base.keys import generate_key
from ca.issue import Issuer, issue_root, make_name
from tests.certificates import certificate_with_subject
from tests.conftest import NOW
from tests.functional.functions.test_activation import app

subject = sys.modules[app.thing_from_certificate.__module__]  # certificate_subject.py, beside app.py
thing_from_certificate, subject_attributes = subject.thing_from_certificate, subject.subject_attributes
pem_to_der, CertificateFormatError = subject.pem_to_der, subject.CertificateFormatError
SHORT = {NameOID.COMMON_NAME: "CN", NameOID.COUNTRY_NAME: "C", NameOID.ORGANIZATION_NAME: "O"}
SHORT[NameOID.ORGANIZATIONAL_UNIT_NAME] = "OU"


def expected(cert: x509.Certificate) -> list[tuple[str, str]]:
    return [(SHORT[a.oid], str(a.value)) for a in cert.subject if a.oid in SHORT]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def rsa_issuer() -> Issuer:
    key = generate_key("rsa-2048")
    return Issuer(issue_root(key, make_name("RSA Root", org="Acme", country="US"), now=NOW, days=30), key)


NAMES = {
    "CN and C": x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.COMMON_NAME, "a")]
    ),
    "CN only": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor:42_b-7")]),
    "UTF-8 text": x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gerätebau"), x509.NameAttribute(NameOID.COMMON_NAME, "d")]
    ),
    "PrintableString CN": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p-1", _type=_ASN1Type.PrintableString)]),
    "BMPString OU": x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ünit", _type=_ASN1Type.BMPString)]
    ),
    "multi-valued RDN": x509.Name(
        [
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.COMMON_NAME, "m"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "O")]
            )
        ]
    ),
    "long subject (long-form lengths)": x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "u" * 60) for _ in range(5)]
        + [x509.NameAttribute(NameOID.COMMON_NAME, "L" * 64)]
    ),
}


@pytest.mark.parametrize("case", list(NAMES))
def test_the_subject_read_from_der_matches_cryptography(intermediate_issuer, case):
    cert = certificate_with_subject(intermediate_issuer, NAMES[case])
    assert subject_attributes(der(cert)) == expected(cert)


@pytest.mark.parametrize("key_type", ["ec-p384", "rsa-2048"])
def test_keys_and_signatures_of_other_sizes_do_not_matter(rsa_issuer, key_type):
    cert = certificate_with_subject(rsa_issuer, NAMES["CN and C"], key_type=key_type)
    assert thing_from_certificate(to_pem(cert).decode()) == ("a", {"country": "DE"})


def test_a_kit_device_certificate_names_its_thing_and_country(intermediate_issuer):
    cert = intermediate_issuer.issue_device(
        generate_key("ec-p256").public_key(), "dev-9", country="FR", now=NOW, days=1
    )
    chain = to_pem(cert) + to_pem(intermediate_issuer.certificate)  # a chain: the leaf comes first
    assert thing_from_certificate(chain.decode()) == ("dev-9", {"country": "FR"})


def test_a_device_without_country_gets_no_attributes(intermediate_issuer):
    cert = intermediate_issuer.issue_device(
        generate_key("ec-p256").public_key(), "dev-9", country=None, now=NOW, days=1
    )
    assert thing_from_certificate(to_pem(cert).decode()) == ("dev-9", {})


@pytest.mark.parametrize(
    "pem, problem",
    [
        ("", "not PEM"),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----", "not base64"),
        ("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----", "no tbsCertificate"),  # an empty SEQUENCE
        ("-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----", "truncated"),  # claims 256 bytes
    ],
)
def test_unreadable_certificates_are_named(pem, problem):
    with pytest.raises(CertificateFormatError, match=problem):
        thing_from_certificate(pem)


def test_corrupted_der_raises_only_certificate_format_errors(intermediate_issuer):
    original = der(certificate_with_subject(intermediate_issuer, NAMES["UTF-8 text"]))
    rng = random.Random(7)
    for _ in range(3000):
        data = bytearray(original[: rng.randrange(len(original) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(CertificateFormatError):  # anything else escaping is a bug
            subject_attributes(bytes(data))


def test_pem_to_der_takes_the_first_certificate(intermediate_issuer, root_issuer):
    pem = to_pem(intermediate_issuer.certificate) + to_pem(root_issuer.certificate)
    assert pem_to_der(pem.decode()) == der(intermediate_issuer.certificate)
