"""Pure issuance: take ``cryptography`` objects and ``now``, return certificates.

Nothing here touches PEM files, the disk or AWS; ``ca.store`` and the CLI do that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from base.errors import InvalidThingNameError, NotACaError, SignatureError
from base.keys import PrivateKey, check_key_matches, check_key_strength, signature_hash
from base.names import check_common_name, check_country, check_thing_name
from ca import profiles


def make_name(cn: str, *, org: str | None = None, country: str | None = None) -> x509.Name:
    """An X.509 name with C, O and CN (C and O only when given)."""
    attributes = []
    if country is not None:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, check_country(country)))
    if org:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, check_common_name(cn)))
    return x509.Name(attributes)


def _build(
    *,
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: CertificatePublicKeyTypes,
    signing_key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: list[profiles.Extension],
    aki: x509.AuthorityKeyIdentifier | None,
    serial: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    builder = builder.add_extension(profiles.ski(public_key), critical=False)
    if aki is not None:
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(signing_key, signature_hash(signing_key))


def issue_root(key: PrivateKey, subject: x509.Name, *, now: dt.datetime, days: int) -> x509.Certificate:
    """A self-signed root CA certificate."""
    check_key_strength(key)
    not_before, not_after = profiles.validity(now, days)
    return _build(
        subject=subject,
        issuer_name=subject,
        public_key=key.public_key(),
        signing_key=key,
        not_before=not_before,
        not_after=not_after,
        extensions=profiles.root_extensions(),
        aki=None,
    )


@dataclass(frozen=True)
class Issuer:
    """A CA certificate with its private key, checked to be a CA and to match."""

    certificate: x509.Certificate
    key: PrivateKey
    _aki: x509.AuthorityKeyIdentifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise NotACaError(f"{self.certificate.subject.rfc4514_string()} is not a CA certificate; it cannot issue.")
        check_key_matches(self.key, self.certificate.public_key(), "the CA certificate")
        object.__setattr__(self, "_aki", profiles.aki_from(self.certificate))

    def _not_after(self, now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
        """Validity from ``now``, never past the issuer's own end."""
        not_before, not_after = profiles.validity(now, days)
        return not_before, min(not_after, self.certificate.not_valid_after_utc)

    def issue_intermediate(
        self, public_key: CertificatePublicKeyTypes, subject: x509.Name, *, now: dt.datetime, days: int
    ) -> x509.Certificate:
        """An intermediate CA (path length 0) that signs device certificates."""
        check_key_strength(public_key)
        not_before, not_after = self._not_after(now, days)
        return _build(
            subject=subject,
            issuer_name=self.certificate.subject,
            public_key=public_key,
            signing_key=self.key,
            not_before=not_before,
            not_after=not_after,
            extensions=profiles.intermediate_extensions(),
            aki=self._aki,
        )

    def issue_device(
        self,
        public_key: CertificatePublicKeyTypes,
        thing_name: str,
        *,
        country: str | None,
        now: dt.datetime,
        days: int,
        serial: int | None = None,
        crl_url: str | None = None,
    ) -> x509.Certificate:
        """A device certificate whose CN is the thing name (and C the country, when given); ``crl_url``: where
        its CRL is published (a CRL distribution point)."""
        check_key_strength(public_key)
        not_before, not_after = self._not_after(now, days)
        return _build(
            subject=make_name(check_thing_name(thing_name), country=country),
            issuer_name=self.certificate.subject,
            public_key=public_key,
            signing_key=self.key,
            not_before=not_before,
            not_after=not_after,
            extensions=profiles.device_extensions(public_key, crl_url),
            aki=self._aki,
            serial=serial,
        )

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        country: str | None,
        now: dt.datetime,
        days: int,
        crl_url: str | None = None,
    ) -> x509.Certificate:
        """A device certificate for a key that never leaves the device.

        The CSR's signature must verify and its CN must be a valid thing name. The CSR's country is
        kept when it has one, else ``country`` is used; other subject fields are not copied.
        """
        if not csr.is_signature_valid:
            raise SignatureError("The CSR's signature does not verify; it was not signed by the key it carries.")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns:
            raise InvalidThingNameError("The CSR has no common name; its CN must be the thing name.")
        csr_country = csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
        return self.issue_device(
            csr.public_key(),
            str(cns[0].value),
            country=str(csr_country[0].value) if csr_country else country,
            now=now,
            days=days,
            crl_url=crl_url,
        )

    def issue_verification(
        self, public_key: CertificatePublicKeyTypes, registration_code: str, *, now: dt.datetime
    ) -> x509.Certificate:
        """The verification certificate AWS IoT asks for: CN = registration code, signed by this CA."""
        not_before, not_after = self._not_after(now, 1)
        return _build(
            subject=make_name(registration_code),
            issuer_name=self.certificate.subject,
            public_key=public_key,
            signing_key=self.key,
            not_before=not_before,
            not_after=not_after,
            extensions=profiles.verification_extensions(),
            aki=self._aki,
        )
