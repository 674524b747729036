"""Revocation and CRLs: pure functions over ``cryptography`` objects (the store keeps the records).

A revocation names a certificate by its serial number, with the time it was revoked and an RFC 5280
reason. :func:`build_crl` makes the CRL a CA signs: issuer name, thisUpdate a minute back (clocks drift),
nextUpdate ``days`` on, the CRL number (which must only grow: the store counts it), the issuer's key
identifier, and one entry per revoked serial with its reason code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from base.certificates import certificate_id
from base.errors import InvalidInputError
from base.keys import signature_hash
from ca import profiles
from ca.issue import Issuer

REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "caCompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}
MAX_CRL_DAYS = 366


@dataclass(frozen=True)
class Revoked:
    """One revoked certificate: its serial, when, why, the CA that issued it (the certificateId of the CA's
    certificate: whose CRL lists it), and its AWS IoT id and subject."""

    serial: int
    revoked_at: dt.datetime
    reason: str = "unspecified"
    issuer_id: str | None = None
    certificate_id: str | None = None
    subject: str | None = None

    def as_json(self) -> dict:
        return {
            "serial": f"{self.serial:x}",
            "revokedAt": self.revoked_at.isoformat(timespec="seconds"),
            "reason": self.reason,
            "issuerId": self.issuer_id,
            "certificateId": self.certificate_id,
            "subject": self.subject,
        }

    @classmethod
    def from_json(cls, data: dict) -> Revoked:
        return cls(
            serial=int(data["serial"], 16),
            revoked_at=dt.datetime.fromisoformat(data["revokedAt"]),
            reason=data.get("reason") or "unspecified",
            issuer_id=data.get("issuerId"),
            certificate_id=data.get("certificateId"),
            subject=data.get("subject"),
        )


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise InvalidInputError(f"Reason {reason!r} is not one of {', '.join(REASONS)}.")
    return reason


def parse_serial(text: str) -> int:
    """A serial number as openssl prints it: hexadecimal, with or without 0x and colons."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        serial = int(cleaned, 16)
    except ValueError:
        raise InvalidInputError(
            f"Serial {text!r} is not a hexadecimal number (as 'openssl x509 -serial' prints)."
        ) from None
    if serial <= 0:
        raise InvalidInputError(f"Serial {text!r} is not a positive number.")
    return serial


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert`` directly (and ``cert`` is not ``issuer`` itself)."""
    if cert == issuer:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def revocation_of(cert: x509.Certificate, issuer: x509.Certificate, *, now: dt.datetime, reason: str) -> Revoked:
    """The record of ``cert``'s revocation by the CA whose certificate is ``issuer``."""
    return Revoked(
        cert.serial_number,
        now,
        check_reason(reason),
        certificate_id(issuer),
        certificate_id(cert),
        cert.subject.rfc4514_string(),
    )


def build_crl(
    issuer: Issuer, revoked: Iterable[Revoked], *, number: int, now: dt.datetime, days: int
) -> x509.CertificateRevocationList:
    """The CRL ``issuer`` signs for ``revoked``, numbered ``number``, valid ``days`` from ``now``."""
    if not 1 <= days <= MAX_CRL_DAYS:
        raise InvalidInputError(f"--days must be between 1 and {MAX_CRL_DAYS}, not {days}.")
    this_update, next_update = profiles.validity(now, days)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(profiles.aki_from(issuer.certificate), critical=False)
    )
    for entry in sorted(revoked, key=lambda r: r.serial):
        item = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        if entry.reason != "unspecified":
            item = item.add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer.key, signature_hash(issuer.key))
