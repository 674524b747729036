"""Pure issuance: root, intermediate, device, CSR and verification certificates."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id, common_name, country
from base.errors import (
    ChainError,
    InvalidInputError,
    InvalidThingNameError,
    KeyMismatchError,
    NotACaError,
    SignatureError,
)
from base.keys import generate_key
from ca.issue import Issuer, issue_root, make_name
from ca.verify import verify_chain


def _csr(cn: str | None, key=None, country_code: str | None = None):
    key = key or generate_key("ec-p256")
    attributes = []
    if country_code:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country_code))
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(key, hashes.SHA256())


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048"])
def test_root_is_self_signed_and_verifies_as_its_own_chain(key_type, now):
    key = generate_key(key_type)
    root = issue_root(key, make_name("Root", country="US"), now=now, days=365)
    assert root.subject == root.issuer
    assert verify_chain(root, root=root, now=now) == [root]


def test_device_chains_through_the_intermediate(root_issuer, intermediate_issuer, now):
    key = generate_key("ec-p256")
    device = intermediate_issuer.issue_device(key.public_key(), "dev-1", country="DE", now=now, days=365)
    chain = verify_chain(device, root=root_issuer.certificate, intermediates=[intermediate_issuer.certificate], now=now)
    assert [common_name(c.subject) for c in chain] == ["dev-1", "Test Intermediate", "Test Root"]
    assert country(device.subject) == "DE"


def test_device_signed_by_the_root_directly_verifies(root_issuer, now):
    device = root_issuer.issue_device(generate_key("ec-p256").public_key(), "dev-2", country=None, now=now, days=30)
    verify_chain(device, root=root_issuer.certificate, now=now)
    assert country(device.subject) is None


def test_device_aki_is_the_issuer_ski(intermediate_issuer, now):
    device = intermediate_issuer.issue_device(generate_key("ec-p256").public_key(), "d", country=None, now=now, days=1)
    aki = device.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = intermediate_issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_serials_are_positive_and_fit_twenty_octets(root_issuer, now):
    for _ in range(50):
        cert = root_issuer.issue_device(generate_key("ec-p256").public_key(), "d", country=None, now=now, days=1)
        assert 0 < cert.serial_number < 2**159


def test_device_validity_never_outlives_its_issuer(intermediate_issuer, now):
    device = intermediate_issuer.issue_device(
        generate_key("ec-p256").public_key(), "d", country=None, now=now, days=99999
    )
    assert device.not_valid_after_utc == intermediate_issuer.certificate.not_valid_after_utc


def test_certificate_id_is_the_sha256_of_the_der(root_issuer):
    import hashlib

    der = root_issuer.certificate.public_bytes(serialization.Encoding.DER)
    assert certificate_id(root_issuer.certificate) == hashlib.sha256(der).hexdigest()


def test_device_from_another_ca_does_not_chain(root_issuer, now):
    other_key = generate_key("ec-p256")
    other = Issuer(issue_root(other_key, make_name("Other"), now=now, days=10), other_key)
    device = other.issue_device(generate_key("ec-p256").public_key(), "dev-x", country=None, now=now, days=1)
    with pytest.raises(ChainError, match="does not chain"):
        verify_chain(device, root=root_issuer.certificate, now=now)


def test_expired_device_does_not_verify(root_issuer, now):
    device = root_issuer.issue_device(generate_key("ec-p256").public_key(), "old", country=None, now=now, days=1)
    with pytest.raises(ChainError):
        verify_chain(device, root=root_issuer.certificate, now=now + dt.timedelta(days=3))


def test_a_device_certificate_cannot_issue(root_issuer, now):
    key = generate_key("ec-p256")
    device = root_issuer.issue_device(key.public_key(), "dev-1", country=None, now=now, days=1)
    with pytest.raises(NotACaError, match="not a CA certificate"):
        Issuer(device, key)


def test_issuer_key_must_match_its_certificate(root_issuer):
    with pytest.raises(KeyMismatchError, match="does not match"):
        Issuer(root_issuer.certificate, generate_key("ec-p256"))


def test_rsa_keys_below_2048_bits_are_refused(root_issuer, now):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidInputError, match="too weak"):
        root_issuer.issue_device(weak.public_key(), "dev-1", country=None, now=now, days=1)


def test_sign_csr_keeps_the_devices_key_and_cn(intermediate_issuer, root_issuer, now):
    key = generate_key("ec-p256")
    cert = intermediate_issuer.sign_csr(_csr("dev-csr", key), country="DE", now=now, days=30)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert common_name(cert.subject) == "dev-csr" and country(cert.subject) == "DE"
    verify_chain(cert, root=root_issuer.certificate, intermediates=[intermediate_issuer.certificate], now=now)


def test_sign_csr_prefers_the_csrs_own_country(root_issuer, now):
    cert = root_issuer.sign_csr(_csr("dev-fr", country_code="FR"), country="DE", now=now, days=30)
    assert country(cert.subject) == "FR"


def test_csr_with_a_forged_signature_is_refused(root_issuer, now):
    good = _csr("dev-1")
    # Swap the signature bytes: same subject and key, signature no longer verifies.
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    forged = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(SignatureError, match="signature does not verify"):
        root_issuer.sign_csr(forged, country=None, now=now, days=1)


@pytest.mark.parametrize(
    ("cn", "match"),
    [
        (None, "no common name"),  # CSR without CN
        ("bad name", "Invalid thing name"),  # space
    ],
)
def test_csr_cn_must_be_a_thing_name(root_issuer, now, cn, match):
    with pytest.raises(InvalidThingNameError, match=match):
        root_issuer.sign_csr(_csr(cn), country=None, now=now, days=1)


def test_verification_certificate_carries_the_registration_code(intermediate_issuer, now):
    code = "a" * 64
    cert = intermediate_issuer.issue_verification(generate_key("ec-p256").public_key(), code, now=now)
    assert common_name(cert.subject) == code
    cert.verify_directly_issued_by(intermediate_issuer.certificate)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command line not installed")
def test_openssl_verifies_a_device_chain(tmp_path, root_issuer, intermediate_issuer, now):
    device = intermediate_issuer.issue_device(
        generate_key("ec-p256").public_key(), "dev-ossl", country="DE", now=now, days=30
    )
    at = str(int((now + dt.timedelta(hours=1)).timestamp()))  # the fixed test clock, not the machine's
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(root_issuer.certificate.public_bytes(pem))
    (tmp_path / "inter.pem").write_bytes(intermediate_issuer.certificate.public_bytes(pem))
    (tmp_path / "dev.pem").write_bytes(device.public_bytes(pem))
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            at,
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "inter.pem",
            "dev.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "dev.pem: OK" in result.stdout
