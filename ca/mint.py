"""Minting device identities: one (pure), and the files that hold it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from base import manifest
from base.certificates import certificate_id, to_pem
from base.files import FileSpec
from base.keys import KeyType, PrivateKey, generate_key, private_key_pem
from ca.issue import Issuer


@dataclass(frozen=True)
class DeviceIdentity:
    """A device's key and certificate, with the CA certificate that signed it."""

    thing_name: str
    key: PrivateKey
    certificate: x509.Certificate
    ca_certificate: x509.Certificate

    def files(self) -> dict[str, FileSpec]:
        """The device's files, relative to a device directory (see ``base.manifest``)."""
        cert = to_pem(self.certificate)
        return {
            manifest.cert_path(self.thing_name): FileSpec(cert),
            manifest.chain_path(self.thing_name): FileSpec(cert + to_pem(self.ca_certificate)),
            manifest.key_path(self.thing_name): FileSpec(private_key_pem(self.key), private=True),
        }

    def summary(self) -> dict:
        return {
            "thingName": self.thing_name,
            "certificateId": certificate_id(self.certificate),
            "serial": format(self.certificate.serial_number, "x"),
            "notAfter": self.certificate.not_valid_after_utc.isoformat(),
        }


def mint_device(
    issuer: Issuer,
    thing_name: str,
    *,
    country: str | None,
    now: dt.datetime,
    days: int,
    key_type: KeyType | str = KeyType.EC_P256,
    crl_url: str | None = None,
) -> DeviceIdentity:
    """A new key and a certificate for it, CN = ``thing_name``."""
    key = generate_key(key_type)
    cert = issuer.issue_device(key.public_key(), thing_name, country=country, now=now, days=days, crl_url=crl_url)
    return DeviceIdentity(thing_name, key, cert, issuer.certificate)
