"""Device certificates: what DescribeCertificate answers, and registration by the broker.

moto's DescribeCertificate leaves out ``caCertificateId`` (which the activation Lambda checks)
and ``certificateMode``, and reports a made-up validity; the answer here adds them. The broker
registers the certificate of an unknown device of an auto-registering CA with
:func:`register_device_certificate`: PENDING_ACTIVATION under the CA, id the DER SHA-256.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto.iot.models import FakeCertificate

from base.certificates import certificate_id
from emulator.store.backends import iot_arn
from emulator.store.ca_certificates import DEFAULT, ca_x509, find_ca, load_pem, naive_utc
from emulator.store.errors import CertificateValidation, InvalidRequest, ResourceNotFound

PENDING_ACTIVATION = "PENDING_ACTIVATION"
STATUSES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", PENDING_ACTIVATION)


def find_certificate(backend, cert_id: str) -> FakeCertificate:
    found = backend.certificates.get(cert_id)
    if found is None:
        raise ResourceNotFound(f"Certificate {cert_id} does not exist.")
    return found


def describe_device(backend, cert: FakeCertificate) -> dict[str, Any]:
    """DescribeCertificate's ``certificateDescription``, with what moto leaves out."""
    described = cert.to_description_dict()
    if not described.get("transferData"):
        described.pop("transferData", None)
    ca = backend.ca_certificates.get(cert.ca_certificate_id) if cert.ca_certificate_id else None
    if cert.ca_certificate_id:
        described["caCertificateId"] = cert.ca_certificate_id
    described["certificateMode"] = getattr(ca, "certificate_mode", DEFAULT)
    try:
        parsed = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    except ValueError:  # moto accepts made-up PEM when use_valid_cert is off
        return described
    described["validity"] = {"notBefore": parsed.not_valid_before_utc, "notAfter": parsed.not_valid_after_utc}
    return described


def register_device_certificate(
    backend, pem: str, *, ca_certificate_id: str, status: str = PENDING_ACTIVATION
) -> FakeCertificate:
    """Register a device certificate signed by a registered CA; a known certificate is returned as it is.

    The caller holds the region's lock. Raises ResourceNotFoundException for an unknown CA and
    CertificateValidationException when the CA did not sign the certificate.
    """
    if status not in STATUSES:
        raise InvalidRequest(f"Unknown certificate status {status!r}; use one of {', '.join(STATUSES)}.")
    cert = load_pem(pem, "certificatePem")
    cert_id = certificate_id(cert)
    existing = backend.certificates.get(cert_id)
    if existing is not None:
        return existing
    ca = find_ca(backend, ca_certificate_id)
    try:
        cert.verify_directly_issued_by(ca_x509(ca))
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateValidation(f"Certificate {cert_id} is not signed by CA {ca_certificate_id}.") from None
    return store_certificate(backend, pem, cert, status=status, ca_certificate_id=ca_certificate_id)


def store_certificate(
    backend, pem: str, cert: x509.Certificate, *, status: str, ca_certificate_id: str | None = None
) -> FakeCertificate:
    """Put a checked device certificate in moto's registry, under its DER-based id (the caller holds the lock)."""
    cert_id = certificate_id(cert)
    record = FakeCertificate(pem, status, backend.account_id, backend.region_name, ca_certificate_id)
    record.certificate_id = cert_id  # DER-based, whatever moto's use_valid_cert says
    record.arn = iot_arn(backend.region_name, backend.account_id, f"cert/{cert_id}")
    record.validity_not_before = naive_utc(cert.not_valid_before_utc)
    record.validity_not_after = naive_utc(cert.not_valid_after_utc)
    backend.certificates[cert_id] = record
    return record
