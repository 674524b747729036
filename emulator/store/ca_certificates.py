"""CA certificates as the emulator stores them, and the checks AWS IoT makes before registering one.

:class:`EmulatedCaCertificate` is moto's ``FakeCaCertificate`` with what AWS IoT has and moto
lacks: a ``cacert/`` ARN, a DER-based id whatever moto's configuration, the validity of the real
certificate, ``autoRegistrationStatus``, ``certificateMode``, ``customerVersion`` and
``generationId``. It lives in moto's ``ca_certificates``, so moto's own CA-aware calls
(ListCertificatesByCA, RegisterCertificate with ``caCertificatePem``) keep working.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto.core.utils import utcnow
from moto.iot.models import FakeCaCertificate

from base.certificates import certificate_id, common_name, is_ca
from emulator.store.backends import iot_arn
from emulator.store.errors import CertificateValidation, InvalidRequest, RegistrationCodeValidation, ResourceNotFound

ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
ENABLE, DISABLE = "ENABLE", "DISABLE"
DEFAULT, SNI_ONLY = "DEFAULT", "SNI_ONLY"


def naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)  # moto keeps naive UTC datetimes


class EmulatedCaCertificate(FakeCaCertificate):
    """A registered CA certificate with AWS IoT's full description."""

    def __init__(
        self,
        certificate: x509.Certificate,
        pem: str,
        *,
        account_id: str,
        region_name: str,
        status: str,
        auto_registration_status: str,
        mode: str,
        registration_config: Mapping[str, str] | None,
    ) -> None:
        super().__init__(
            ca_certificate=pem,
            status=status,
            account_id=account_id,
            region_name=region_name,
            registration_config=dict(registration_config or {}),
        )
        self.certificate = certificate
        self.certificate_id = certificate_id(certificate)
        self.arn = iot_arn(region_name, account_id, f"cacert/{self.certificate_id}")
        self.validity_not_before = naive_utc(certificate.not_valid_before_utc)
        self.validity_not_after = naive_utc(certificate.not_valid_after_utc)
        self.auto_registration_status = auto_registration_status
        self.certificate_mode = mode
        self.customer_version = 1
        self.generation_id = str(uuid.uuid4())

    def changed(self) -> None:
        """Record an update the way AWS does: new version, new generation, new modification date."""
        self.last_modified_date = utcnow()
        self.customer_version += 1
        self.generation_id = str(uuid.uuid4())

    def to_description_dict(self) -> dict[str, Any]:
        return {
            "certificateArn": self.arn,
            "certificateId": self.certificate_id,
            "status": self.status,
            "certificatePem": self.certificate_pem,
            "ownedBy": self.owner,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "autoRegistrationStatus": self.auto_registration_status,
            "customerVersion": self.customer_version,
            "generationId": self.generation_id,
            "validity": {"notBefore": self.validity_not_before, "notAfter": self.validity_not_after},
            "certificateMode": self.certificate_mode,
        }


def find_ca(backend, ca_certificate_id: str) -> EmulatedCaCertificate:
    """The CA registered under this id, or ResourceNotFoundException."""
    found = backend.ca_certificates.get(ca_certificate_id)
    if found is None:
        raise ResourceNotFound(f"CA certificate {ca_certificate_id} does not exist.")
    return found


def ca_x509(ca: FakeCaCertificate) -> x509.Certificate:
    """The parsed certificate of a stored CA (moto's own records hold only the PEM)."""
    parsed = getattr(ca, "certificate", None)
    return parsed if parsed is not None else x509.load_pem_x509_certificate(ca.certificate_pem.encode())


def load_pem(pem: str, member: str) -> x509.Certificate:
    """One PEM certificate from a request member, or CertificateValidationException."""
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise CertificateValidation(f"{member} is not a PEM X.509 certificate.") from None


def check_validity(cert: x509.Certificate, member: str, now: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateValidation(
            f"{member} is valid from {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}, not now."
        )


def check_ca(cert: x509.Certificate, now: dt.datetime) -> None:
    """A CA certificate AWS IoT would register: BasicConstraints CA=true and valid now."""
    if not is_ca(cert):
        raise CertificateValidation(
            f"{cert.subject.rfc4514_string()} is not a CA certificate (BasicConstraints CA is not true)."
        )
    check_validity(cert, "caCertificate", now)


def check_verification(ca: x509.Certificate, pem: str | None, registration_code: str | None, now: dt.datetime) -> None:
    """DEFAULT mode's proof of possession: a certificate with CN = registration code, signed by the CA."""
    if pem is None:
        raise InvalidRequest(
            "verificationCertificate is required in DEFAULT certificate mode; register with certificateMode "
            "SNI_ONLY to do without one."
        )
    verification = load_pem(pem, "verificationCertificate")
    if registration_code is None or common_name(verification.subject) != registration_code:
        raise RegistrationCodeValidation(
            "The verification certificate's common name is not this account's registration code; "
            "call GetRegistrationCode and sign a verification certificate with it."
        )
    try:
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateValidation("The verification certificate is not signed by the CA certificate's key.") from None
    check_validity(verification, "verificationCertificate", now)
