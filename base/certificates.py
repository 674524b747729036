"""Certificates and CSRs in and out of PEM, their AWS IoT ids, and a description for people."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from base.errors import MalformedError
from base.keys import key_type_of


def certificate_id(cert: x509.Certificate) -> str:
    """AWS IoT's certificateId: the lowercase hex SHA-256 of the DER bytes."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificates(data: bytes, source: str = "the certificate") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (at least one), or a clear error."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise MalformedError(f"{source} is not a PEM certificate.") from exc
    if not certs:
        raise MalformedError(f"{source} holds no certificate.")
    return certs


def load_certificate(data: bytes, source: str = "the certificate") -> x509.Certificate:
    """The first certificate of a PEM file (a chain file gives its leaf)."""
    return load_certificates(data, source)[0]


def load_csr(data: bytes, source: str = "the CSR") -> x509.CertificateSigningRequest:
    """A PEM (or DER) certificate signing request, or a clear error."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise MalformedError(f"{source} is not a certificate signing request.") from exc


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def country(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return str(values[0].value) if values else None


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def describe(cert: x509.Certificate) -> dict:
    """What a certificate is, as a flat dictionary (used by ``jitr ca show``)."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "commonName": common_name(cert.subject),
        "serial": format(cert.serial_number, "x"),
        "notBefore": cert.not_valid_before_utc.isoformat(),
        "notAfter": cert.not_valid_after_utc.isoformat(),
        "isCa": is_ca(cert),
        "selfSigned": cert.subject == cert.issuer,
        "keyType": key_type_of(cert.public_key()),
        "certificateId": certificate_id(cert),
    }
