"""Test certificates with a subject of the test's choosing, signed directly, outside the kit's profiles."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from base.keys import generate_key, signature_hash
from ca.issue import Issuer
from tests.conftest import NOW


def certificate_with_subject(
    issuer: Issuer, subject: x509.Name, *, key_type: str = "ec-p256", now: dt.datetime = NOW, days: int = 365
) -> x509.Certificate:
    """A certificate for a fresh key, with ``subject`` as given (any attributes, any string types)."""
    key = generate_key(key_type)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(issuer.key, signature_hash(issuer.key))
    )
