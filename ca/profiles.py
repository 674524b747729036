"""The X.509 profile, in one place: one function per role returns its extensions.

- root: ``BasicConstraints(ca=True)``, critical ``KeyUsage(keyCertSign, cRLSign)``;
- intermediate: as root with ``path_length=0`` (it signs devices only);
- device: ``BasicConstraints(ca=False)``, ``KeyUsage(digitalSignature)`` (and
  ``keyEncipherment`` for RSA), ``ExtendedKeyUsage(CLIENT_AUTH)``;
- verification: the end-entity certificate AWS IoT asks for when a CA is registered.

Every certificate carries a SubjectKeyIdentifier; issued ones an AuthorityKeyIdentifier
taken from the issuer's SKI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from base.errors import InvalidInputError

BACKDATE = dt.timedelta(minutes=1)  # tolerate clock skew between the CA and AWS/devices


@dataclass(frozen=True)
class Extension:
    value: x509.ExtensionType
    critical: bool


def _key_usage(*, digital_signature=False, key_encipherment=False, cert_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def ski(public_key: CertificatePublicKeyTypes) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def aki_from(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of certificates ``issuer`` signs: its SKI, or one computed from its key."""
    try:
        issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        issuer_ski = ski(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)


def root_extensions() -> list[Extension]:
    return [
        Extension(x509.BasicConstraints(ca=True, path_length=None), critical=True),
        Extension(_key_usage(digital_signature=True, cert_sign=True), critical=True),
    ]


def intermediate_extensions() -> list[Extension]:
    return [
        Extension(x509.BasicConstraints(ca=True, path_length=0), critical=True),
        Extension(_key_usage(digital_signature=True, cert_sign=True), critical=True),
    ]


def check_crl_url(url: str) -> str:
    """A CRL distribution point: an http(s) URL (RFC 5280 CRLs are fetched over HTTP, not HTTPS, as a rule)."""
    if not url.startswith(("http://", "https://")) or len(url) > 2000 or any(c.isspace() for c in url):
        raise InvalidInputError(f"--crl-url {url!r} must be an http:// or https:// URL without spaces.")
    return url


def device_extensions(public_key: CertificatePublicKeyTypes, crl_url: str | None = None) -> list[Extension]:
    extensions = [
        Extension(x509.BasicConstraints(ca=False, path_length=None), critical=True),
        Extension(
            _key_usage(digital_signature=True, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)),
            critical=True,
        ),
        Extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False),
    ]
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(check_crl_url(crl_url))], None, None, None)
        extensions.append(Extension(x509.CRLDistributionPoints([point]), critical=False))
    return extensions


def verification_extensions() -> list[Extension]:
    return [
        Extension(x509.BasicConstraints(ca=False, path_length=None), critical=True),
        Extension(_key_usage(digital_signature=True), critical=True),
    ]


LAST_NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)  # the last date X.509 can hold (RFC 5280)


def validity(now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    """``(not_before, not_after)``: backdated a minute, ``days`` long from ``now``."""
    check_days(days, now)
    return now - BACKDATE, now + dt.timedelta(days=days)


def check_days(days: int, now: dt.datetime) -> int:
    """Refuse a validity that is not a positive number of days, or that ends after 9999-12-31."""
    limit = (LAST_NOT_AFTER - now).days
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= limit:
        raise InvalidInputError(
            f"--days must be 1 to {limit:,} (a certificate cannot be valid after 9999-12-31), not {days!r}."
        )
    return days
